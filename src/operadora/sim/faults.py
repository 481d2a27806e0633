"""Fault injection for the PBX simulator: what a real network and a real Asterisk do to you.

Faults: WebSocket drops (a clean close or a torn TCP connection; or torn with an event still in
flight, which is lost), 5xx responses, slow responses, events about channels nobody knows,
duplicated events and events out of order.
They are armed from Python (``injector.fail_requests(status=503, count=2)``) or over HTTP
(``POST /sim/faults`` with the same fields as :class:`FaultPlan`, ``GET`` to read the plan and
the counters, ``DELETE`` to clear, ``POST /sim/faults/ws-drop`` to drop every events WebSocket now).

The injector plugs into the simulator with no help from it:

* ``injector.install(app)``: an aiohttp middleware in front of every route (5xx, slow) that also
  notes each open ``/ari/events`` request, so a drop can tear its TCP connection down;
* ``injector.attach(hub)``: each events subscriber's queue passes its events through
  ``injector.outgoing(event)``, which returns the events to send instead (the event, the event
  twice, a held-back earlier event after it, a stray event about an unknown channel...), then
  calls ``injector.settle()``, which carries out a WebSocket drop that fell due.

``track(ws, request)``, ``outgoing()`` and ``settle()`` are also there for a server that prefers
to call them itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import fnmatch
import hmac
import itertools
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

Event = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTROL_PREFIX = "/sim/"
EVENTS_PATH = "/ari/events"
UNKNOWN_CHANNEL_PREFIX = "sim-unknown-"


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(1, ge=1)  # how many times it fires; None: until cleared
    probability: float = Field(1.0, gt=0, le=1)  # chance it fires on each eligible request/event


class _RequestFault(_Fault):
    paths: list[str] = Field(default_factory=lambda: ["/ari/*"])  # fnmatch on the URL path
    methods: list[str] = Field(default_factory=list)  # empty: any method


class Http5xxFault(_RequestFault):
    status: int = Field(503, ge=500, le=599)


class SlowFault(_RequestFault):
    delay_ms: int = Field(1000, ge=0)


class _EventFault(_Fault):
    types: list[str] = Field(default_factory=list)  # ARI event types; empty: any


class DuplicateEventsFault(_EventFault):
    pass


class ReorderEventsFault(_EventFault):
    """Hold a matching event back and send it after the next event (or after ``max_hold_ms``
    when no other event comes, so nothing is lost)."""

    max_hold_ms: int = Field(500, ge=1)


class UnknownChannelEventsFault(_EventFault):
    """Send a copy of a channel event naming a channel that does not exist."""


class LostEventsFault(_EventFault):
    """The connection dies with a matching event still in flight: the event never arrives
    and every events WebSocket is torn down at once (the client must resynchronise)."""


class WsDropFault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_events: int = Field(1, ge=1)  # drop every events WebSocket after this many events
    count: int | None = Field(1, ge=1)  # drops to do; None: keep dropping
    mode: Literal["close", "abort"] = "abort"


class FaultPlan(BaseModel):
    """The armed faults; what ``POST /sim/faults`` accepts and ``GET`` shows."""

    model_config = ConfigDict(extra="forbid")

    http_5xx: Http5xxFault | None = None
    slow: SlowFault | None = None
    duplicate_events: DuplicateEventsFault | None = None
    reorder_events: ReorderEventsFault | None = None
    unknown_channel_events: UnknownChannelEventsFault | None = None
    lost_events: LostEventsFault | None = None
    ws_drop: WsDropFault | None = None


@dataclass(slots=True)
class FaultCounters:
    http_5xx: int = 0
    slow: int = 0
    duplicated: int = 0
    reordered: int = 0
    unknown_channel: int = 0
    lost: int = 0
    ws_drops: int = 0
    events_seen: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class _Tracked:
    request: web.Request
    ws: web.WebSocketResponse | None = None
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


class _Hub(Protocol):
    def subscribe(self, apps: Iterable[str], subscribe_all: bool) -> Any: ...

    def drop_all(self) -> int: ...


class _FaultQueue(asyncio.Queue[Any]):
    """A subscriber's event queue whose events pass through the injector on the way in."""

    def __init__(self, injector: FaultInjector, maxsize: int) -> None:
        super().__init__(maxsize)
        self._injector = injector
        self._closed = False

        self._release: asyncio.TimerHandle | None = None

    def close(self) -> None:
        self._closed = True

    def put_nowait(self, item: Any) -> None:
        if not isinstance(item, dict):  # None closes the subscriber
            self.release_held()
            self.close()
            super().put_nowait(item)
            return
        if self._closed:  # its socket was dropped: don't let it count towards faults
            return
        for event in self._injector.outgoing(item, stream=self):
            super().put_nowait(event)
        hold_s = self._injector.holding(self)
        if hold_s is not None and self._release is None:
            self._release = asyncio.get_running_loop().call_later(hold_s, self.release_held)
        self._injector.settle()

    def release_held(self) -> None:
        """Send an event held back for reordering now (the stream went quiet)."""
        if self._release is not None:
            self._release.cancel()
            self._release = None
        for event in self._injector.flush(self):
            if not self._closed:
                super().put_nowait(event)


