"""Domain events and the in-process event bus.

Everything that happens to a call is published here as a small frozen dataclass. The store
writes them, the API and dashboard stream them, metrics count them. With Redis configured the
bus is bridged to a Redis channel so every instance sees every event (``operadora.state``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


def _now() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class DomainEvent:
    call_id: str
    at: float = field(default_factory=_now, kw_only=True)

    @property
    def event_type(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class CallArrivedEvent(DomainEvent):
    caller_id: str = ""
    did: str = ""
    channel_id: str = ""
    server: str = ""
    instance: str = ""


@dataclass(frozen=True, slots=True)
class CallAnsweredEvent(DomainEvent):
    pass


@dataclass(frozen=True, slots=True)
class MediaConnectedEvent(DomainEvent):
    sample_rate: int = 8000


@dataclass(frozen=True, slots=True)
class SpeakingEvent(DomainEvent):
    speaker: str = "caller"  # caller | agent
    speaking: bool = True


@dataclass(frozen=True, slots=True)
class TurnEvent(DomainEvent):
    speaker: str = "caller"  # caller | agent
    text: str = ""
    started_at: float = 0.0
    ended_at: float = 0.0
    interrupted: bool = False
    latency_ms: float | None = None  # voice-to-voice, on agent turns
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DtmfEvent(DomainEvent):
    digit: str = ""


@dataclass(frozen=True, slots=True)
class ActionRequestedEvent(DomainEvent):
    """The agent (or a person through the API) asks call control to act."""

    action: str = ""  # transfer | attended_transfer | queue | callback | hangup | record
    target: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    requested_by: str = "agent"


@dataclass(frozen=True, slots=True)
class TransferEvent(DomainEvent):
    transfer_id: str = ""
    kind: str = ""  # blind | attended | refer | queue
    target: str = ""
    state: str = ""
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class RecordingEvent(DomainEvent):
    name: str = ""
    state: str = ""  # started | finished | failed
    reason: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class CallEndedEvent(DomainEvent):
    disposition: str = ""  # resolved | transferred | abandoned | callback | failed | spam
    cause: int | None = None
    cause_txt: str = ""
    ended_by: str = ""  # caller | agent | api | system


Handler = Callable[[DomainEvent], Any]


class EventBus:
    """Fan-out of domain events to async subscribers; a slow subscriber never blocks a call."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self._queues: set[asyncio.Queue[DomainEvent]] = set()
        self._queue_size = queue_size

    def publish(self, event: DomainEvent) -> None:
        for queue in tuple(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("event subscriber is too slow; dropped %s", event.event_type)

    def subscribe(self) -> asyncio.Queue[DomainEvent]:
        queue: asyncio.Queue[DomainEvent] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[DomainEvent]) -> None:
        self._queues.discard(queue)
