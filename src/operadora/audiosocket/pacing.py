"""The paced writer's clock and the per-connection media statistics.

One :class:`Pacer` per event loop drives every session's writes from one timer. The frame
period is cut into ``slots`` sub-ticks on an absolute monotonic grid (sub-tick ``j`` is due at
``j * frame_s / slots``); each session owns one slot and writes exactly one frame each time
its slot comes round, so a 10-minute call does not drift. A session's slot follows the phase
of its inbound frames (:class:`PhaseTracker`): its write falls a few ms after the caller's
frame arrives, so a ``clear()`` made while handling that frame is on the wire within a few
ms. A slot moves by at most one sub-tick per frame (no burst); after a stall the missed
deadlines are skipped and counted, never sent as a burst.
"""

from __future__ import annotations

import asyncio
import math
import operator
import time
from dataclasses import dataclass, field
from typing import Protocol

from operadora.runtime import add_urgent_work, remove_urgent_work

_BUCKET_MS = 0.1
_BUCKETS = 1000  # 0..100 ms in 0.1 ms steps, then one overflow bucket


class FrameClock:
    """Deadlines ``start + k * frame_s``; pure arithmetic, no I/O (tested in simulated time)."""

    __slots__ = ("_index", "frame_s", "start")

    def __init__(self, start: float, frame_s: float) -> None:
        if frame_s <= 0:
            raise ValueError("frame_s must be positive")
        self.start = start
        self.frame_s = frame_s
        self._index = 0

    @property
    def next_deadline(self) -> float:
        return self.start + self._index * self.frame_s

    def tick(self, now: float) -> tuple[float, int]:
        """Claim the frame due at ``now``: its deadline and how many deadlines were missed."""
        due = math.floor((now - self.start) / self.frame_s + 1e-9)
        skipped = max(0, due - self._index)
        self._index += skipped
        deadline = self.start + self._index * self.frame_s
        self._index += 1
        return deadline, skipped


@dataclass(slots=True)
class MediaStats:
    """Counters of one connection (or the sum of many): frames, lateness, pacing error."""

    frames_in: int = 0
    dtmf_in: int = 0
    frames_out: int = 0
    audio_frames_out: int = 0  # frames carrying agent audio (the rest is silence filler)
    late_frames: int = 0  # written more than ``late_after_s`` after their deadline
    skipped_frames: int = 0  # deadlines missed by a stalled loop (never burst afterwards)
    dropped_frames: int = 0  # not written because the peer stopped reading
    histogram: list[int] = field(default_factory=lambda: [0] * (_BUCKETS + 1))

    def record_write(self, error_s: float, late_after_s: float) -> None:
        """Count one frame written ``error_s`` after its deadline."""
        self.frames_out += 1
        if error_s > late_after_s:
            self.late_frames += 1
        bucket = int(error_s * (1000.0 / _BUCKET_MS)) if error_s > 0 else 0
        self.histogram[bucket if bucket < _BUCKETS else _BUCKETS] += 1

    def merge(self, other: MediaStats) -> None:
        self.frames_in += other.frames_in
        self.dtmf_in += other.dtmf_in
        self.frames_out += other.frames_out
        self.audio_frames_out += other.audio_frames_out
        self.late_frames += other.late_frames
        self.skipped_frames += other.skipped_frames
        self.dropped_frames += other.dropped_frames
        self.histogram = list(map(operator.add, self.histogram, other.histogram))

    def pacing_percentile_ms(self, percentile: float) -> float:
        """Upper bound (0.1 ms resolution) of the given percentile of write lateness."""
        total = sum(self.histogram)
        if not total:
            return 0.0
        rank = math.ceil(total * percentile / 100.0)
        seen = 0
        for i, count in enumerate(self.histogram):
            seen += count
            if seen >= rank:
                return (i + 1) * _BUCKET_MS if i < _BUCKETS else math.inf
        return math.inf  # pragma: no cover - rank <= total


