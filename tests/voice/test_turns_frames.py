"""Pure pieces: the turn state machine, the frame queue, clause cutting, WAV stream parsing."""

from __future__ import annotations

import asyncio
import io
import struct
import wave

import numpy as np
import pytest

from operadora.voice.clauses import ClauseSplitter, split_clauses
from operadora.voice.errors import ProviderError, http_status_retryable
from operadora.voice.frames import (
    AudioFrame,
    DtmfFrame,
    EndFrame,
    FrameQueue,
    InterruptionFrame,
    TextFrame,
)
from operadora.voice.listening import UtteranceBuffer, VadWindows
from operadora.voice.tts.http import WavStreamParser
from operadora.voice.turns import Signal, TurnDetector, TurnState

pytestmark = pytest.mark.unit

W = 0.032


def feed(detector: TurnDetector, probs: list[float], t0: float = 0.0) -> list[Signal]:
    out = []
    for i, p in enumerate(probs):
        out += [s.signal for s in detector.window(p, t0 + i * W, t0 + (i + 1) * W)]
    return out


def test_speech_needs_its_minimum_duration() -> None:
    detector = TurnDetector(min_speech_ms=120)
    assert feed(detector, [0.9, 0.9, 0.9]) == [Signal.ONSET]
    assert feed(detector, [0.9], 3 * W) == [Signal.STARTED]
    assert detector.state is TurnState.SPEAKING
    assert detector.speech_started_at == 0.0


def test_short_onset_is_rejected() -> None:
    detector = TurnDetector(min_speech_ms=120, onset_gap_ms=40)
    assert feed(detector, [0.9, 0.1, 0.1]) == [Signal.ONSET, Signal.REJECTED]
    assert detector.state is TurnState.QUIET


def test_barge_in_uses_its_own_minimum() -> None:
    detector = TurnDetector(min_speech_ms=200, barge_in_min_speech_ms=60)
    detector.agent_speaking = True
    assert feed(detector, [0.9, 0.9]) == [Signal.ONSET, Signal.STARTED]


def test_hysteresis_keeps_speech_through_a_dip() -> None:
    detector = TurnDetector(threshold=0.5, hysteresis=0.15, min_speech_ms=60)
    signals = feed(detector, [0.9, 0.9, 0.4, 0.4, 0.9])
    assert signals == [Signal.ONSET, Signal.STARTED]


def test_end_of_turn_is_decided_by_the_clock() -> None:
    detector = TurnDetector(min_speech_ms=60, end_of_turn_silence_ms=280)
    feed(detector, [0.9, 0.9, 0.9])
    assert feed(detector, [0.0], 3 * W) == [Signal.PAUSED]
    assert detector.deadline == pytest.approx(3 * W + 0.28)
    assert detector.tick(3 * W + 0.27) == []
    [end] = detector.tick(3 * W + 0.28)
    assert end.signal is Signal.END_OF_TURN and end.at == pytest.approx(3 * W)


def test_no_audio_at_all_counts_as_silence() -> None:
    detector = TurnDetector(min_speech_ms=60, end_of_turn_silence_ms=280)
    feed(detector, [0.9, 0.9, 0.9])
    assert [s.signal for s in detector.no_audio(3 * W + 0.1)] == [Signal.PAUSED]
    assert [s.signal for s in detector.no_audio(3 * W + 0.3)] == [Signal.END_OF_TURN]


def test_resumed_speech_cancels_the_end_of_turn() -> None:
    detector = TurnDetector(min_speech_ms=60, end_of_turn_silence_ms=280)
    feed(detector, [0.9, 0.9, 0.0])
    assert feed(detector, [0.9], 3 * W) == [Signal.RESUMED]
    assert detector.deadline is None


def test_shorten_silence_ends_the_turn_sooner() -> None:
    detector = TurnDetector(min_speech_ms=60, end_of_turn_silence_ms=600)
    feed(detector, [0.9, 0.9, 0.0])
    detector.shorten_silence(100)
    assert detector.deadline == pytest.approx(2 * W + 0.1)


async def test_system_frames_jump_the_queue_and_survive_interruption() -> None:
    queue = FrameQueue()
    queue.put(TextFrame("one"))
    queue.put(AudioFrame(b"\0\0", 8000, 0.0))
    queue.put(DtmfFrame("5", 0.0))
    queue.put(InterruptionFrame(0.0))
    assert isinstance(await queue.get(), DtmfFrame)
    assert queue.interrupt() == 2
    assert isinstance(await queue.get(), InterruptionFrame)
    assert queue.get_nowait() is None
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put(EndFrame())
    assert isinstance(await asyncio.wait_for(waiter, 1), EndFrame)


