"""One 20 ms media clock per event loop for every paced audio producer of the simulator.

Playbacks, device sources, music on hold and bridge mixers register a tick callback instead
of each running its own sleeping task: one wake-up per 20 ms whatever the number of calls,
on an absolute schedule (no drift), with all streams in phase.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Callable

from operadora.sim.media import FRAME_MS

log = logging.getLogger(__name__)

Tick = Callable[[], bool]  # called every 20 ms; returns False to stop being called
TICK_S = FRAME_MS / 1000


class MediaClock:
    def __init__(self) -> None:
        self._subscribers: dict[int, Tick] = {}
        self._keys = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    def add(self, tick: Tick) -> int:
        key = next(self._keys)
        self._subscribers[key] = tick
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return key

    def remove(self, key: int) -> None:
        self._subscribers.pop(key, None)

    def __len__(self) -> int:
        return len(self._subscribers)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self._subscribers:
            next_at += TICK_S
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.2:  # the loop stalled: do not replay the missed ticks in a burst
                next_at = loop.time()
            for key, tick in list(self._subscribers.items()):
                try:
                    keep = tick()
                except Exception:
                    log.exception("media clock subscriber failed; removing it")
                    keep = False
                if not keep:
                    self._subscribers.pop(key, None)


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock] = (
    weakref.WeakKeyDictionary()
)


def media_clock() -> MediaClock:
    """The running loop's media clock."""
    loop = asyncio.get_running_loop()
    clock = _clocks.get(loop)
    if clock is None:
        clock = _clocks[loop] = MediaClock()
    return clock


async def run_until_done(tick: Callable[[], bool]) -> None:
    """Call ``tick`` every 20 ms until it returns False (or the caller is cancelled)."""
    done = asyncio.get_running_loop().create_future()

    def wrapped() -> bool:
        if done.done():
            return False
        if tick():
            return True
        done.set_result(None)
        return False

    clock = media_clock()
    key = clock.add(wrapped)
    try:
        await done
    finally:
        clock.remove(key)
