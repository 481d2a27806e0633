"""The live view: calls in progress built from the cluster's events, streamed to dashboards.

Each dashboard connection gets a snapshot and then every event, as Server-Sent Events.
A slow dashboard loses events (and is told to resynchronise) rather than slowing the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field

from operadora import events as ev
from operadora.state.codec import event_to_dict
from operadora.store import Store

MAX_LIVE_TURNS = 100


class LiveTurn(BaseModel):
    speaker: str
    text: str
    at: float
    latency_ms: float | None = None


class LiveCall(BaseModel):
    id: str
    caller_id: str = ""
    did: str = ""
    server: str = ""
    instance: str = ""
    state: str = "arrived"
    arrived_at: float
    answered_at: float | None = None
    speaking: list[str] = Field(default_factory=list)
    turns: list[LiveTurn] = Field(default_factory=list)
    transfer: dict[str, Any] | None = None
    recording: str | None = None


class LiveView:
    """Projection of live calls plus fan-out of events to SSE clients."""

    def __init__(self, bus: ev.EventBus, client_queue: int = 1000) -> None:
        self.bus = bus
        self.calls: dict[str, LiveCall] = {}
        self._clients: set[asyncio.Queue[str | None]] = set()
        self._client_queue = client_queue
        self._queue: asyncio.Queue[ev.DomainEvent] | None = None
        self._task: asyncio.Task[None] | None = None

    async def load(self, store: Store) -> None:
        """Seed with calls the database says are live (after a restart of the API alone)."""
        from operadora.store.calls import CallFilter

        page = await store.calls.list_calls(CallFilter(state="live", limit=1000))
        for c in page.items:
            self.calls.setdefault(
                c.id,
                LiveCall(
                    id=c.id,
                    caller_id=c.caller_id,
                    did=c.did,
                    server=c.server,
                    instance=c.instance,
                    state=c.state,
                    arrived_at=c.arrived_at,
                    answered_at=c.answered_at,
                ),
            )

    async def start(self) -> None:
        self._queue = self.bus.subscribe()
        self._task = asyncio.create_task(self._run(self._queue), name="live-view")

    async def stop(self) -> None:
        if self._queue is not None:
            self.bus.unsubscribe(self._queue)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = self._queue = None
        self.close_streams()

    def close_streams(self) -> None:
        """End every open stream (the server is shutting down; dashboards reconnect)."""
        for client in tuple(self._clients):
            while not client.empty():
                client.get_nowait()
            client.put_nowait(None)

    async def _run(self, queue: asyncio.Queue[ev.DomainEvent]) -> None:
        while True:
            event = await queue.get()
            self.apply(event)
            self._broadcast(sse(type(event).__name__, event_to_dict(event)))

    def apply(self, event: ev.DomainEvent) -> None:
        call = self.calls.get(event.call_id)
        if isinstance(event, ev.CallArrivedEvent):
            self.calls[event.call_id] = LiveCall(
                id=event.call_id,
                caller_id=event.caller_id,
                did=event.did,
                server=event.server,
                instance=event.instance,
                arrived_at=event.at,
            )
            return
        if isinstance(event, ev.CallEndedEvent):
            self.calls.pop(event.call_id, None)
            return
        if call is None:
            call = self.calls[event.call_id] = LiveCall(id=event.call_id, arrived_at=event.at)
        match event:
            case ev.CallAnsweredEvent():
                call.state, call.answered_at = "answered", event.at
            case ev.MediaConnectedEvent():
                call.state = "connected"
            case ev.SpeakingEvent():
                others = [s for s in call.speaking if s != event.speaker]
                call.speaking = [*others, event.speaker] if event.speaking else others
            case ev.TurnEvent():
                call.turns.append(
                    LiveTurn(
                        speaker=event.speaker,
                        text=event.text,
                        at=event.at,
                        latency_ms=event.latency_ms,
                    )
                )
                del call.turns[:-MAX_LIVE_TURNS]
            case ev.TransferEvent():
                call.transfer = (
                    None
                    if event.outcome
                    else {
                        "id": event.transfer_id,
                        "kind": event.kind,
                        "target": event.target,
                        "state": event.state,
                    }
                )
            case ev.RecordingEvent():
                call.recording = event.name if event.state == "started" else None
            case _:
                pass

    def snapshot(self) -> list[LiveCall]:
        return sorted(self.calls.values(), key=lambda c: (c.arrived_at, c.id))

    def _broadcast(self, message: str) -> None:
        for client in tuple(self._clients):
            try:
                client.put_nowait(message)
            except asyncio.QueueFull:  # too slow: drop its backlog and make it resync
                while not client.empty():
                    client.get_nowait()
                client.put_nowait(sse("resync", {}))

    async def stream(
        self, heartbeat_s: float = 15.0, allowed: Callable[[], Awaitable[bool]] | None = None
    ) -> AsyncIterator[str]:
        """One dashboard's SSE stream: a snapshot, then events as they happen. ``allowed`` is
        asked at every heartbeat; the stream ends when it says no (a revoked token)."""
        client: asyncio.Queue[str | None] = asyncio.Queue(self._client_queue)
        self._clients.add(client)
        try:
            calls = [c.model_dump(mode="json") for c in self.snapshot()]
            yield sse("snapshot", {"calls": calls, "at": time.time()})
            while True:
                try:
                    message = await asyncio.wait_for(client.get(), heartbeat_s)
                except TimeoutError:
                    if allowed is not None and not await allowed():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                yield message
        finally:
            self._clients.discard(client)


def sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
