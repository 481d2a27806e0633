"""Phase-aligned pacing in simulated time: each call writes a few ms after its frames arrive.

A fake clock and a fake loop drive the :class:`Pacer` (no sleeping, no real timers), so these
tests are deterministic: they check where every write falls, that each call writes exactly
one frame per period, that slots move one sub-tick at a time (never a burst) and that nothing
drifts over ten minutes.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Callable
from typing import Any, cast

import pytest

from operadora.audiosocket import pacing
from operadora.audiosocket.pacing import Pacer, PhaseTracker

pytestmark = pytest.mark.unit

FRAME = 0.02
SLOT = 0.001
LEAD = 0.003


def wrapped(x: float) -> float:
    """``x`` modulo the frame, in [-FRAME/2, FRAME/2)."""
    return (x + FRAME / 2) % FRAME - FRAME / 2


# --- PhaseTracker ---------------------------------------------------------------------------


def test_tracker_finds_the_phase_through_jitter_and_outliers() -> None:
    rng = random.Random(3)
    tracker = PhaseTracker(FRAME)
    phase = 0.0073
    for k in range(500):
        t = 5000.0 + phase + k * FRAME + rng.uniform(0.0, 0.001)
        if k % 25 == 7:
            t += 0.015  # one frame in 25 held up 15 ms (and read with the next one)
        tracker.observe(t)
    assert tracker.phase is not None
    assert abs(wrapped(tracker.phase - (phase + 0.0005))) < 0.0006


def test_tracker_wraps_around_the_period_edge() -> None:
    tracker = PhaseTracker(FRAME)
    rng = random.Random(5)
    for k in range(300):  # arrivals straddle the 0 / 20 ms edge
        tracker.observe(100.0 + k * FRAME + rng.uniform(-0.0008, 0.0008))
    assert tracker.phase is not None
    assert abs(wrapped(tracker.phase)) < 0.0005


def test_tracker_follows_a_phase_change_within_a_second_and_restarts_after_a_gap() -> None:
    tracker = PhaseTracker(FRAME)
    for k in range(100):
        tracker.observe(10.0 + 0.004 + k * FRAME)
    for k in range(100, 150):  # the sender moved 8 ms later: 50 frames (1 s) later it is there
        tracker.observe(10.0 + 0.012 + k * FRAME)
    assert tracker.phase == pytest.approx(0.012, abs=0.0005)
    # after 2 s of silence (silence suppression) the first frame restarts the estimate
    assert tracker.observe(10.0 + 0.0171 + 250 * FRAME) == pytest.approx(0.0171, abs=1e-9)


def test_tracker_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        PhaseTracker(0.0)
    with pytest.raises(ValueError):
        PhaseTracker(FRAME, gain=0.0)


# --- the Pacer in simulated time ------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Just enough of an event loop for the Pacer: ``call_later`` on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.timers: list[FakeTimer] = []
        self.wakes = 0

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.clock.now + delay, callback)
        self.timers.append(timer)
        return timer

    def run_until(self, until: float, jitter: Callable[[], float] = lambda: 0.0) -> None:
        """Fire timers in order (each a little late by ``jitter()``) up to ``until``."""
        while True:
            live = [t for t in self.timers if not t.cancelled]
            if not live:
                break
            timer = min(live, key=lambda t: t.when)
            if timer.when > until:
                break
            self.timers.remove(timer)
            self.clock.now = max(self.clock.now, timer.when + jitter())
            self.wakes += 1
            timer.callback()
        self.clock.now = max(self.clock.now, until)


class Writer:
    """A paced session: records (time written, deadline, skipped) of each frame."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.writes: list[tuple[float, float, int]] = []

    def on_tick(self, deadline: float, skipped: int) -> None:
        self.writes.append((self.clock.now, deadline, skipped))


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeClock, FakeLoop, Pacer]:
    clock = FakeClock(1000.0)
    monkeypatch.setattr(pacing, "time", clock)
    loop = FakeLoop(clock)
    pacer = Pacer(cast(asyncio.AbstractEventLoop, cast(Any, loop)), FRAME)
    return clock, loop, pacer


def feed_arrivals(
    clock: FakeClock,
    loop: FakeLoop,
    pacer: Pacer,
    writer: Writer,
    tracker: PhaseTracker,
    times: list[float],
    wrote_before: Callable[[], bool],
) -> None:
    """Deliver inbound frames at ``times`` the way the session does, firing timers between."""
    for t in times:
        loop.run_until(t)
        phase = tracker.observe(clock.now)
        pacer.steer(writer, phase + LEAD, jump=not wrote_before())


