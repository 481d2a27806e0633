"""Fault injection plugged into the real PBX simulator as an extension."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from operadora.config import SimSettings
from operadora.sim.faults import UNKNOWN_CHANNEL_PREFIX, FaultInjector
from operadora.sim.server import Simulator, start_simulator

pytestmark = pytest.mark.integration

PASSWORD = "test-secret-faults"
APP = "callcenter-ai"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, FaultInjector]]:
    injector = FaultInjector(seed=3)
    settings = SimSettings(port=0, password=SecretStr(PASSWORD))
    simulator = await start_simulator(settings, extensions=[injector.extension])
    try:
        yield simulator, injector
    finally:
        await simulator.close()


AUTH = {"Authorization": aiohttp.encode_basic_auth("operadora", PASSWORD)}


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
    msg = await ws.receive(timeout=5)
    if msg.type != aiohttp.WSMsgType.TEXT:
        return None
    event: dict[str, Any] = msg.json()
    return event


async def test_control_routes_need_the_simulators_credentials(sim: Any) -> None:
    simulator, injector = sim
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{simulator.base_url}/sim/faults", json={}) as resp:
            assert resp.status == 401
        plan = {"http_5xx": {"status": 503, "count": 1, "paths": ["/ari/channels"]}}
        async with http.post(f"{simulator.base_url}/sim/faults", json=plan, headers=AUTH) as resp:
            assert resp.status == 200
        url = f"{simulator.ari_url}/channels"
        async with http.get(url, headers=AUTH) as first, http.get(url, headers=AUTH) as second:
            assert (first.status, second.status) == (503, 200)
        async with http.get(url) as unauthenticated:  # the simulator's own auth comes first
            assert unauthenticated.status == 401
    assert injector.counters.http_5xx == 1


async def test_events_are_duplicated_strayed_and_the_socket_dropped(sim: Any) -> None:
    simulator, injector = sim
    injector.duplicate_events(count=1, types=["StasisStart"])
    injector.unknown_channel_events(count=1, types=["StasisStart"])
    events_url = f"{simulator.ari_url}/events?app={APP}"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.ws_connect(events_url) as ws:
        query = {"endpoint": "Local/s@stasis-test", "app": APP, "channelId": "f-caller"}
        async with http.post(f"{simulator.ari_url}/channels", params=query) as resp:
            assert resp.status == 200
        starts: list[str] = []
        while len(starts) < 3:
            event = await next_event(ws)
            assert event is not None
            if event["type"] == "StasisStart":
                starts.append(event["channel"]["id"])
        assert starts[:2] == ["f-caller", "f-caller"]
        assert starts[2].startswith(UNKNOWN_CHANNEL_PREFIX)
        async with http.post(f"{simulator.base_url}/sim/faults/ws-drop") as resp:
            assert (await resp.json()) == {"dropped": 1}
        for _ in range(100):
            if await next_event(ws) is None:
                break
        assert ws.closed or ws.close_code is not None or ws.exception() is not None
        async with http.delete(f"{simulator.ari_url}/channels/f-caller") as resp:
            assert resp.status == 204
    assert injector.counters.ws_drops == 1
    assert injector.counters.duplicated == 1 and injector.counters.unknown_channel == 1


async def test_repeated_drops_then_reconnects(sim: Any) -> None:
    simulator, injector = sim
    events_url = f"{simulator.ari_url}/events?app={APP}"
    injector.drop_websockets_after(events=1, count=3, mode="abort")
    drops = 0
    async with aiohttp.ClientSession(headers=AUTH) as http:
        for n in range(4):
            async with http.ws_connect(events_url) as ws:
                await asyncio.sleep(0.05)
                query = {"endpoint": "Local/s@stasis-test", "app": APP, "channelId": f"r{n}"}
                async with http.post(f"{simulator.ari_url}/channels", params=query):
                    pass
                got: list[str] = []
                while len(got) < 2 and (event := await next_event(ws)) is not None:
                    got.append(event["type"])
                drops += len(got) < 2  # ChannelVarset + StasisStart unless dropped
            async with http.delete(f"{simulator.ari_url}/channels/r{n}"):
                pass
    assert drops == 3
    assert injector.counters.ws_drops == 3
    assert injector.plan.ws_drop is None
