"""Fault injection against a tiny aiohttp ARI look-alike over real HTTP and WebSockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from operadora.sim.faults import UNKNOWN_CHANNEL_PREFIX, FaultInjector, FaultPlan

pytestmark = pytest.mark.integration


class TinyHub:
    """The shape of the simulator's event hub: subscribers with queues, drop_all()."""

    class Sub:
        def __init__(self) -> None:
            self.queue: asyncio.Queue[Any] = asyncio.Queue(100)

    def __init__(self) -> None:
        self.subs: list[TinyHub.Sub] = []

    def subscribe(self, apps: object, subscribe_all: bool) -> TinyHub.Sub:
        sub = TinyHub.Sub()
        self.subs.append(sub)
        return sub

    def drop_all(self) -> int:
        for sub in self.subs:
            sub.queue.put_nowait(None)
        return len(self.subs)

    def emit(self, event: dict[str, Any]) -> None:
        for sub in self.subs:
            sub.queue.put_nowait(event)


def tiny_ari(injector: FaultInjector, hub: TinyHub) -> web.Application:
    async def channels(request: web.Request) -> web.Response:
        return web.json_response([])

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sub = hub.subscribe(["app"], True)
        client_gone = asyncio.create_task(ws.receive())
        try:
            while True:
                getter = asyncio.create_task(sub.queue.get())
                await asyncio.wait({getter, client_gone}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                if (event := getter.result()) is None:
                    break
                await ws.send_json(event)
        finally:
            client_gone.cancel()
            hub.subs.remove(sub)
            await ws.close()
        return ws

    app = web.Application()
    app.add_routes(
        [
            web.get("/ari/channels", channels),
            web.post("/ari/channels/{id}/answer", answer),
            web.get("/ari/events", events),
        ]
    )
    injector.install(app)
    injector.attach(hub)
    return app


@pytest.fixture
async def ari() -> AsyncIterator[tuple[str, FaultInjector, TinyHub, list[float]]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    injector = FaultInjector(seed=1, sleep=sleep)
    hub = TinyHub()
    server = TestServer(tiny_ari(injector, hub), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), injector, hub, slept
    finally:
        hub.drop_all()
        await server.close()


async def statuses(
    session: aiohttp.ClientSession, url: str, n: int, method: str = "GET"
) -> list[int]:
    out = []
    for _ in range(n):
        async with session.request(method, url) as resp:
            out.append(resp.status)
    return out


async def test_5xx_for_a_count_then_normal(ari: Any) -> None:
    base, injector, _, _ = ari
    injector.fail_requests(status=503, count=2)
    async with aiohttp.ClientSession() as s:
        assert await statuses(s, f"{base}/ari/channels", 3) == [503, 503, 200]
        async with s.get(f"{base}/sim/faults") as resp:  # control routes never fail
            body = await resp.json()
    assert injector.counters.http_5xx == 2
    assert body["counters"]["http_5xx"] == 2 and "http_5xx" not in body["plan"]


async def test_5xx_only_on_matching_paths_and_methods(ari: Any) -> None:
    base, injector, _, _ = ari
    injector.fail_requests(status=500, count=None, paths=["/ari/channels/*"], methods=["post"])
    async with aiohttp.ClientSession() as s:
        assert await statuses(s, f"{base}/ari/channels", 2) == [200, 200]
        posts = await statuses(s, f"{base}/ari/channels/c1/answer", 3, "POST")
    assert posts == [500, 500, 500]
    injector.clear()
    async with aiohttp.ClientSession() as s:
        assert await statuses(s, f"{base}/ari/channels/c1/answer", 1, "POST") == [204]


async def test_probabilistic_5xx_is_seeded(ari: Any) -> None:
    base, injector, _, _ = ari
    injector.fail_requests(status=502, count=None, probability=0.5)
    async with aiohttp.ClientSession() as s:
        got = await statuses(s, f"{base}/ari/channels", 40)
    assert set(got) == {200, 502}
    assert 8 <= got.count(502) <= 32


async def test_slow_responses_delay_the_handler(ari: Any) -> None:
    base, injector, _, slept = ari
    injector.slow_requests(delay_ms=1500, count=1)
    async with aiohttp.ClientSession() as s:
        assert await statuses(s, f"{base}/ari/channels", 2) == [200, 200]
    assert slept == [1.5]
    assert injector.counters.slow == 1


async def test_http_control_routes(ari: Any) -> None:
    base, injector, _, _ = ari
    async with aiohttp.ClientSession() as s:
        plan = {"http_5xx": {"status": 500, "count": 1}, "duplicate_events": {"count": 2}}
        async with s.post(f"{base}/sim/faults", json=plan) as resp:
            assert resp.status == 200
            state = await resp.json()
        assert state["plan"]["http_5xx"]["status"] == 500
        assert state["plan"]["duplicate_events"]["count"] == 2
        assert await statuses(s, f"{base}/ari/channels", 2) == [500, 200]
        async with s.post(f"{base}/sim/faults", json={"http_5xx": {"status": 404}}) as resp:
            assert resp.status == 400
        async with s.post(f"{base}/sim/faults", data=b"not json") as resp:
            assert resp.status == 400
        async with s.delete(f"{base}/sim/faults") as resp:
            assert (await resp.json())["plan"] == {}
        async with s.post(f"{base}/sim/faults/ws-drop?mode=sideways") as resp:
            assert resp.status == 400
    assert injector.plan == FaultPlan()


def channel_event(kind: str, channel_id: str, n: int = 0) -> dict[str, Any]:
    return {"type": kind, "n": n, "channel": {"id": channel_id, "name": f"PJSIP/{channel_id}"}}


def test_duplicates_reorders_and_strays_are_pure_transforms() -> None:
    injector = FaultInjector()
    a, b, c, d = (channel_event("ChannelVarset", "c1", n) for n in range(4))
    assert injector.outgoing(a) == [a]

    injector.duplicate_events(count=1, types=["ChannelVarset"])
    out = injector.outgoing(b)
    assert out == [b, b] and out[1] is not b

    injector.reorder_events(count=1)
    assert injector.outgoing(c) == []
    assert injector.outgoing(d) == [d, c]  # c arrives after d

    injector.unknown_channel_events(count=1, types=["StasisStart"])
    start = channel_event("StasisStart", "c1")
    out = injector.outgoing(start)
    assert out[0] == start
    assert out[1]["channel"]["id"].startswith(UNKNOWN_CHANNEL_PREFIX)
    assert out[1]["type"] == "StasisStart" and start["channel"]["id"] == "c1"
    assert injector.outgoing(channel_event("StasisStart", "c2")) == [
        channel_event("StasisStart", "c2")
    ]
    counters = injector.counters
    assert (counters.duplicated, counters.reordered, counters.unknown_channel) == (1, 1, 1)


def test_a_held_event_is_flushed_on_clear() -> None:
    injector = FaultInjector()
    injector.reorder_events()
    event = channel_event("ChannelHangupRequest", "c1")
    assert injector.outgoing(event) == []
    assert injector.clear() == [event]
    assert injector.flush() == []


async def ws_events(base: str, n: int) -> tuple[list[dict[str, Any]], str]:
    """Read up to ``n`` events; returns them and how the socket ended."""
    got: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{base}/ari/events?app=app") as ws:
        while len(got) < n:
            msg = await ws.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.TEXT:
                got.append(msg.json())
            else:
                return got, msg.type.name
    return got, "open"


async def eventually(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 5 s")


async def wait_subscribed(injector: FaultInjector, hub: TinyHub, n: int = 1) -> None:
    await eventually(lambda: len(hub.subs) >= n and injector.open_websockets >= n)


async def test_events_reach_the_websocket_through_the_faults(ari: Any) -> None:
    base, injector, hub, _ = ari
    reader = asyncio.create_task(ws_events(base, 4))
    await wait_subscribed(injector, hub)
    injector.duplicate_events(count=1, types=["StasisStart"])
    injector.unknown_channel_events(count=1, types=["ChannelDestroyed"])
    hub.emit(channel_event("StasisStart", "c1"))
    hub.emit(channel_event("ChannelDestroyed", "c1"))
    got, _ = await reader
    assert [(e["type"], e["channel"]["id"]) for e in got] == [
        ("StasisStart", "c1"),
        ("StasisStart", "c1"),
        ("ChannelDestroyed", "c1"),
        ("ChannelDestroyed", f"{UNKNOWN_CHANNEL_PREFIX}1"),
    ]


async def test_websocket_drop_tears_the_connection_and_reconnect_works(ari: Any) -> None:
    base, injector, hub, _ = ari
    reader = asyncio.create_task(ws_events(base, 10))
    await wait_subscribed(injector, hub)
    assert await injector.drop_websockets("abort") == 1
    got, ended = await reader
    assert got == [] and ended in ("CLOSED", "CLOSE", "ERROR", "CLOSING")
    assert injector.counters.ws_drops == 1
    # the next connection works as usual
    reader = asyncio.create_task(ws_events(base, 1))
    await wait_subscribed(injector, hub, 1)
    hub.emit(channel_event("StasisStart", "c2"))
    got, _ = await reader
    assert got[0]["channel"]["id"] == "c2"


async def test_drop_after_n_events_repeats(ari: Any) -> None:
    base, injector, hub, _ = ari
    injector.drop_websockets_after(events=2, count=2, mode="close")
    for round_ in range(3):
        reader = asyncio.create_task(ws_events(base, 3))
        await wait_subscribed(injector, hub)
        for n in range(3):
            hub.emit(channel_event("ChannelVarset", f"r{round_}", n))
        got, ended = await reader
        if round_ < 2:
            assert ended != "open" and len(got) == 2, (round_, got)
            await eventually(lambda: not hub.subs)
        else:
            assert ended == "open" and len(got) == 3
    assert injector.counters.ws_drops == 2
    assert injector.plan.ws_drop is None


async def test_ws_drop_route(ari: Any) -> None:
    base, injector, hub, _ = ari
    reader = asyncio.create_task(ws_events(base, 10))
    await wait_subscribed(injector, hub)
    async with aiohttp.ClientSession() as s, s.post(f"{base}/sim/faults/ws-drop") as resp:
        assert (await resp.json()) == {"dropped": 1}
    _, ended = await reader
    assert ended != "open"


async def test_attaches_to_the_simulators_event_hub() -> None:
    from operadora.sim.hub import EventHub

    hub = EventHub()
    injector = FaultInjector()
    injector.attach(hub)
    sub = hub.subscribe(["callcenter-ai"], True)
    injector.duplicate_events(count=1, types=["StasisStart"])
    injector.drop_websockets_after(events=2, mode="close")
    hub.emit("StasisStart", channel={"id": "c1", "name": "PJSIP/x-1"}, args=[])
    hub.emit("ChannelVarset", channel={"id": "c1", "name": "PJSIP/x-1"}, variable="A")
    hub.emit("ChannelVarset", channel={"id": "c1", "name": "PJSIP/x-1"}, variable="B")
    queued = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert [e["type"] if e else None for e in queued] == [
        "StasisStart",
        "StasisStart",
        "ChannelVarset",
        None,  # the drop closes the subscriber; the third event never goes out
    ]
    assert queued[0]["application"] == "callcenter-ai"
    assert injector.counters.ws_drops == 1


async def test_reordering_keeps_each_subscriber_on_its_own_stream() -> None:
    hub = TinyHub()
    injector = FaultInjector()
    injector.attach(hub)
    a, b = hub.subscribe(["app"], True), hub.subscribe(["app"], True)
    injector.reorder_events(count=1)
    first, second = channel_event("ChannelVarset", "c1", 1), channel_event("StasisStart", "c1", 2)
    hub.emit(first)  # held back on a's stream only (the fault fires once)
    hub.emit(second)
    got_a = [a.queue.get_nowait() for _ in range(a.queue.qsize())]
    got_b = [b.queue.get_nowait() for _ in range(b.queue.qsize())]
    assert [e["n"] for e in got_a] == [2, 1]
    assert [e["n"] for e in got_b] == [1, 2]


async def test_a_held_event_goes_out_when_the_stream_goes_quiet() -> None:
    hub = TinyHub()
    injector = FaultInjector()
    injector.attach(hub)
    sub = hub.subscribe(["app"], True)
    injector.reorder_events(count=1, max_hold_ms=30)
    hub.emit(channel_event("StasisEnd", "c1"))
    assert sub.queue.empty()
    event = await asyncio.wait_for(sub.queue.get(), 2)
    assert event["type"] == "StasisEnd"
    assert injector.holding(sub.queue) is None


async def test_clear_releases_held_events_to_their_subscribers() -> None:
    hub = TinyHub()
    injector = FaultInjector()
    injector.attach(hub)
    sub = hub.subscribe(["app"], True)
    injector.reorder_events(count=1, max_hold_ms=60_000)
    hub.emit(channel_event("ChannelDestroyed", "c1"))
    assert sub.queue.empty()
    assert injector.clear() == []
    assert sub.queue.get_nowait()["type"] == "ChannelDestroyed"