def test_writes_fall_a_few_ms_after_each_inbound_frame(sim) -> None:
    clock, loop, pacer = sim
    writer = Writer(clock)
    tracker = PhaseTracker(FRAME)
    pacer.add(writer)
    rng = random.Random(11)
    phase = 0.0137  # where this caller's frames land in the period
    arrivals = [1000.0 + phase + k * FRAME + rng.uniform(0, 0.0005) for k in range(3000)]
    feed_arrivals(clock, loop, pacer, writer, tracker, arrivals, lambda: bool(writer.writes))
    loop.run_until(arrivals[-1] + 0.0199)
    assert writer.writes
    # nothing was written before the first frame, which moved the writer at once (jump)
    assert writer.writes[0][0] > arrivals[0]
    for (at, deadline, skipped), arrival in zip(writer.writes, arrivals, strict=False):
        assert skipped == 0
        assert at == deadline  # the fake loop wakes on time
        after = (deadline - arrival) % FRAME
        assert LEAD - 0.0006 <= after <= LEAD + 2 * SLOT + 0.0001  # 3..5 ms after arrival
    # exactly one frame per period for 3,000 periods; jitter moved the slot at most twice
    deadlines = [d for _, d, _ in writer.writes]
    assert len(deadlines) == len(arrivals)
    gaps = [b - a for a, b in itertools.pairwise(deadlines)]
    assert all(FRAME - SLOT - 1e-9 <= gap <= FRAME + SLOT + 1e-9 for gap in gaps)
    assert sum(abs(gap - FRAME) > 1e-9 for gap in gaps) <= 2


def test_a_phase_change_moves_the_writer_one_sub_tick_per_frame(sim) -> None:
    clock, loop, pacer = sim
    writer = Writer(clock)
    tracker = PhaseTracker(FRAME)
    pacer.add(writer)
    arrivals = [1000.0 + 0.002 + k * FRAME for k in range(100)]
    arrivals += [1000.0 + 0.016 + k * FRAME for k in range(100, 300)]  # sender moved 14 ms
    feed_arrivals(clock, loop, pacer, writer, tracker, arrivals, lambda: bool(writer.writes))
    loop.run_until(arrivals[-1] + 0.0199)
    deadlines = [d for _, d, _ in writer.writes]
    gaps = [b - a for a, b in itertools.pairwise(deadlines)]
    assert all(FRAME - SLOT - 1e-9 <= gap <= FRAME + SLOT + 1e-9 for gap in gaps)  # no burst
    assert any(gap < FRAME - 1e-9 for gap in gaps) or any(gap > FRAME + 1e-9 for gap in gaps)
    final = (deadlines[-1] - arrivals[-1]) % FRAME
    assert LEAD - 1e-6 <= final <= LEAD + 2 * SLOT + 1e-6  # re-aligned to the new phase
    # one frame per period all along: the periods spanned equal the frames written (± the
    # sub-ticks moved)
    span = (deadlines[-1] - deadlines[0]) / FRAME
    assert abs(span - (len(deadlines) - 1)) < 1.0


def test_without_inbound_audio_the_writer_free_runs_on_its_grid(sim) -> None:
    clock, loop, pacer = sim
    writer = Writer(clock)
    clock.now = 1000.0123
    pacer.add(writer)
    rng = random.Random(2)
    loop.run_until(1000.0123 + 600.0, jitter=lambda: rng.uniform(0, 0.003))
    deadlines = [d for _, d, _ in writer.writes]
    assert len(deadlines) == 30000  # ten minutes, one frame per 20 ms
    assert deadlines[0] == pytest.approx(1000.0123 + FRAME, abs=SLOT)
    gaps = [b - a for a, b in itertools.pairwise(deadlines)]
    assert max(gaps) == pytest.approx(FRAME, abs=1e-9)
    assert min(gaps) == pytest.approx(FRAME, abs=1e-9)
    assert all(s == 0 for _, _, s in writer.writes)
    assert all(0 <= at - d <= 0.003 + 1e-9 for at, d, _ in writer.writes)


def test_one_wake_serves_every_call_of_a_slot(sim) -> None:
    clock, loop, pacer = sim
    writers = [Writer(clock) for _ in range(500)]
    rng = random.Random(9)
    phases = [rng.uniform(0, FRAME) for _ in writers]
    for w in writers:
        pacer.add(w)
    for w, phase in zip(writers, phases, strict=True):
        pacer.steer(w, phase + LEAD, jump=True)
    loop.run_until(1000.0 + 10.0)
    # 500 calls, 20 slots: at most 20 wake-ups per period instead of 500
    assert loop.wakes <= 20 * 10.0 / FRAME + 20
    for w, phase in zip(writers, phases, strict=True):
        deadlines = [d for _, d, _ in w.writes]
        assert len(deadlines) in (499, 500)
        assert all(FRAME - 1e-9 < b - a < FRAME + 1e-9 for a, b in itertools.pairwise(deadlines))
        assert LEAD - 1e-6 <= (deadlines[-1] - phase) % FRAME <= LEAD + 2 * SLOT + 1e-6
    want = ((phases[0] + LEAD) % FRAME) / SLOT
    assert (pacer.slot_of(writers[0]) - want) % 20 <= 2 + 1e-6


