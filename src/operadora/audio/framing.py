"""Re-framing: 20 ms transport frames in, the fixed windows a VAD wants out (32 ms)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from operadora.audio.pcm import samples

VAD_WINDOW_MS = 32


def vad_window_samples(sample_rate: int) -> int:
    """Samples in one 32 ms VAD window: 512 at 16 kHz, 256 at 8 kHz."""
    return VAD_WINDOW_MS * sample_rate // 1000


class Reframer:
    """Turns slin chunks of any size into float32 windows of exactly ``window_samples``.

    Leftover samples wait in a preallocated buffer for the next chunk; nothing is lost or
    repeated. Each returned window is a fresh array the caller may keep.
    """

    __slots__ = ("_buffer", "_filled", "window_samples")

    def __init__(self, window_samples: int) -> None:
        if window_samples <= 0:
            raise ValueError(f"window_samples must be positive, got {window_samples}")
        self.window_samples = window_samples
        self._buffer = np.zeros(window_samples, dtype=np.float32)
        self._filled = 0

    @property
    def pending_samples(self) -> int:
        """Samples waiting for the next window."""
        return self._filled

    def push(
        self, pcm: bytes | bytearray | memoryview | npt.NDArray[np.int16]
    ) -> list[npt.NDArray[np.float32]]:
        """Add slin audio (bytes, or int16 samples); return every window it completes."""
        data = pcm if isinstance(pcm, np.ndarray) else samples(pcm)
        windows: list[npt.NDArray[np.float32]] = []
        size = self.window_samples
        pos = 0
        total = data.size
        while pos < total:
            take = min(size - self._filled, total - pos)
            self._buffer[self._filled : self._filled + take] = data[pos : pos + take]
            self._filled += take
            pos += take
            if self._filled == size:
                window = self._buffer * np.float32(1.0 / 32768.0)
                windows.append(window)
                self._filled = 0
        return windows

    def reset(self) -> None:
        """Forget any pending samples."""
        self._filled = 0
