"""Rate limit of inbound calls per caller ID (sliding window), in-process or in Redis.

Call control asks ``await limiter.allow(caller_id)`` when a call arrives; ``False`` means the
number called more than ``limit`` times within ``window_s``: a spam call, which call control
answers with a polite message, hangs up and ends with ``disposition="spam"``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

Clock = Callable[[], float]


class RateLimiter(Protocol):
    limit: int
    window_s: float

    async def allow(self, caller_id: str) -> bool: ...


class MemoryRateLimiter:
    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._seen: dict[str, deque[float]] = {}

    async def allow(self, caller_id: str) -> bool:
        if not caller_id:
            return True  # anonymous callers cannot be told apart
        now = self._clock()
        seen = self._seen.setdefault(caller_id, deque())
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        seen.append(now)
        if len(self._seen) > 100_000:
            self._prune(now)
        return len(seen) <= self.limit

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._seen.items() if not v or v[-1] <= now - self.window_s]:
            del self._seen[key]


class RedisRateLimiter:
    """The same sliding window in a Redis sorted set, shared by every instance."""

    def __init__(
        self,
        redis: Redis,
        limit: int,
        window_s: float,
        prefix: str = "operadora:rate:",
        clock: Clock = time.time,
    ) -> None:
        self.redis, self.limit, self.window_s = redis, limit, window_s
        self.prefix, self._clock = prefix, clock
        self._counter = 0

    async def allow(self, caller_id: str) -> bool:
        if not caller_id:
            return True
        now = self._clock()
        self._counter += 1
        key = self.prefix + caller_id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - self.window_s)
            pipe.zadd(key, {f"{now:.6f}:{id(self)}:{self._counter}": now})
            pipe.zcard(key)
            pipe.expire(key, max(1, int(self.window_s) + 1))
            _, _, count, _ = await pipe.execute()
        return int(count) <= self.limit