class PhaseTracker:
    """Where inbound frames land within the frame period, robust to jitter (pure arithmetic).

    ``observe(t)`` takes each inbound frame's arrival time; ``phase`` is then the estimated
    arrival phase, ``t mod frame_s`` in seconds. Each arrival pulls the estimate by ``gain`` of
    its (wrapped) distance, and that distance is clamped to ``max_pull_s`` first, so one
    frame that was held up in the network (or two read together) barely moves it while a real
    change of the sender's phase is followed within a second. After ``gap_s`` without inbound
    audio (silence suppression, a re-INVITE) the next arrival restarts the estimate.
    """

    __slots__ = ("_last", "frame_s", "gain", "gap_s", "max_pull_s", "phase")

    def __init__(
        self,
        frame_s: float,
        *,
        gain: float = 0.1,
        max_pull_s: float = 0.002,
        gap_s: float = 1.0,
    ) -> None:
        if frame_s <= 0:
            raise ValueError("frame_s must be positive")
        if not 0 < gain <= 1:
            raise ValueError("gain must be in (0, 1]")
        self.frame_s = frame_s
        self.gain = gain
        self.max_pull_s = max_pull_s
        self.gap_s = gap_s
        self.phase: float | None = None
        self._last = -math.inf

    def observe(self, t: float) -> float:
        """Take one arrival at ``t`` (monotonic seconds); return the updated phase."""
        frame_s = self.frame_s
        phase = self.phase
        gap = t - self._last
        self._last = t
        if phase is None or gap > self.gap_s:
            phase = t % frame_s
        else:
            error = (t - phase) % frame_s
            if error >= 0.5 * frame_s:
                error -= frame_s
            limit = self.max_pull_s
            if error > limit:
                error = limit
            elif error < -limit:
                error = -limit
            phase = (phase + self.gain * error) % frame_s
        self.phase = phase
        return phase


class PacedSession(Protocol):
    def on_tick(self, deadline: float, skipped: int) -> None: ...


class _Lane:
    """A session's place in the :class:`Pacer`: its next sub-tick and the slot it steers to."""

    __slots__ = ("next_tick", "session", "target")

    def __init__(self, session: PacedSession, next_tick: int) -> None:
        self.session = session
        self.next_tick = next_tick
        self.target = -1  # the slot the session asked for (-1: stay where it is)