def test_a_stall_skips_each_call_s_missed_frames_and_never_bursts(sim) -> None:
    clock, loop, pacer = sim
    writers = [Writer(clock) for _ in range(5)]
    for i, w in enumerate(writers):
        pacer.add(w)
        pacer.steer(w, i * 0.004, jump=True)
    loop.run_until(1000.2)
    # the loop is blocked for 105 ms
    stalled_from = clock.now
    clock.now += 0.105
    loop.run_until(clock.now + 0.2)
    for w in writers:
        deadlines = [d for _, d, _ in w.writes]
        gaps = [b - a for a, b in itertools.pairwise(deadlines)]
        assert all(gap > FRAME - 1e-9 for gap in gaps)  # never two frames for one deadline
        skipped = sum(s for _, _, s in w.writes)
        assert skipped >= 4
        span = round((deadlines[-1] - deadlines[0]) / FRAME)
        assert len(deadlines) + skipped == span + 1  # every deadline written once or skipped
        assert any(at > stalled_from + 0.1 for at, _, _ in w.writes)


def test_removing_the_last_call_stops_the_timer(sim) -> None:
    clock, loop, pacer = sim
    writer = Writer(clock)
    pacer.add(writer)
    loop.run_until(1000.1)
    pacer.remove(writer)
    assert len(pacer) == 0
    assert pacer.slot_of(writer) is None
    count = len(writer.writes)
    loop.run_until(1001.0)
    assert len(writer.writes) == count
    pacer.steer(writer, 0.0)  # a late steer of a removed call is ignored


# --- on a real loop and real TCP ------------------------------------------------------------


async def test_a_call_s_writes_move_to_just_after_its_inbound_frames(media_server) -> None:
    from operadora.audiosocket.peer import AsteriskPeer
    from operadora.media import AudioIn, MediaSession

    arrivals: list[float] = []

    async def handler(session: MediaSession) -> None:
        async for item in session.inbound():
            if isinstance(item, AudioIn):
                arrivals.append(item.received_at)

    async with media_server(handler) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        await peer.stream_audio(bytes(320 * 60), 8000)  # 60 frames, 1.2 s, at the peer's phase
        await asyncio.sleep(0.05)
        (session,) = server.live_sessions()
        slot = server.pacer.slot_of(session)
        assert slot is not None
        await peer.close()
    assert len(arrivals) == 60
    # where the frames landed (circular mean of the arrival phases), plus the 3 ms lead
    angles = [2 * math.pi * (t % FRAME) / FRAME for t in arrivals[10:]]
    mean = math.atan2(sum(map(math.sin, angles)), sum(map(math.cos, angles)))
    want = (mean / (2 * math.pi) * FRAME + LEAD) % FRAME
    late = wrapped(slot * SLOT - want)
    assert -0.0015 <= late <= 2 * SLOT + 0.0015  # the slot falls 3..5 ms after the arrivals


def test_writes_due_at_an_inbound_frame_ride_its_wake_up_not_the_timer_s(sim) -> None:
    clock, loop, pacer = sim
    writers = [Writer(clock) for _ in range(40)]
    for index, w in enumerate(writers):
        pacer.add(w)
        pacer.steer(w, (index % 20) * SLOT + 0.0001, jump=True)  # two calls in every slot
    start = clock.now
    # reads arrive 0.3 ms before each sub-tick (within the pacer's early tolerance), as with
    # many calls at spread phases; the timer would fire 0.3 ms later
    for k in range(1, 20 * 500):
        loop.run_until(start + k * SLOT - 0.0003)
        pacer.serve_due()
    assert loop.wakes == 0  # every write rode a read's wake-up
    for w in writers:
        deadlines = [d for _, d, _ in w.writes]
        assert len(deadlines) >= 495
        assert all(FRAME - 1e-9 < b - a < FRAME + 1e-9 for a, b in itertools.pairwise(deadlines))
        assert all(-0.0005 <= at - d <= 1e-9 for at, d, _ in w.writes)
        assert all(s == 0 for _, _, s in w.writes)
    # with nothing due, serve_due writes nothing and leaves the timer armed
    before = sum(len(w.writes) for w in writers)
    clock.now += 0.0001
    pacer.serve_due()
    assert sum(len(w.writes) for w in writers) == before
    loop.run_until(clock.now + FRAME)
    assert loop.wakes > 0 and sum(len(w.writes) for w in writers) > before
