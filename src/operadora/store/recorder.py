"""The call recorder: writes every domain event to the store as the call goes.

It also starts recordings the agent asks for (``ActionRequestedEvent(action="record")``) and
the ones the negative-sentiment signal calls for, through ``CallActions.record``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from operadora import events as ev
from operadora.store.calls import Written
from operadora.store.sentiment import SentimentTracker

if TYPE_CHECKING:
    from operadora.api.actions import CallActions
    from operadora.store import Store

log = logging.getLogger(__name__)
MAX_BATCH = 500


class CallRecorder:
    def __init__(
        self,
        store: Store,
        bus: ev.EventBus,
        *,
        actions: CallActions | None = None,
        instance: str | None = None,
        auto_record: bool = True,
    ) -> None:
        self.store = store
        self.bus = bus
        self.actions = actions
        self.instance = instance
        self.auto_record = auto_record
        self._queue: asyncio.Queue[ev.DomainEvent] | None = None
        self._task: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._sentiment: dict[str, SentimentTracker] = {}
        self._recording: set[str] = set()
        self._caller_ids: dict[str, str] = {}

    async def close_out_open_calls(self) -> list[str]:
        """Give a complete record to calls a previous run left open (this instance's only,
        when the instance has a name)."""
        closed = await self.store.calls.close_out_open_calls(self.instance)
        if closed:
            log.warning("closed out %d call(s) left open by a previous run", len(closed))
        return closed

    async def start(self) -> None:
        self._queue = self.bus.subscribe()
        await self.close_out_open_calls()
        self._task = asyncio.create_task(self._run(self._queue), name="call-recorder")
        self._retention = asyncio.create_task(self._enforce_retention(), name="retention")

    async def stop(self) -> None:
        if self._queue is not None:
            await self.drain()
            self.bus.unsubscribe(self._queue)
        for task in (self._task, self._retention):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._retention = self._queue = None

    async def _enforce_retention(self, every_s: float = 3600.0) -> None:
        """Delete recordings past ``store.recording_retention_days``, now and every hour."""
        while True:
            try:
                removed = await self.store.admin.enforce_retention(
                    self.store.recording_retention_days
                )
                if removed:
                    log.info("deleted %d recording(s) past their retention", removed)
            except Exception:
                log.exception("could not enforce the recording retention")
            await asyncio.sleep(every_s)

    async def drain(self) -> None:
        """Wait until every event published so far is written."""
        if self._queue is not None:
            await self._queue.join()

    async def _run(self, queue: asyncio.Queue[ev.DomainEvent]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self.handle_batch(batch)
            except Exception:
                log.exception("could not record %d event(s)", len(batch))
            finally:
                for _ in batch:
                    queue.task_done()

    async def handle(self, event: ev.DomainEvent) -> None:
        await self.handle_batch([event])

    async def handle_batch(self, events: list[ev.DomainEvent]) -> None:
        """Write what the events say, in order, in one transaction (the events queued while
        the previous write ran); if that fails, event by event, so that one bad event loses
        nothing else."""
        writes: list[Written] = []
        for event in events:
            try:
                writes.extend(await self._prepare(event))
            except Exception:
                log.exception(
                    "could not handle %s for call %s", type(event).__name__, event.call_id
                )
        try:
            await self.store.calls.write(writes)
        except Exception:
            if len(writes) == 1:
                raise
            log.warning("writing %d events at once failed; writing one by one", len(writes))
            for write in writes:
                try:
                    await self.store.calls.write([write])
                except Exception:
                    log.exception(
                        "could not record %s for call %s",
                        type(write[0]).__name__,
                        write[0].call_id,
                    )
        for event in events:
            if isinstance(event, ev.CallEndedEvent):
                self._forget(event.call_id)

    async def _prepare(self, event: ev.DomainEvent) -> list[Written]:
        """The event's side effects (recordings to start, callbacks, audit), then its writes."""
        match event:
            case ev.CallArrivedEvent():
                self._caller_ids[event.call_id] = event.caller_id
            case ev.TurnEvent():
                return [(event, await self._caller_turn(event))]
            case ev.RecordingEvent() if event.state == "started":
                self._recording.add(event.call_id)
            case ev.ActionRequestedEvent():
                await self._action(event)
                return []
            case ev.SpeakingEvent() | ev.DtmfEvent():
                return []
            case _:
                pass
        return [(event, False)]

    async def _caller_turn(self, event: ev.TurnEvent) -> bool:
        if event.speaker != "caller" or not event.text:
            return False
        tracker = self._sentiment.setdefault(event.call_id, SentimentTracker())
        turned = tracker.add(event.text)
        if turned and self.auto_record:
            await self._record(event.call_id, "negative-sentiment", "system")
        return turned

    async def _action(self, event: ev.ActionRequestedEvent) -> None:
        await self.store.admin.audit(
            event.requested_by or "agent",
            event.action,
            event.call_id,
            target=event.target,
            params=event.params,
        )
        if event.action == "record" and event.requested_by != "api":
            await self._record(
                event.call_id, str(event.params.get("reason", "agent")), event.requested_by
            )
        elif event.action == "callback":
            number = str(event.params.get("number") or self._caller_ids.get(event.call_id, ""))
            due = event.params.get("at")
            await self.store.admin.add_callback(
                number,
                call_id=event.call_id,
                due_at=float(due) if isinstance(due, int | float) else None,
                note=str(event.params.get("note", event.target)),
            )

    async def _record(self, call_id: str, reason: str, actor: str) -> None:
        if self.actions is None or call_id in self._recording:
            return
        self._recording.add(call_id)
        try:
            name = await self.actions.record(call_id, reason)
        except Exception as exc:
            self._recording.discard(call_id)
            log.warning("recording call %s (%s) failed: %s", call_id, reason, exc)
            return
        await self.store.admin.audit(actor, "record", call_id, reason=reason, name=name)

    def _forget(self, call_id: str) -> None:
        self._sentiment.pop(call_id, None)
        self._recording.discard(call_id)
        self._caller_ids.pop(call_id, None)
