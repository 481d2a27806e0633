"""The paced writer's clock and statistics, in simulated time (no sleeping)."""

from __future__ import annotations

import random

import pytest

from operadora.audiosocket.pacing import FrameClock, MediaStats

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
