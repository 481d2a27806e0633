"""The paced writer's clock and the per-connection media statistics.

One :class:`Pacer` per event loop wakes once per frame on a monotonic grid
(``start + k * frame_s``, so a 10-minute call does not drift) and asks every registered
session to write exactly one frame. After a stall the missed deadlines are skipped and
counted, never sent as a burst.
"""

from __future__ import annotations

import asyncio
import math
import operator
import time
from dataclasses import dataclass, field
from typing import Protocol

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


class PacedSession(Protocol):
    def on_tick(self, deadline: float, skipped: int) -> None: ...


class Pacer:
    """Wakes every ``frame_s`` on a monotonic grid and lets each session write one frame.

    The grid and the lateness are read from ``time.monotonic()`` rather than ``loop.time()``:
    uvloop's loop clock is cached per loop iteration with millisecond resolution.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, frame_s: float = 0.02) -> None:
        self._loop = loop
        self.frame_s = frame_s
        self._sessions: dict[PacedSession, None] = {}
        self._clock: FrameClock | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.ticks = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: PacedSession) -> None:
        self._sessions[session] = None
        if self._timer is None:
            self._clock = FrameClock(time.monotonic() + self.frame_s, self.frame_s)
            self._timer = self._loop.call_later(self.frame_s, self._tick)

    def remove(self, session: PacedSession) -> None:
        self._sessions.pop(session, None)
        if not self._sessions and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._clock = None

    def close(self) -> None:
        self._sessions.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        clock = self._clock
        if clock is None:
            return
        deadline, skipped = clock.tick(time.monotonic())
        self.ticks += 1
        for session in list(self._sessions):
            session.on_tick(deadline, skipped)
        if self._timer is not None and self._clock is clock:
            delay = max(0.0, clock.next_deadline - time.monotonic())
            self._timer = self._loop.call_later(delay, self._tick)
