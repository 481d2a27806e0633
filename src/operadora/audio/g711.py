"""G.711 μ-law and A-law with numpy lookup tables (no ``audioop``: it is gone in Python 3.13).

Encoding indexes a 65,536-entry table by the sample's bit pattern, decoding a 256-entry
table, so both are one vectorised ``take`` per frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_MULAW_BIAS = 0x84
_MULAW_CLIP14 = 8159


def _exponent(magnitude: npt.NDArray[np.int32], first_segment_end: int) -> npt.NDArray[np.int32]:
    """Segment number: how many doublings of ``first_segment_end`` ``magnitude`` exceeds."""
    exponent = np.zeros_like(magnitude)
    bound = first_segment_end
    for _ in range(8):
        exponent += magnitude > bound
        bound = bound * 2 + 1
    return exponent


def _mulaw_encode_all() -> npt.NDArray[np.uint8]:
    pcm = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    pcm = pcm >> 2  # μ-law works on 14-bit samples
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(pcm < 0, -pcm, pcm), _MULAW_CLIP14) + (_MULAW_BIAS >> 2)
    segment = _exponent(magnitude, 0x3F)
    value = (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    value = np.where(segment >= 8, 0x7F, value)
    return ((value ^ mask) & 0xFF).astype(np.uint8)


def _mulaw_decode_all() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_encode_all() -> npt.NDArray[np.uint8]:
    pcm = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    pcm = pcm >> 3  # A-law works on 13-bit samples
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    segment = _exponent(magnitude, 0x1F)
    shift = np.where(segment < 2, 1, segment)
    value = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    value = np.where(segment >= 8, 0x7F, value)
    return ((value ^ mask) & 0xFF).astype(np.uint8)


def _alaw_decode_all() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    value = (code & 0x0F) << 4
    value = np.where(segment == 0, value + 8, value + 0x108)
    value = np.where(segment > 1, value << np.maximum(segment - 1, 0), value)
    return np.where(code & 0x80, value, -value).astype(np.int16)


_MULAW_ENCODE = _mulaw_encode_all()
_MULAW_DECODE = _mulaw_decode_all()
_ALAW_ENCODE = _alaw_encode_all()
_ALAW_DECODE = _alaw_decode_all()


def _samples_u16(pcm: bytes) -> npt.NDArray[np.uint16]:
    if len(pcm) % 2:
        raise ValueError(f"slin audio must be whole 16-bit samples, got {len(pcm)} bytes")
    return np.frombuffer(pcm, dtype="<u2")


def ulaw_encode(pcm: bytes) -> bytes:
    """slin (int16 little-endian) -> G.711 μ-law, one byte per sample."""
    return _MULAW_ENCODE.take(_samples_u16(pcm)).tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """G.711 μ-law -> slin (int16 little-endian)."""
    return _MULAW_DECODE.take(np.frombuffer(data, dtype=np.uint8)).astype("<i2").tobytes()


def alaw_encode(pcm: bytes) -> bytes:
    """slin (int16 little-endian) -> G.711 A-law, one byte per sample."""
    return _ALAW_ENCODE.take(_samples_u16(pcm)).tobytes()


def alaw_decode(data: bytes) -> bytes:
    """G.711 A-law -> slin (int16 little-endian)."""
    return _ALAW_DECODE.take(np.frombuffer(data, dtype=np.uint8)).astype("<i2").tobytes()
