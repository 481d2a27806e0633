"""Event fan-out between instances over Redis pub/sub.

The local bus carries this instance's events (the recorder writes those). The cluster bus
carries every instance's events (the dashboard and the live view read it): local events are
forwarded to it and published on Redis, and other instances' events arrive from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from operadora.events import DomainEvent, EventBus
from operadora.state.codec import event_from_dict, event_to_dict

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
CHANNEL = "operadora:events"


class LocalForwarder:
    """Without Redis the cluster is this instance: forward local events to the cluster bus."""

    def __init__(self, local: EventBus, cluster: EventBus) -> None:
        self.local, self.cluster = local, cluster
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[DomainEvent] | None = None

    async def start(self) -> None:
        self._queue = self.local.subscribe()
        self._task = asyncio.create_task(self._pump(self._queue))

    async def _pump(self, queue: asyncio.Queue[DomainEvent]) -> None:
        while True:
            event = await queue.get()
            await self.forward(event)

    async def forward(self, event: DomainEvent) -> None:
        self.cluster.publish(event)

    async def stop(self) -> None:
        if self._queue is not None:
            self.local.unsubscribe(self._queue)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = self._queue = None


class RedisEventBridge(LocalForwarder):
    def __init__(
        self,
        local: EventBus,
        cluster: EventBus,
        redis: Redis,
        instance: str,
        channel: str = CHANNEL,
    ) -> None:
        super().__init__(local, cluster)
        self.redis, self.instance, self.channel = redis, instance, channel
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)
        self._listener = asyncio.create_task(self._listen(pubsub))
        await super().start()

    async def forward(self, event: DomainEvent) -> None:
        self.cluster.publish(event)
        message = json.dumps({"origin": self.instance, "event": event_to_dict(event)})
        try:
            await self.redis.publish(self.channel, message)
        except Exception as exc:  # Redis down: this instance still works on its own
            log.warning("could not fan out %s: %s", type(event).__name__, exc)

    async def _listen(self, pubsub: Any) -> None:
        try:
            async for message in pubsub.listen():
                self._receive(message.get("data"))
        finally:
            await pubsub.aclose()

    def _receive(self, data: Any) -> None:
        try:
            payload = json.loads(data)
            if payload.get("origin") == self.instance:
                return
            self.cluster.publish(event_from_dict(payload["event"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored a malformed event from Redis: %s", exc)

    async def stop(self) -> None:
        await super().stop()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
