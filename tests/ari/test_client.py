"""The REST client and the events WebSocket against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from operadora.ari import operations as ops
from operadora.ari.client import AriClient, build_request
from operadora.ari.errors import (
    AriConflict,
    AriNotFound,
    AriServerError,
    AriUnauthorized,
    AriUnavailable,
    AriUnprocessable,
)
from operadora.ari.events import AriEvent, StasisStart
from operadora.ari.websocket import Backoff, EventStream, events_url
from operadora.config import AriServerSettings
from support import free_port

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-for-tests"


class MiniAri:
    """Just enough of ARI's HTTP surface to exercise the client's I/O."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.status: dict[str, list[int]] = {}  # path -> statuses to answer, in order
        self.sockets: list[web.WebSocketResponse] = []
        self.ws_connects = 0
        self.peers: set[tuple[str, int]] = set()

    def authorised(self, request: web.Request) -> bool:
        import base64

        expected = "Basic " + base64.b64encode(f"operadora:{PASSWORD}".encode()).decode()
        return request.headers.get("Authorization") == expected

    async def rest(self, request: web.Request) -> web.StreamResponse:
        if not self.authorised(request):
            return web.json_response({"message": "Authentication required"}, status=401)
        path = "/" + request.match_info["tail"]
        self.requests.append((request.method, path, dict(request.query)))
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername"))
        queued = self.status.get(path)
        status = queued.pop(0) if queued else 200
        if status == 204:
            return web.Response(status=204)
        if status != 200:
            return web.json_response({"message": f"status {status}"}, status=status)
        if path == "/channels":
            return web.json_response([{"id": "c1", "name": "PJSIP/a-1", "state": "Up"}])
        if path.startswith("/channels/externalMedia"):
            return web.json_response({"id": request.query["channelId"], "name": "AudioSocket/x"})
        return web.json_response({"id": "x", "bridge_type": "mixing"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        if not self.authorised(request):
            return web.json_response({"message": "Authentication required"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_connects += 1
        self.sockets.append(ws)
        async for _ in ws:
            pass
        return ws


@pytest.fixture
async def mini() -> AsyncIterator[tuple[MiniAri, str]]:
    ari = MiniAri()
    app = web.Application()
    app.router.add_get("/ari/events", ari.events)
    app.router.add_route("*", "/ari/{tail:.*}", ari.rest)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield ari, f"http://127.0.0.1:{port}/ari"
    await runner.cleanup()


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - state changed by other tasks
            await asyncio.sleep(0.01)


def settings(url: str, password: str = PASSWORD) -> AriServerSettings:
    return AriServerSettings(
        url=url,
        username="operadora",
        password=password,
        request_timeout_s=2,
        reconnect_max_backoff_s=0.2,
    )


def test_build_request_quotes_and_joins() -> None:
    path, query = build_request(
        ops.BRIDGE_ADD_CHANNEL, {"bridgeId": "a b/c", "channel": ["x", "y"], "role": None}
    )
    assert path == "/bridges/a%20b%2Fc/addChannel"
    assert query == {"channel": "x,y"}
    with pytest.raises(TypeError):
        build_request(ops.CHANNEL_ANSWER, {"channelId": "x", "nope": 1})
    with pytest.raises(TypeError):
        build_request(ops.CHANNEL_ANSWER, {})
    with pytest.raises(TypeError):
        build_request(ops.CHANNEL_HANGUP, {"channelId": "x", "reason": ["a", "b"]})


def test_events_url() -> None:
    assert events_url("http://pbx:8088/ari") == "ws://pbx:8088/ari/events"
    assert events_url("https://pbx/ari") == "wss://pbx/ari/events"


def test_backoff_grows_to_the_cap_and_resets() -> None:
    import random

    backoff = Backoff(0.1, 2.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays[0] <= 0.1 and max(delays) <= 2.0 and delays[-1] >= 1.0
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_client_refuses_to_start_without_a_password() -> None:
    from operadora.config import ConfigError

    with pytest.raises(ConfigError):
        AriClient(AriServerSettings(password=None))


async def test_rest_calls_reuse_one_connection(mini: tuple[MiniAri, str]) -> None:
    ari, url = mini
    async with AriClient(settings(url)) as client:
        await client.answer("c1")
        channel = await client.external_media(
            channel_id="m1", external_host="127.0.0.1:9092", data="u-1"
        )
        channels = await client.list_channels()
        await client.add_channels("b1", ["c1", "m1"])
    assert channel.id == "m1" and channels[0].name == "PJSIP/a-1"
    assert ari.requests[1] == (
        "POST",
        "/channels/externalMedia",
        {
            "channelId": "m1",
            "app": "callcenter-ai",
            "external_host": "127.0.0.1:9092",
            "encapsulation": "audiosocket",
            "transport": "tcp",
            "format": "slin16",
            "data": "u-1",
        },
    )
    assert ari.requests[3] == ("POST", "/bridges/b1/addChannel", {"channel": "c1,m1"})
    assert len(ari.peers) == 1  # keep-alive: one TCP connection for all requests


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, AriNotFound), (409, AriConflict), (422, AriUnprocessable), (503, AriServerError)],
)
async def test_errors_map_to_meaning(mini: tuple[MiniAri, str], status: int, error: type) -> None:
    ari, url = mini
    ari.status["/channels/gone/continue"] = [status]
    async with AriClient(settings(url)) as client:
        with pytest.raises(error) as info:
            await client.continue_in_dialplan("gone", context="x")
    assert info.value.status == status and f"status {status}" in info.value.message


async def test_idempotent_requests_retry_5xx(mini: tuple[MiniAri, str]) -> None:
    ari, url = mini
    ari.status["/channels/c1/answer"] = [500, 503, 204]
    ari.status["/channels/c1/redirect"] = [500, 204]
    async with AriClient(settings(url), retry_delay_s=0.001) as client:
        await client.answer("c1")  # succeeds on the third try
        with pytest.raises(AriServerError):
            await client.redirect("c1", "PJSIP/agent1")  # not idempotent: no retry
    assert [p for _, p, _ in ari.requests].count("/channels/c1/answer") == 3
    assert [p for _, p, _ in ari.requests].count("/channels/c1/redirect") == 1


async def test_wrong_password_and_unreachable(mini: tuple[MiniAri, str]) -> None:
    _, url = mini
    async with AriClient(settings(url, "wrong")) as client:
        with pytest.raises(AriUnauthorized):
            await client.list_channels()
    dead = f"http://127.0.0.1:{free_port()}/ari"
    async with AriClient(settings(dead), retries=0) as client:
        with pytest.raises(AriUnavailable):
            await client.list_channels()


async def test_event_stream_reconnects_and_resyncs(mini: tuple[MiniAri, str]) -> None:
    ari, url = mini
    got: list[AriEvent] = []
    connects: list[bool] = []

    async def on_connect(reconnected: bool) -> None:
        connects.append(reconnected)

    async with AriClient(settings(url)) as client:
        stream = EventStream(client, got.append, on_connect=on_connect, initial_backoff_s=0.01)
        task = asyncio.create_task(stream.run())
        await asyncio.wait_for(stream.connected.wait(), 5)
        start = {
            "type": "StasisStart",
            "application": "callcenter-ai",
            "args": ["inbound"],
            "channel": {"id": "c1", "name": "PJSIP/a-1", "state": "Ring"},
        }
        await ari.sockets[-1].send_str(json.dumps(start))
        await ari.sockets[-1].send_str("{broken")
        for drop in range(3):  # the server drops the connection: the client comes back
            await ari.sockets[-1].close()
            await until(lambda n=drop: len(connects) == n + 2 and stream.connected.is_set())
        await ari.sockets[-1].send_str(json.dumps(start))
        await until(lambda: len(got) == 2)
        await stream.stop()
        await asyncio.wait_for(task, 5)
    assert connects == [False, True, True, True]
    assert all(isinstance(e, StasisStart) and e.args == ["inbound"] for e in got)
    assert stream.malformed == 1


async def test_event_stream_wrong_password_logs_once_and_retries(
    mini: tuple[MiniAri, str], caplog: pytest.LogCaptureFixture
) -> None:
    ari, url = mini
    caplog.set_level(logging.DEBUG, logger="operadora.ari.websocket")
    async with AriClient(settings(url, "wrong")) as client:
        stream = EventStream(client, lambda e: None, initial_backoff_s=0.01)
        task = asyncio.create_task(stream.run())
        await until(lambda: stream.backoff.failures >= 4)
        await stream.stop()
        await asyncio.wait_for(task, 5)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "wrong password" in errors[0].getMessage()
    assert ari.ws_connects == 0


def test_unwanted_event_types_are_skipped_unparsed() -> None:
    got: list[AriEvent] = []
    stream = EventStream(
        AriClient(settings("http://127.0.0.1:1/ari")), got.append, wanted={"StasisStart"}
    )
    varset = {
        "type": "ChannelVarset",
        "variable": "STASISSTATUS",
        "value": "",
        "channel": {"id": "c1"},
    }
    stream._dispatch(json.dumps(varset))
    stream._dispatch("{not even json but no wanted name}")
    start = {"type": "StasisStart", "args": [], "channel": {"id": "c1"}}
    stream._dispatch(json.dumps(start))
    assert [e.type for e in got] == ["StasisStart"]
    assert (stream.skipped, stream.malformed) == (2, 0)


async def test_a_failing_resync_callback_does_not_end_the_stream(
    mini: tuple[MiniAri, str],
) -> None:
    _, url = mini
    calls: list[bool] = []

    async def on_connect(reconnected: bool) -> None:
        calls.append(reconnected)
        if len(calls) == 1:
            raise RuntimeError("resync bug")

    async with AriClient(settings(url)) as client:
        stream = EventStream(client, lambda e: None, on_connect=on_connect, initial_backoff_s=0.01)
        task = asyncio.create_task(stream.run())
        await until(lambda: len(calls) >= 2 and stream.connected.is_set())
        await stream.stop()
        await asyncio.wait_for(task, 5)
    assert calls[:2] == [False, True]


async def test_errors_are_counted_for_metrics(mini: tuple[MiniAri, str]) -> None:
    from prometheus_client import REGISTRY

    def count(kind: str) -> float:
        return REGISTRY.get_sample_value("operadora_ari_errors_total", {"kind": kind}) or 0.0

    ari, url = mini
    ari.status["/channels/gone/answer"] = [404]
    before_http, before_down = count("http"), count("unavailable")
    async with AriClient(settings(url)) as client:
        with pytest.raises(AriNotFound):
            await client.answer("gone")
    async with AriClient(settings(f"http://127.0.0.1:{free_port()}/ari"), retries=0) as client:
        with pytest.raises(AriUnavailable):
            await client.list_bridges()
    assert count("http") == before_http + 1
    assert count("unavailable") == before_down + 1
