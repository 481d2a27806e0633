"""Embedded speech synthesis with espeak-ng, called through ctypes from the library and voice
data that the ``espeakng-loader`` wheel ships (no system package needed)."""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator

from operadora.voice.errors import MissingExtraError, ProviderError
from operadora.voice.pcm import resample_pcm

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE = 1

VOICES = {"en": "en-us", "es": "es"}

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Library:
    """The process-wide espeak-ng instance (the C library keeps global state)."""

    _instance: _Library | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise MissingExtraError(
                "espeak-ng speech synthesis", "espeak", "espeakng-loader"
            ) from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 100, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise ProviderError("espeak", "espeak-ng failed to initialise")
        self.sample_rate = int(rate)
        self._lib = lib
        self._chunks: list[bytes] = []
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    @classmethod
    def get(cls) -> _Library:
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], samples: int, events: int) -> int:
        if samples > 0:
            self._chunks.append(ctypes.string_at(wav, samples * 2))
        return 0

    def synth(self, text: str, voice: str, rate_wpm: int) -> bytes:
        with self.lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ProviderError("espeak", f"unknown espeak-ng voice: {voice}")
            self._lib.espeak_SetParameter(_RATE, rate_wpm, 0)
            data = text.encode("utf-8") + b"\0"
            buffer = ctypes.create_string_buffer(data, len(data))
            self._chunks = []
            err = self._lib.espeak_Synth(
                buffer, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if err != 0:
                raise ProviderError("espeak", f"espeak_Synth failed with error {err}")
            return b"".join(self._chunks)


class EspeakTts:
    name = "espeak"

    def __init__(self, voice: str | None = None, rate_wpm: int = 175) -> None:
        self._lib = _Library.get()
        self._voice = voice
        self._rate_wpm = rate_wpm

    @property
    def sample_rate(self) -> int:
        return self._lib.sample_rate

    def voice_for(self, language: str | None) -> str:
        return self._voice or VOICES.get((language or "en")[:2], language or "en-us")

    def synthesize_sync(self, text: str, language: str | None = None) -> bytes:
        return self._lib.synth(text, self.voice_for(language), self._rate_wpm)

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        pcm = await asyncio.to_thread(self.synthesize_sync, text, language)
        if pcm:
            yield pcm

    async def synthesize_at(
        self, text: str, language: str | None, sample_rate: int
    ) -> AsyncIterator[bytes]:
        """The clause at ``sample_rate``, resampled in the worker thread, not on the loop."""

        def work() -> bytes:
            return resample_pcm(self.synthesize_sync(text, language), self.sample_rate, sample_rate)

        pcm = await asyncio.to_thread(work)
        if pcm:
            yield pcm
