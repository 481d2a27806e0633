"""Small conversions between the wire's slin16 bytes and the float32 arrays engines use."""

from __future__ import annotations

import numpy as np
import soxr

from operadora.voice.engines import Float32Audio


def to_float32(pcm: bytes) -> Float32Audio:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) * np.float32(1 / 32768)


def to_pcm16(audio: Float32Audio) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def resample(audio: Float32Audio, in_rate: int, out_rate: int) -> Float32Audio:
    if in_rate == out_rate or audio.size == 0:
        return audio
    return np.asarray(soxr.resample(audio, in_rate, out_rate, quality="HQ"), dtype=np.float32)


def resample_pcm(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    if in_rate == out_rate:
        return pcm
    return to_pcm16(resample(to_float32(pcm), in_rate, out_rate))


def ms_to_bytes(ms: float, sample_rate: int) -> int:
    return int(ms * sample_rate / 1000) * 2