def test_clauses_cut_at_sentence_ends_and_long_commas() -> None:
    splitter = ClauseSplitter(min_soft_chars=24)
    out = []
    for token in "Hello there. We open at 9.30 tomorrow, and close late, at ten. Bye".split(" "):
        out += splitter.push(token + " ")
    out += splitter.flush()
    assert out == ["Hello there.", "We open at 9.30 tomorrow,", "and close late, at ten.", "Bye"]
    assert split_clauses("¿Qué tal? Bien.") == ["¿Qué tal?", "Bien."]


def _wav(rate: int, pcm: bytes) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


@pytest.mark.parametrize("chunk", [1, 7, 44, 4096])
def test_wav_stream_parser_any_chunking(chunk: int) -> None:
    pcm = struct.pack("<8h", *range(8))
    data = _wav(24000, pcm)
    parser = WavStreamParser()
    out = b"".join(parser.feed(data[i : i + chunk]) for i in range(0, len(data), chunk))
    assert out == pcm and parser.sample_rate == 24000


def test_wav_stream_parser_rejects_other_formats() -> None:
    with pytest.raises(ProviderError):
        WavStreamParser().feed(b"ID3\x03" + bytes(20))


def test_retryable_statuses() -> None:
    assert http_status_retryable(429) and http_status_retryable(503)
    assert not http_status_retryable(400) and not http_status_retryable(401)


def test_over_agent_playback_a_weak_onset_pauses_but_does_not_confirm() -> None:
    detector = TurnDetector(threshold=0.5, hysteresis=0.15, barge_in_min_speech_ms=60)
    detector.agent_speaking = True
    assert feed(detector, [0.4, 0.4, 0.4]) == [Signal.ONSET, Signal.REJECTED]
    detector.agent_speaking = False
    assert feed(detector, [0.4, 0.4]) == []


def test_weak_windows_after_speech_hold_the_turn_for_half_the_silence() -> None:
    detector = TurnDetector(threshold=0.5, hysteresis=0.15, min_speech_ms=60)
    detector.end_silence_s = 0.28
    feed(detector, [0.9, 0.9, 0.9, 0.4, 0.4])  # three strong windows, then the word's decay
    assert detector.last_voice_at == pytest.approx(3 * W)
    assert feed(detector, [0.1], 5 * W) == [Signal.PAUSED]
    assert detector.deadline == pytest.approx(max(3 * W + 0.28, 5 * W + 0.14))


class _CountingVad:
    sample_rate = 8000
    window_samples = 256

    def __init__(self) -> None:
        self.windows: list[float] = []

    def speech_probability(self, window: np.ndarray) -> float:
        self.windows.append(float(window[0]))
        return 0.5


def test_vad_windows_are_cut_across_frames_and_timestamped() -> None:
    vad = _CountingVad()
    windows = VadWindows(vad)
    out = []
    for i in range(4):  # four 20 ms frames of 160 samples, numbered by their first sample
        frame = np.arange(i * 160, (i + 1) * 160, dtype=np.float32)
        out += list(windows.feed(frame, received_at=0.02 * (i + 1)))
    # 640 samples make two 256-sample windows; the second ends 128 samples into frame 4
    assert vad.windows == [0.0, 256.0]
    (_, s1, e1), (_, s2, e2) = out
    assert e1 == pytest.approx(0.06 - 224 / 8000) and s1 == pytest.approx(e1 - 0.032)
    assert e2 == pytest.approx(0.08 - 128 / 8000) and s2 == pytest.approx(e2 - 0.032)


def test_utterance_buffer_keeps_a_preroll_then_everything() -> None:
    buffer = UtteranceBuffer(rate=100, preroll_s=0.3)
    for i in range(10):
        buffer.add(np.full(10, i, np.float32))  # 0.1 s chunks
    buffer.start()
    buffer.add(np.full(10, 10, np.float32))
    audio = buffer.audio(100)
    assert audio.size == 40 and audio[0] == 7 and audio[-1] == 10
    assert buffer.take(100).size == 40 and not buffer.recording
    assert buffer.audio(100).size == 0
    buffer.start()
    buffer.drop()
    assert buffer.audio(100).size == 0
