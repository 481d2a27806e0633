from __future__ import annotations

import numpy as np
import pytest

from operadora.audio.pcm import duration_ms, frame_bytes, from_float32, samples, to_float32
from operadora.audio.resample import StreamResampler, resample, slin8_to_slin16, slin16_to_slin8

pytestmark = pytest.mark.unit


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return from_float32((np.sin(2 * np.pi * freq * t) * amplitude).astype(np.float32))


def level_at(pcm: bytes, rate: int, freq: float) -> float:
    x = to_float32(pcm).astype(np.float64)
    x = x[len(x) // 10 : -len(x) // 10]  # skip filter edges
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[np.argmin(np.abs(freqs - freq))] / len(x))


def test_pcm_helpers() -> None:
    assert frame_bytes(8000) == 320
    assert frame_bytes(16000) == 640
    assert duration_ms(640, 16000) == 20.0
    assert samples(b"\x01\x00\xff\xff").tolist() == [1, -1]
    assert from_float32(to_float32(b"\x00\x80\xff\x7f")) == b"\x00\x80\xff\x7f"
    with pytest.raises(ValueError):
        samples(b"\x00")


def test_upsampling_keeps_length_and_tone() -> None:
    pcm8 = tone(440, 8000)
    pcm16 = slin8_to_slin16(pcm8)
    assert len(pcm16) == 2 * len(pcm8)
    assert level_at(pcm16, 16000, 440) == pytest.approx(level_at(pcm8, 8000, 440), rel=0.05)


def test_downsampling_filters_what_8k_cannot_carry() -> None:
    # 6 kHz is above the 4 kHz Nyquist limit of 8 kHz audio: a real anti-aliasing filter
    # removes it instead of folding it down to 2 kHz (what audioop.ratecv would do)
    pcm16 = tone(6000, 16000)
    pcm8 = slin16_to_slin8(pcm16)
    assert len(pcm8) == len(pcm16) // 2
    assert level_at(pcm8, 8000, 2000) < 0.001
    passband = slin16_to_slin8(tone(1000, 16000))
    assert level_at(passband, 8000, 1000) > 0.1  # 0.125 = amplitude 0.5 through a Hann window


def test_stream_resampler_matches_one_shot_over_20ms_frames() -> None:
    pcm8 = tone(300, 8000, seconds=0.5)
    stream = StreamResampler(8000, 16000)
    out = b"".join(stream.process(pcm8[i : i + 320]) for i in range(0, len(pcm8), 320))
    out += stream.flush()
    assert abs(len(out) - 2 * len(pcm8)) <= 4
    whole = np.frombuffer(resample(pcm8, 8000, 16000), "<i2").astype(np.int64)
    streamed = np.frombuffer(out, "<i2").astype(np.int64)[: len(whole)]
    # identical filter, chunked: the bulk of the signal agrees closely
    assert np.max(np.abs(streamed[400:-400] - whole[400:-400])) < 200


def test_equal_rates_pass_through_and_validation() -> None:
    stream = StreamResampler(16000, 16000)
    assert stream.process(b"\x01\x02") == b"\x01\x02"
    assert stream.flush() == b""
    assert resample(b"\x01\x02", 8000, 8000) == b"\x01\x02"
    assert resample(b"", 8000, 16000) == b""
    with pytest.raises(ValueError):
        StreamResampler(0, 8000)


def test_process_array_equals_process() -> None:
    rng = np.random.default_rng(8)
    pcm = rng.integers(-8000, 8000, 8000, dtype=np.int16).astype("<i2").tobytes()
    by_bytes, by_array = StreamResampler(8000, 16000), StreamResampler(8000, 16000)
    for pos in range(0, len(pcm), 320):
        chunk = pcm[pos : pos + 320]
        out = by_array.process_array(chunk)
        assert out.dtype == np.int16
        ref = np.frombuffer(by_bytes.process(chunk), "<i2")
        assert out.shape == ref.shape
        # soxr's int16 output is dithered: two streams differ by a couple of LSB at most
        assert np.all(np.abs(out.astype(np.int32) - ref) <= 2)
    same = StreamResampler(16000, 16000)
    assert same.process_array(pcm[:640]).tobytes() == pcm[:640]