class FaultInjector:
    def __init__(
        self,
        seed: int | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.plan = FaultPlan()
        self._sleep = sleep
        self.counters = FaultCounters()
        self._rng = random.Random(seed)
        self._sockets: dict[int, _Tracked] = {}
        self._held: dict[Hashable, tuple[Event, float]] = {}  # stream -> (event, max hold s)
        self._events_since_drop = 0
        self._unknown_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[bool]] = set()
        self._last_dropped = 0
        self._drop_due: Literal["close", "abort"] | None = None
        self._lost_drop_due = False
        self._hub: _Hub | None = None
        self._queues: weakref.WeakSet[_FaultQueue] = weakref.WeakSet()
        # with credentials (set by ``extension``), /sim/faults needs the simulator's basic auth
        self._credentials: tuple[str, str] | None = None
        self.events_path = EVENTS_PATH

    # --- arming from Python ---
    def arm(self, plan: FaultPlan) -> None:
        """Replace the armed faults with ``plan`` (counters keep counting)."""
        self.plan = plan
        self._events_since_drop = 0

    def update(self, **faults: Any) -> None:
        """Arm or replace some faults, keeping the others."""
        merged = self.plan.model_dump(exclude_none=True) | faults
        self.arm(FaultPlan.model_validate(merged))

    def clear(self) -> list[Event]:
        """Disarm everything. Held-back events go out to attached subscribers; the others
        (from direct ``outgoing`` calls) are returned, to be sent now."""
        self.plan = FaultPlan()
        for queue in list(self._queues):
            queue.release_held()
        return [event for stream in list(self._held) for event in self.flush(stream)]

    def fail_requests(self, status: int = 503, count: int | None = 1, **kw: Any) -> None:
        self.update(http_5xx=Http5xxFault(status=status, count=count, **kw))

    def slow_requests(self, delay_ms: int = 1000, count: int | None = 1, **kw: Any) -> None:
        self.update(slow=SlowFault(delay_ms=delay_ms, count=count, **kw))

    def duplicate_events(self, count: int | None = 1, **kw: Any) -> None:
        self.update(duplicate_events=DuplicateEventsFault(count=count, **kw))

    def reorder_events(self, count: int | None = 1, **kw: Any) -> None:
        self.update(reorder_events=ReorderEventsFault(count=count, **kw))

    def unknown_channel_events(self, count: int | None = 1, **kw: Any) -> None:
        self.update(unknown_channel_events=UnknownChannelEventsFault(count=count, **kw))

    def lose_events(self, count: int | None = 1, **kw: Any) -> None:
        self.update(lost_events=LostEventsFault(count=count, **kw))

    def drop_websockets_after(
        self, events: int, count: int | None = 1, mode: Literal["close", "abort"] = "abort"
    ) -> None:
        self.update(ws_drop=WsDropFault(after_events=events, count=count, mode=mode))

    # --- firing ---
    def _fire(self, name: str, fault: _Fault) -> bool:
        if fault.count is not None and fault.count <= 0:
            return False
        if fault.probability < 1.0 and self._rng.random() >= fault.probability:
            return False
        if fault.count is not None:
            fault.count -= 1
            if fault.count == 0:
                setattr(self.plan, name, None)
        return True

    @staticmethod
    def _request_matches(fault: _RequestFault, request: web.Request) -> bool:
        if fault.methods and request.method.upper() not in {m.upper() for m in fault.methods}:
            return False
        return any(fnmatch.fnmatchcase(request.path, pattern) for pattern in fault.paths)

    def _authorized(self, request: web.Request) -> bool:
        if self._credentials is None:
            return True
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        want_user, want_password = self._credentials
        return hmac.compare_digest(user, want_user) and hmac.compare_digest(password, want_password)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            if not self._authorized(request):
                denied = web.json_response({"message": "Authentication required"}, status=401)
                denied.headers["WWW-Authenticate"] = 'Basic realm="Operadora simulator"'
                return denied
            return await handler(request)
        faulted = await self._maybe_fault(request)
        if faulted is not None:
            return faulted
        if request.path != self.events_path:
            return await handler(request)
        key = id(request)
        self._sockets[key] = _Tracked(request)
        try:
            return await handler(request)
        finally:
            self._sockets.pop(key, None)

    async def _maybe_fault(self, request: web.Request) -> web.StreamResponse | None:
        slow = self.plan.slow
        if slow is not None and self._request_matches(slow, request) and self._fire("slow", slow):
            self.counters.slow += 1
            await self._sleep(slow.delay_ms / 1000.0)
        fail = self.plan.http_5xx
        if fail is not None and self._request_matches(fail, request):
            status = fail.status
            if self._fire("http_5xx", fail):
                self.counters.http_5xx += 1
                log.info("fault: %s %s -> %d", request.method, request.path, status)
                return web.json_response({"message": "Injected fault"}, status=status)
        return None

    @staticmethod
    def _event_matches(fault: _EventFault, event: Event) -> bool:
        return not fault.types or event.get("type") in fault.types

    def outgoing(self, event: Event, stream: Hashable = None) -> list[Event]:
        """The events to send in place of ``event``, in order. ``stream`` names the events
        stream (one per subscriber) so a held-back event comes out on its own stream."""
        self.counters.events_seen += 1
        lost = self.plan.lost_events
        if lost is not None and self._event_matches(lost, event):
            if self._fire("lost_events", lost):
                self.counters.lost += 1
                self._lost_drop_due = True
                log.info("fault: %s lost with the events websocket", event.get("type"))
                return []
        out: list[Event] = []
        reorder = self.plan.reorder_events
        if (
            stream not in self._held
            and reorder is not None
            and self._event_matches(reorder, event)
            and self._fire("reorder_events", reorder)
        ):
            self._held[stream] = (event, reorder.max_hold_ms / 1000.0)
            self.counters.reordered += 1
        else:
            out.append(event)
            dup = self.plan.duplicate_events
            if dup is not None and self._event_matches(dup, event):
                if self._fire("duplicate_events", dup):
                    out.append(copy.deepcopy(event))
                    self.counters.duplicated += 1
            held = self._held.pop(stream, None)
            if held is not None:
                out.append(held[0])
        stray = self.plan.unknown_channel_events
        if stray is not None and isinstance(event.get("channel"), dict):
            if self._event_matches(stray, event) and self._fire("unknown_channel_events", stray):
                out.append(self._stray_copy(event))
                self.counters.unknown_channel += 1
        self._count_towards_drop()
        return out

    def flush(self, stream: Hashable = None) -> list[Event]:
        """An event held back for reordering, to be sent now (e.g. when the stream goes idle)."""
        held = self._held.pop(stream, None)
        return [held[0]] if held is not None else []

    def holding(self, stream: Hashable = None) -> float | None:
        """How long an event held back on ``stream`` may wait at most; None if none is held."""
        held = self._held.get(stream)
        return held[1] if held is not None else None

    def _stray_copy(self, event: Event) -> Event:
        stray = copy.deepcopy(event)
        channel_id = f"{UNKNOWN_CHANNEL_PREFIX}{next(self._unknown_ids)}"
        stray["channel"]["id"] = channel_id
        stray["channel"]["name"] = f"PJSIP/{channel_id}"
        return stray

    def _count_towards_drop(self) -> None:
        drop = self.plan.ws_drop
        if drop is None:
            return
        self._events_since_drop += 1
        if self._events_since_drop >= drop.after_events:
            self._drop_due = drop.mode

    def settle(self) -> None:
        """Carry out a drop that became due once the events returned by ``outgoing`` are sent."""
        if self._lost_drop_due:
            self._lost_drop_due = False
            self._spawn_closes(self._drop_now("abort"))
        mode, self._drop_due = self._drop_due, None
        drop = self.plan.ws_drop
        if mode is None or drop is None:
            return
        closing = self._drop_now(mode)
        if self._last_dropped == 0:
            return  # nobody to drop yet: the next event tries again
        self._events_since_drop = 0
        if drop.count is not None:
            drop.count -= 1
            if drop.count <= 0:
                self.plan.ws_drop = None
        self._spawn_closes(closing)

    # --- WebSockets ---
    def attach(self, hub: _Hub) -> None:
        """Pass every event the hub queues for a subscriber through :meth:`outgoing`."""
        self._hub = hub
        subscribe = hub.subscribe

        def faulty_subscribe(apps: Iterable[str], subscribe_all: bool) -> Any:
            sub = subscribe(apps, subscribe_all)
            sub.queue = _FaultQueue(self, sub.queue.maxsize)
            self._queues.add(sub.queue)
            return sub

        hub.subscribe = faulty_subscribe  # type: ignore[method-assign]

    @contextlib.contextmanager
    def track(self, ws: web.WebSocketResponse, request: web.Request) -> Iterator[asyncio.Event]:
        """Register an open events WebSocket; the event is set when a fault drops it."""
        tracked = self._sockets.get(id(request)) or _Tracked(request)
        tracked.ws = ws
        self._sockets[id(request)] = tracked
        try:
            yield tracked.dropped
        finally:
            self._sockets.pop(id(request), None)

    @property
    def open_websockets(self) -> int:
        return len(self._sockets)

    async def drop_websockets(self, mode: Literal["close", "abort"] = "abort") -> int:
        """Drop every events WebSocket now; returns how many were dropped."""
        closing = self._drop_now(mode)
        for ws in closing:
            with contextlib.suppress(Exception):
                await ws.close(code=1011, message=b"injected fault")
        return self._last_dropped

    def _drop_now(self, mode: Literal["close", "abort"]) -> list[web.WebSocketResponse]:
        """Drop at once (so no later event slips out first); returns sockets still to close."""
        victims = list(self._sockets.values())
        self._sockets.clear()
        for queue in list(self._queues):
            queue.close()
        closed_by_hub = 0
        if mode == "close" and self._hub is not None:
            closed_by_hub = self._hub.drop_all()
        closing: list[web.WebSocketResponse] = []
        for tracked in victims:
            tracked.dropped.set()
            transport = tracked.request.transport
            if mode == "abort" and transport is not None:
                transport.abort()
            elif tracked.ws is not None and closed_by_hub == 0:
                closing.append(tracked.ws)
        dropped = max(len(victims), closed_by_hub)
        self._last_dropped = dropped
        self.counters.ws_drops += dropped
        if dropped:
            log.info("fault: dropped %d events websocket(s) (%s)", dropped, mode)
        return closing

    def _spawn_closes(self, sockets: list[web.WebSocketResponse]) -> None:
        for ws in sockets:
            task = asyncio.get_running_loop().create_task(
                ws.close(code=1011, message=b"injected fault")
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- HTTP control ---
    def state(self) -> dict[str, Any]:
        return {
            "plan": self.plan.model_dump(mode="json", exclude_none=True),
            "counters": self.counters.as_dict(),
            "open_websockets": self.open_websockets,
        }

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _post(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            faults = FaultPlan.model_validate(body)
        except (ValueError, ValidationError) as exc:
            return web.json_response({"message": f"invalid fault plan: {exc}"}, status=400)
        self.update(**{k: v for k, v in faults if v is not None})
        return web.json_response(self.state())

    async def _delete(self, request: web.Request) -> web.Response:
        self.clear()
        return web.json_response(self.state())

    async def _drop(self, request: web.Request) -> web.Response:
        mode = request.query.get("mode", "abort")
        if mode not in ("close", "abort"):
            return web.json_response({"message": "mode must be close or abort"}, status=400)
        dropped = await self.drop_websockets("close" if mode == "close" else "abort")
        return web.json_response({"dropped": dropped})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/sim/faults", self._get),
            web.post("/sim/faults", self._post),
            web.delete("/sim/faults", self._delete),
            web.post("/sim/faults/ws-drop", self._drop),
        ]

    def extension(self, simulator: Any, app: web.Application) -> None:
        """A simulator extension (``start_simulator(settings, extensions=[injector.extension])``):
        faults on its REST routes and events, ``/sim/faults`` behind its basic auth."""
        self.attach(simulator.pbx.hub)
        self._credentials = (str(simulator.username), str(simulator.password))
        self.install(app)

    def install(self, app: web.Application) -> None:
        """Add the middleware and the ``/sim/faults`` routes to an aiohttp app before it starts."""
        app.middlewares.append(self.middleware)
        app.add_routes(self.routes())
