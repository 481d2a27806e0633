"""Per-operation CPU costs of the media path, measured in-process (no network)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from operadora.audio.framing import Reframer
from operadora.audio.resample import StreamResampler
from operadora.audio.vad import SileroVad
from operadora.audio.vad_batch import SileroBatch
from operadora.audiosocket.protocol import AudioFrame, Parser, serialize


def _cost_us(action: Callable[[], object], repeat: int) -> float:
    action()
    start = time.process_time()
    for _ in range(repeat):
        action()
    return (time.process_time() - start) / repeat * 1e6


def micro_costs(audio: bytes, vad_rate: int = 16000) -> dict[str, float]:
    """Microseconds of CPU per operation (per 20 ms frame, or per 32 ms VAD window at
    ``vad_rate``)."""
    frame = audio[:320]
    wire = serialize(AudioFrame(frame, 8000))
    parser = Parser()

    def parse() -> None:
        parser.feed(wire)
        parser.next_frame()

    resampler = StreamResampler(8000, 16000)
    reframer = Reframer(512)
    pcm16 = resampler.process(frame)
    size = vad_rate * 32 // 1000
    window = np.zeros(size, np.float32)
    window[:] = np.frombuffer(audio[: size * 2], "<i2") / 32768
    single = SileroVad(vad_rate)
    batch = SileroBatch(vad_rate)
    streams = [batch.stream() for _ in range(64)]
    items = [(s, window) for s in streams]
    return {
        "parse_frame_us": _cost_us(parse, 20000),
        "resample_8k_to_16k_frame_us": _cost_us(lambda: resampler.process(frame), 5000),
        "reframe_frame_us": _cost_us(lambda: reframer.push(pcm16), 20000),
        "silero_lite_window_us": _cost_us(lambda: single.speech_probability(window), 500),
        "silero_batch64_window_us": _cost_us(lambda: batch.score(items), 40) / 64,
    }