class Pacer:
    """One timer per event loop; every session writes one frame per period in its own slot.

    The period ``frame_s`` is cut into ``slots`` sub-ticks (1 ms each by default) on the
    absolute monotonic grid; the timer wakes only for sub-ticks whose slot holds sessions, and
    a wake serves every session due by then, so 500 calls cost at most ``slots`` wake-ups per
    period, not 500. A new session starts one period after :meth:`add`, in the slot of that
    moment (the free-running grid); :meth:`steer` moves it toward the slot just after a
    wanted phase, one sub-tick per frame (intervals of ``frame_s`` ± one sub-tick, never a
    burst), or at once with ``jump`` (before it has written anything).

    The grid and the lateness are read from ``time.monotonic()`` rather than ``loop.time()``:
    uvloop's loop clock is cached per loop iteration with millisecond resolution.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        frame_s: float = 0.02,
        *,
        slots: int = 20,
        hysteresis_slots: int = 2,
    ) -> None:
        if frame_s <= 0:
            raise ValueError("frame_s must be positive")
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._loop = loop
        self.frame_s = frame_s
        self.slots = slots
        self.slot_s = frame_s / slots
        self.hysteresis_slots = hysteresis_slots
        # a timer may fire up to half a sub-tick early (uvloop rounds delays to whole ms)
        self._early_s = min(0.0005, self.slot_s / 2)
        self._lanes: dict[PacedSession, _Lane] = {}
        self._buckets: list[dict[_Lane, None]] = [{} for _ in range(slots)]
        self._cursor = 0  # the first sub-tick not served yet
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tick = 0
        self.ticks = 0  # wake-ups that wrote at least one frame
        # long work on the loop (the VAD's batches) lets due writes go between its chunks
        add_urgent_work(loop, self.serve_due)

    def __len__(self) -> int:
        return len(self._lanes)

    def _now_tick(self) -> int:
        return math.floor((time.monotonic() + self._early_s) / self.slot_s)

    def add(self, session: PacedSession) -> None:
        """Register ``session``; its first frame is due one period from now."""
        if session in self._lanes:
            return
        now_tick = self._now_tick()
        if not self._lanes:
            self._cursor = now_tick + 1
        lane = _Lane(session, now_tick + self.slots)
        self._lanes[session] = lane
        self._buckets[lane.next_tick % self.slots][lane] = None
        self._schedule(lane.next_tick)

    def remove(self, session: PacedSession) -> None:
        lane = self._lanes.pop(session, None)
        if lane is None:
            return
        self._buckets[lane.next_tick % self.slots].pop(lane, None)
        if not self._lanes and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        remove_urgent_work(self._loop, self.serve_due)
        self._lanes.clear()
        for bucket in self._buckets:
            bucket.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def slot_of(self, session: PacedSession) -> int | None:
        """The slot of the session's next write (None if it is not registered)."""
        lane = self._lanes.get(session)
        return None if lane is None else lane.next_tick % self.slots

    def steer(self, session: PacedSession, write_phase: float, *, jump: bool = False) -> None:
        """Ask for the session's writes to fall at (or just after) ``write_phase``, in seconds
        modulo ``frame_s`` on the monotonic clock.

        The session keeps its slot while that slot falls within ``hysteresis_slots`` after the
        wanted phase (so jitter does not make it wander); otherwise it moves one sub-tick per
        frame toward it, or at once with ``jump`` (only safe before its first write).
        """
        lane = self._lanes.get(session)
        if lane is None:
            return
        slots = self.slots
        want = (write_phase % self.frame_s) / self.slot_s  # in sub-ticks, [0, slots)
        current = lane.target if lane.target >= 0 else lane.next_tick % slots
        if (current - want) % slots <= self.hysteresis_slots + 1e-6:
            lane.target = current
        else:
            lane.target = math.ceil(want - 1e-6) % slots
        if jump and lane.next_tick % slots != lane.target:
            base = max(self._now_tick() + 1, self._cursor)
            self._move(lane, base + (lane.target - base) % slots)
            self._schedule(lane.next_tick)

    def _move(self, lane: _Lane, next_tick: int) -> None:
        slots = self.slots
        old = lane.next_tick % slots
        new = next_tick % slots
        lane.next_tick = next_tick
        if old != new:
            del self._buckets[old][lane]
            self._buckets[new][lane] = None

    def _schedule(self, tick: int) -> None:
        """Make sure the timer fires by sub-tick ``tick``."""
        if self._timer is not None:
            if self._timer_tick <= tick:
                return
            self._timer.cancel()
        self._timer_tick = tick
        delay = max(0.0, tick * self.slot_s - time.monotonic())
        self._timer = self._loop.call_later(delay, self._wake)

    def serve_due(self) -> None:
        """Write what is due now from inside another callback (the media server calls it after
        each inbound frame), sparing the timer a wake-up: with calls' frames arriving at
        every phase of the period, most writes then ride the loop's wake-ups for reads, and
        none waits behind the reads of the same iteration. Costs one clock read when nothing
        is due."""
        if self._timer is not None and self._now_tick() >= self._timer_tick:
            self._timer.cancel()
            self._wake()

    def _wake(self) -> None:
        self._timer = None
        slots = self.slots
        slot_s = self.slot_s
        buckets = self._buckets
        due = self._now_tick()
        wrote = False
        # after a stall longer than a period each slot is served once, for its latest deadline
        for tick in range(max(self._cursor, due - slots + 1), due + 1):
            bucket = buckets[tick % slots]
            if not bucket:
                continue
            deadline = tick * slot_s
            for lane in list(bucket):
                behind = tick - lane.next_tick
                if behind < 0:
                    continue  # moved here for a later period
                wrote = True
                lane.session.on_tick(deadline, behind // slots)
                if lane.session not in self._lanes:
                    continue  # the session ended while writing
                step = 0
                target = lane.target
                if target >= 0:
                    slot = tick % slots
                    if target != slot:
                        step = 1 if (target - slot) % slots <= slots // 2 else -1
                        if tick + slots + step <= due:
                            step = 0  # catching up after a stall: never early twice
                self._move(lane, tick + slots + step)
        self._cursor = due + 1
        if wrote:
            self.ticks += 1
        if self._lanes:
            for offset in range(slots):
                if buckets[(self._cursor + offset) % slots]:
                    self._schedule(self._cursor + offset)
                    break
