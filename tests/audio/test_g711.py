from __future__ import annotations

import warnings

import numpy as np
import pytest

from operadora.audio import g711

pytestmark = pytest.mark.unit

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # stdlib on 3.11/3.12, audioop-lts on 3.13+: the reference implementation

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int64).astype("<i2").tobytes()
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(
    ("encode", "reference"),
    [(g711.ulaw_encode, audioop.lin2ulaw), (g711.alaw_encode, audioop.lin2alaw)],
)
def test_encode_matches_reference_for_every_sample(encode, reference) -> None:
    assert encode(ALL_SAMPLES) == reference(ALL_SAMPLES, 2)


@pytest.mark.parametrize(
    ("decode", "reference"),
    [(g711.ulaw_decode, audioop.ulaw2lin), (g711.alaw_decode, audioop.alaw2lin)],
)
def test_decode_matches_reference_for_every_code(decode, reference) -> None:
    assert decode(ALL_CODES) == reference(ALL_CODES, 2)


def test_known_code_points() -> None:
    # silence is 0xff in μ-law and 0xd5 in A-law; full scale saturates
    assert g711.ulaw_encode(b"\x00\x00") == b"\xff"
    assert g711.alaw_encode(b"\x00\x00") == b"\xd5"
    assert g711.ulaw_encode(np.array([32767, -32768], "<i2").tobytes()) == b"\x80\x00"
    assert g711.ulaw_decode(b"\xff") == b"\x00\x00"


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_round_trip_error_is_within_the_companding_step(codec: str) -> None:
    encode = getattr(g711, f"{codec}_encode")
    decode = getattr(g711, f"{codec}_decode")
    original = np.frombuffer(ALL_SAMPLES, "<i2").astype(np.int64)
    back = np.frombuffer(decode(encode(ALL_SAMPLES)), "<i2").astype(np.int64)
    error = np.abs(back - original)
    # logarithmic companding: the error grows with the level but stays under ~1/16 of it
    assert np.all(error <= np.maximum(np.abs(original) / 16, 16) + 8)
    # decode(encode(decode(c))) is stable: every code maps to itself
    assert encode(decode(ALL_CODES)) == encode(decode(encode(decode(ALL_CODES))))


def test_odd_length_slin_is_rejected() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        g711.ulaw_encode(b"\x00\x00\x00")
