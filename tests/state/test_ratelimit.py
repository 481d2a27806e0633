import uuid

import pytest

from operadora.state import MemoryRateLimiter, RedisRateLimiter
from support import port_open, require


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.unit
async def test_more_than_five_calls_a_minute_is_spam() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(5, 60.0, clock)
    assert [await limiter.allow("+34600") for _ in range(6)] == [True] * 5 + [False]
    assert await limiter.allow("+34601") is True  # other numbers unaffected
    clock.now += 61
    assert await limiter.allow("+34600") is True
    assert await limiter.allow("") is True  # anonymous callers are never limited


@pytest.mark.unit
async def test_window_slides() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(2, 10.0, clock)
    assert await limiter.allow("a") and await limiter.allow("a")
    clock.now += 5
    assert await limiter.allow("a") is False
    clock.now += 5.5  # the first two fall out, the refused one is still counted
    assert await limiter.allow("a") is True
    assert await limiter.allow("a") is False


@pytest.mark.integration
async def test_redis_limit_is_shared_between_instances() -> None:
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    from redis.asyncio import Redis

    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"opd-test:{uuid.uuid4().hex}:"
    clock = Clock()
    one = RedisRateLimiter(redis, 5, 60.0, prefix, clock)
    two = RedisRateLimiter(redis, 5, 60.0, prefix, clock)
    try:
        results = [await (one if i % 2 else two).allow("+1555") for i in range(6)]
        assert results == [True] * 5 + [False]
        clock.now += 61
        assert await two.allow("+1555") is True
        assert await redis.ttl(prefix + "+1555") > 0  # keys expire on their own
    finally:
        await redis.delete(prefix + "+1555")
        await redis.aclose()
