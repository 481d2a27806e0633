from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from operadora.audio.framing import Reframer, vad_window_samples

pytestmark = pytest.mark.unit


def test_window_sizes() -> None:
    assert vad_window_samples(16000) == 512
    assert vad_window_samples(8000) == 256


def test_20ms_frames_become_32ms_windows_in_order() -> None:
    reframer = Reframer(512)
    ramp = (np.arange(320 * 8) % 30000).astype("<i2")
    windows = []
    for i in range(8):  # 8 x 20 ms = 160 ms = 5 windows of 32 ms
        windows += reframer.push(ramp[i * 320 : (i + 1) * 320].tobytes())
    assert len(windows) == 5
    assert reframer.pending_samples == 0
    joined = np.concatenate(windows)
    assert joined.dtype == np.float32
    np.testing.assert_array_equal(joined, ramp.astype(np.float32) / 32768.0)


def test_windows_are_independent_copies() -> None:
    reframer = Reframer(4)
    first = reframer.push(np.array([1, 2, 3, 4], "<i2").tobytes())[0]
    reframer.push(np.array([9, 9, 9, 9], "<i2").tobytes())
    np.testing.assert_array_equal(first * 32768, [1, 2, 3, 4])


@given(st.lists(st.integers(0, 700), max_size=30), st.integers(1, 600))
def test_any_chunking_loses_and_repeats_nothing(sizes: list[int], window: int) -> None:
    total = sum(sizes)
    audio = (np.arange(total) % 20000).astype("<i2")
    reframer = Reframer(window)
    out = []
    pos = 0
    for size in sizes:
        out += reframer.push(audio[pos : pos + size].tobytes())
        pos += size
    assert len(out) == total // window
    assert reframer.pending_samples == total % window
    if out:
        got = np.concatenate(out) * 32768
        np.testing.assert_array_equal(got, audio[: len(out) * window])


def test_reset_and_validation() -> None:
    reframer = Reframer(256)
    reframer.push(bytes(100))
    reframer.reset()
    assert reframer.pending_samples == 0
    with pytest.raises(ValueError):
        Reframer(0)


def test_int16_arrays_frame_like_bytes() -> None:
    rng = np.random.default_rng(4)
    pcm = rng.integers(-32768, 32767, 16000, dtype=np.int16)
    by_bytes, by_array = Reframer(512), Reframer(512)
    a = [
        w for pos in range(0, pcm.size, 320) for w in by_bytes.push(pcm[pos : pos + 320].tobytes())
    ]
    b = [w for pos in range(0, pcm.size, 320) for w in by_array.push(pcm[pos : pos + 320])]
    assert len(a) == len(b) == 31
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
