"""bench_media's verdict on a load step: late frames, and when a step is measured again."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_media
        import media_load

        yield bench_media, media_load
    finally:
        sys.path.remove(str(BENCH))


def test_a_frame_held_past_half_a_period_is_late_and_leaves_its_slot_empty(bench) -> None:
    _, media_load = bench
    times = 100.0 + 0.02 * np.arange(50) + 0.002
    times[20] += 0.013  # 13 ms late: it lands in the next frame's slot
    error, missing, bursts, late_at = media_load.grid_errors(times)
    assert (missing, bursts) == (1, 1)
    assert late_at.tolist() == [times[21]]  # the second arrival in the doubled slot
    assert error.size == 50
    on_time = 100.0 + 0.02 * np.arange(50)
    assert media_load.grid_errors(on_time)[1:3] == (0, 0)


def step(bench, **changes):
    bench_media, _ = bench
    values = dict(
        calls=100,
        cpu_ms_per_call_second=2.0,
        pacing_p99_ms=1.5,
        pacing_max_ms=10.0,
        server_p99_ms=1.0,
        missing=4,
        late=4,
        server_lost=0,
        server_skipped=0,
        connected=100,
        closed_by_server=0,
        vad_windows_per_call_second=31.25,
        vad_expected=31.25,
        lag_p99_ms=0.5,
        timer_floor_p99_ms=0.5,
        p99_limit_ms=5.0,
        server_max_ms=10.1,
        late_span_ms=2.0,
        control_at_late_ms=9.0,
    )
    values.update(changes)
    return bench_media.Step(**values)


def test_a_stall_the_control_process_also_saw_is_measured_again(bench) -> None:
    witnessed = step(bench)
    assert not witnessed.ok and witnessed.stalled_outside
    # the server wrote everything on time: the delay came after its writes
    assert step(bench, control_at_late_ms=0.3, server_max_ms=3.0).stalled_outside
    # a witnessed pause longer than a frame: the server skipped what it slept through
    assert step(bench, server_lost=116, server_skipped=116, late_span_ms=8.0).stalled_outside


def test_a_stall_the_server_spent_off_the_cpu_is_measured_again(bench) -> None:
    unseen = dict(control_at_late_ms=0.5)  # the control process ran on time
    # the server's loop stalled 8.8 ms, of which it ran 3.2: kept off the CPU for 5.6
    held = step(
        bench, stall_ms=8.8, stall_ran_ms=3.2, stall_queued_ms=0.9, stall_armed_ms=0.6, **unseen
    )
    assert held.stalled_outside
    # the loop slept because the pacer's own timer was set for later: the server's doing
    assert not step(
        bench, stall_ms=8.8, stall_ran_ms=0.3, stall_armed_ms=7.0, **unseen
    ).stalled_outside
    # its own work made the stall: that is the server falling behind
    assert not step(
        bench, stall_ms=9.0, stall_ran_ms=7.5, stall_armed_ms=0.5, **unseen
    ).stalled_outside
    # off the CPU too briefly to explain a frame 10 ms late
    assert not step(
        bench, stall_ms=6.0, stall_ran_ms=3.0, stall_armed_ms=0.5, **unseen
    ).stalled_outside
    # no stall of the loop near the late frames, and no witness: counted against the server
    assert not step(bench, **unseen).stalled_outside
    # late frames spread over seconds are not one stall, whatever the loop saw
    spread = dict(stall_ms=8.8, stall_ran_ms=1.0, stall_armed_ms=0.5, late_span_ms=3000.0, **unseen)
    assert not step(bench, **spread).stalled_outside


def test_a_step_the_server_itself_broke_is_not_measured_again(bench) -> None:
    # late frames spread over the window: the server falling behind, not one pause
    assert not step(bench, late_span_ms=9000.0).stalled_outside
    # one pause, but the control process ran on time: the server's own stall
    assert not step(bench, control_at_late_ms=1.0).stalled_outside
    # anything else wrong rules it out too
    assert not step(bench, server_lost=3, server_skipped=0).stalled_outside  # dropped frames
    assert not step(
        bench, server_lost=3, server_skipped=3, control_at_late_ms=0.3, server_max_ms=3.0
    ).stalled_outside  # skipped deadlines with no stall witnessed
    assert not step(bench, pacing_p99_ms=6.0).stalled_outside
    assert not step(bench, connected=99).stalled_outside
    assert not step(bench, closed_by_server=1).stalled_outside
    clean = step(bench, missing=0, late=0)
    assert clean.ok and not clean.stalled_outside


def test_the_stall_probe_tells_the_loops_own_work_from_time_off_the_cpu(bench) -> None:
    import media_frontend
    from operadora.audiosocket.pacing import Pacer

    class Quiet:
        def on_tick(self, deadline: float, skipped: int) -> None:
            pass

    async def scenario() -> list[tuple[float, float, float, float, float]]:
        pacer = Pacer(asyncio.get_running_loop(), 0.002, slots=1)  # a wake every 2 ms
        pacer.add(Quiet())
        probe = media_frontend.StallProbe(pacer, gap_s=0.015)
        await asyncio.sleep(0.05)
        end = time.monotonic() + 0.03
        while time.monotonic() < end:  # the loop's own work holds it 30 ms
            pass
        await asyncio.sleep(0.05)
        time.sleep(0.03)  # noqa: ASYNC251 - deliberately: the loop off the CPU for 30 ms
        await asyncio.sleep(0.05)
        pacer.close()
        return probe.stalls

    stalls = asyncio.run(scenario())
    assert len(stalls) == 2, stalls
    (_, busy_gap, busy_ran, _, busy_due), (_, idle_gap, idle_ran, idle_queued, idle_due) = stalls
    assert busy_gap >= 0.028 and busy_ran >= 0.015  # ran most of it (2 cores, a busy CI)
    assert idle_gap >= 0.028 and idle_ran < 0.005 and idle_queued < 0.015
    assert busy_due <= 0.0025 and idle_due <= 0.0025  # its timer was due within a sub-tick


def test_a_front_end_that_fell_behind_fails_the_step_whatever_the_pacing(bench) -> None:
    # the native engine paces from its own thread: a saturated event loop no longer shows in
    # the writes, only in the work left undone (VAD windows) and the frames' wait for it
    clean = dict(missing=0, late=0, server_max_ms=3.0, control_at_late_ms=0.0)
    assert step(bench, **clean).ok
    behind = step(bench, vad_windows_per_call_second=25.6, **clean)
    assert not behind.kept_up and not behind.ok
    assert not step(bench, vad_windows_per_call_second=25.6).stalled_outside  # never excused
    slow = step(bench, lag_p99_ms=45.0, **clean)
    assert not slow.kept_up and not slow.ok
    # without a VAD there are no windows to count; the lag still counts
    assert step(bench, vad_windows_per_call_second=0.0, vad_expected=0.0, **clean).ok
    assert step(bench, vad_windows_per_call_second=30.95, **clean).ok  # within 1 %
