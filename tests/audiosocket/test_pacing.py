"""The paced writer's clock and statistics, in simulated time (no sleeping)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest

from operadora.audiosocket.pacing import FrameClock, MediaStats, Pacer
from operadora.runtime import run_urgent_work

pytestmark = pytest.mark.unit

FRAME = 0.02


def test_ten_minutes_with_jitter_do_not_drift() -> None:
    rng = random.Random(7)
    start = 1000.0
    clock = FrameClock(start, FRAME)
    frames = 10 * 60 * 50
    deadlines = []
    for _ in range(frames):
        # the loop wakes a little after each deadline (0..3 ms of scheduling jitter)
        now = clock.next_deadline + rng.uniform(0, 0.003)
        deadline, skipped = clock.tick(now)
        assert skipped == 0
        deadlines.append(deadline)
    assert len(deadlines) == frames
    assert deadlines[-1] == pytest.approx(start + (frames - 1) * FRAME, abs=1e-9)
    assert clock.next_deadline == pytest.approx(start + frames * FRAME, abs=1e-9)


def test_stall_skips_missed_frames_instead_of_bursting() -> None:
    clock = FrameClock(0.0, FRAME)
    assert clock.tick(0.0005) == (0.0, 0)
    # the loop was blocked for 105 ms: frames due at 20, 40, 60, 80 ms are gone, 100 ms is sent
    deadline, skipped = clock.tick(0.1055)
    assert deadline == pytest.approx(0.1)
    assert skipped == 4
    # and the next frame is due on the original grid, not 20 ms after the late write
    assert clock.next_deadline == pytest.approx(0.12)
    assert clock.tick(0.1201) == (pytest.approx(0.12), 0)


def test_waking_slightly_early_claims_the_pending_deadline() -> None:
    clock = FrameClock(5.0, FRAME)
    clock.tick(5.0)
    deadline, skipped = clock.tick(5.02 - 1e-7)  # timer rounding can wake us a hair early
    assert (deadline, skipped) == (pytest.approx(5.02), 0)


def test_stats_histogram_and_percentiles() -> None:
    stats = MediaStats()
    for _ in range(98):
        stats.record_write(0.0004, late_after_s=0.01)
    stats.record_write(0.0042, late_after_s=0.01)
    stats.record_write(0.015, late_after_s=0.01)
    assert stats.frames_out == 100
    assert stats.late_frames == 1
    assert stats.pacing_percentile_ms(50) == pytest.approx(0.5)
    assert stats.pacing_percentile_ms(99) == pytest.approx(4.3)
    assert stats.pacing_percentile_ms(100) == pytest.approx(15.1)
    total = MediaStats(frames_in=3)
    total.merge(stats)
    total.merge(stats)
    assert (total.frames_in, total.frames_out, total.late_frames) == (3, 200, 2)
    assert total.pacing_percentile_ms(99) == pytest.approx(4.3)
    assert MediaStats().pacing_percentile_ms(99) == 0.0
    stats.record_write(2.0, late_after_s=0.01)  # beyond the histogram: overflow bucket
    assert stats.pacing_percentile_ms(100) == float("inf")


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[tuple[float, int]] = []

    def on_tick(self, deadline: float, skipped: int) -> None:
        self.ticks.append((deadline, skipped))


async def test_pacer_on_a_real_loop_stays_on_its_grid_through_a_stall() -> None:
    pacer = Pacer(asyncio.get_running_loop(), FRAME)
    recorder = Recorder()
    pacer.add(recorder)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.1)
    # a callback hogs the loop: several deadlines pass unserved
    loop.call_soon(time.sleep, 0.105)
    await asyncio.sleep(0.2)
    pacer.close()
    deadlines = [d for d, _ in recorder.ticks]
    gaps = [b - a for a, b in itertools.pairwise(deadlines)]
    assert all(gap > FRAME - 1e-9 for gap in gaps)  # never two frames for one deadline
    steps = [(d - deadlines[0]) / FRAME for d in deadlines]
    assert all(abs(s - round(s)) < 1e-6 for s in steps)  # every deadline on the original grid
    skipped = sum(s for _, s in recorder.ticks)
    assert skipped >= 4  # the stall's deadlines were counted as skipped, not sent late
    later_skips = sum(s for _, s in recorder.ticks[1:])
    assert len(recorder.ticks) + later_skips == round(steps[-1]) + 1  # each deadline once
    assert pacer.ticks == len(recorder.ticks)


async def test_long_work_on_the_loop_lets_the_due_writes_go_through_the_urgent_hook() -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(loop, FRAME)
    recorder = Recorder()
    pacer.add(recorder)
    await asyncio.sleep(0.05)
    seen: list[int] = []

    def long_work() -> None:  # e.g. a VAD batch of many calls, in chunks
        before = len(recorder.ticks)
        time.sleep(FRAME * 1.5)  # a chunk's worth of work: a deadline passes
        run_urgent_work()  # between chunks
        seen.append(len(recorder.ticks) - before)

    loop.call_soon(long_work)
    await asyncio.sleep(0.01)
    assert seen == [1]  # the due frame was written inside the long work, not after it
    pacer.close()
    seen.clear()
    loop.call_soon(long_work)
    await asyncio.sleep(0.05)
    assert seen == [0]  # a closed pacer is no longer urgent work
