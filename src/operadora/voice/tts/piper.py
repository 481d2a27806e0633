"""Piper neural voices (``piper-tts``), loaded from a ``.onnx`` voice file by path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from operadora.voice.errors import MissingExtraError, ProviderError
from operadora.voice.pcm import resample_pcm


class PiperTts:
    name = "piper"

    def __init__(self, model_path: Path) -> None:
        try:
            from piper import PiperVoice
        except ImportError as exc:
            raise MissingExtraError("Piper speech synthesis", "piper", "piper-tts") from exc
        if not model_path.is_file():
            raise ProviderError(self.name, f"no Piper voice at {model_path}")
        self._voice: Any = PiperVoice.load(str(model_path))
        self._lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        return int(self._voice.config.sample_rate)

    def synthesize_sync(self, text: str) -> bytes:
        with self._lock:
            return b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text))

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        pcm = await asyncio.to_thread(self.synthesize_sync, text)
        if pcm:
            yield pcm

    async def synthesize_at(
        self, text: str, language: str | None, sample_rate: int
    ) -> AsyncIterator[bytes]:
        """The clause at ``sample_rate``, resampled in the worker thread, not on the loop."""

        def work() -> bytes:
            return resample_pcm(self.synthesize_sync(text), self.sample_rate, sample_rate)

        pcm = await asyncio.to_thread(work)
        if pcm:
            yield pcm
