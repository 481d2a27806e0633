"""slin (signed 16-bit little-endian PCM) helpers shared by the media path and the VAD."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_BYTES = 2
_INT16_SCALE = np.float32(1.0 / 32768.0)


def samples(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """A read-only int16 view of slin bytes (no copy)."""
    if len(pcm) % SAMPLE_BYTES:
        raise ValueError(f"slin audio must be whole 16-bit samples, got {len(pcm)} bytes")
    return np.frombuffer(pcm, dtype="<i2")


def to_float32(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.float32]:
    """slin bytes -> float32 samples in [-1, 1)."""
    return samples(pcm).astype(np.float32) * _INT16_SCALE


def from_float32(audio: npt.NDArray[np.float32]) -> bytes:
    """float32 samples in [-1, 1] -> slin bytes (clipped, rounded)."""
    scaled = np.clip(np.rint(audio * 32768.0), -32768, 32767)
    return bytes(scaled.astype("<i2").tobytes())


def duration_ms(nbytes: int, sample_rate: int) -> float:
    """Milliseconds of audio in ``nbytes`` of slin at ``sample_rate``."""
    return nbytes / SAMPLE_BYTES * 1000.0 / sample_rate


def frame_bytes(sample_rate: int, frame_ms: int = 20) -> int:
    """Bytes in one frame of slin at ``sample_rate`` (320 for 20 ms at 8 kHz)."""
    return sample_rate * frame_ms // 1000 * SAMPLE_BYTES
