"""Shared state: rate limits and event fan-out, in-process or in Redis."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from operadora.config import ApiSettings, StateSettings, require_secret
from operadora.events import EventBus
from operadora.state.bridge import LocalForwarder, RedisEventBridge
from operadora.state.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter


@dataclass
class StateBackend:
    """The rate limiter and the cluster-wide event bus of this instance."""

    instance: str
    rate_limiter: RateLimiter
    cluster_bus: EventBus
    forwarder: LocalForwarder
    redis: Any = field(default=None)

    async def start(self) -> None:
        await self.forwarder.start()

    async def stop(self) -> None:
        await self.forwarder.stop()
        if self.redis is not None:
            await self.redis.aclose()


def instance_name(settings: StateSettings) -> str:
    return settings.instance_id or socket.gethostname()


def open_state(settings: StateSettings, api: ApiSettings, bus: EventBus) -> StateBackend:
    """Build the backend the settings name (``memory`` or ``redis``)."""
    instance = instance_name(settings)
    cluster = EventBus()
    if settings.backend == "redis":
        from redis.asyncio import Redis

        redis = Redis.from_url(require_secret(settings.redis_url, "state.redis_url"))
        return StateBackend(
            instance,
            RedisRateLimiter(redis, api.rate_limit_calls, api.rate_limit_window_s),
            cluster,
            RedisEventBridge(bus, cluster, redis, instance),
            redis,
        )
    return StateBackend(
        instance,
        MemoryRateLimiter(api.rate_limit_calls, api.rate_limit_window_s),
        cluster,
        LocalForwarder(bus, cluster),
    )


__all__ = ["MemoryRateLimiter", "RateLimiter", "RedisRateLimiter", "StateBackend", "open_state"]
