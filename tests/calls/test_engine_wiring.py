"""The engine's wiring (issue 5/6 loose ends) against the PBX simulator and real servers:
the rate limit per caller ID on inbound calls, shutdown with a dashboard's event stream
open, hardware detection at start, the default instance id, the caller ID for the agent."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from array import array
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from operadora import events as ev
from operadora.calls.call import CallContext
from operadora.config import SimSettings, load_settings
from operadora.engine import Engine, EngineStartError, default_instance_id
from operadora.media import MediaSession
from operadora.sim.server import start_simulator
from operadora.store import CallFilter, Store
from support import free_port, port_open, require

pytestmark = pytest.mark.integration


class HoldingAgent:
    """Keeps each call up until call control ends it; remembers who it talked to."""

    def __init__(self) -> None:
        self.contexts: dict[str, CallContext] = {}

    async def __call__(self, media: MediaSession, context: CallContext) -> None:
        self.contexts[context.channel_id] = context
        async for _ in media.inbound():
            pass


class Ear:
    """A simulated phone's speaker: counts the frames that carried sound."""

    sample_rate = 8000

    def __init__(self) -> None:
        self.loud_frames = 0

    def hear(self, pcm: bytes) -> None:
        samples = array("h", pcm[: len(pcm) // 2 * 2])
        if samples and max(abs(s) for s in samples) > 200:
            self.loud_frames += 1


async def until(check: Any, timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - state changed by the engine's tasks
            await asyncio.sleep(0.02)


def sim_settings(
    tmp_path: Path, sim: Any, password: str, *, short_refusal: bool = False, **extra: Any
) -> Any:
    media_port = free_port()
    server = {"name": "sim", "url": sim.ari_url, "password": password}
    tmp_path.mkdir(parents=True, exist_ok=True)
    refusal = {"refusal_media": ["sound:beep"]} if short_refusal else {}
    return load_settings(
        asterisk={
            "servers": [server],
            "media_address": f"127.0.0.1:{media_port}",
            **refusal,
        },
        media={"port": media_port, "uvloop": False},
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"},
        **extra,
    )


class SimRig:
    def __init__(self, sim: Any, engine: Engine, agent: HoldingAgent, bus: ev.EventBus) -> None:
        self.sim, self.engine, self.agent = sim, engine, agent
        self.ended: dict[str, ev.CallEndedEvent] = {}
        self.arrived: dict[str, ev.CallArrivedEvent] = {}  # by channel id
        self._events = bus.subscribe()
        self.collector = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        while True:
            event = await self._events.get()
            if isinstance(event, ev.CallEndedEvent):
                self.ended[event.call_id] = event
            elif isinstance(event, ev.CallArrivedEvent):
                self.arrived[event.channel_id] = event


@pytest.fixture
async def sim_rig(tmp_path: Path) -> AsyncIterator[SimRig]:
    password = secrets.token_urlsafe(12)
    sim = await start_simulator(SimSettings(port=0, password=password))
    agent, bus = HoldingAgent(), ev.EventBus()
    engine = Engine(sim_settings(tmp_path, sim, password), agent=agent, bus=bus, with_store=True)
    await engine.start()
    rig = SimRig(sim, engine, agent, bus)
    try:
        await engine.wait_connected(10)
        yield rig
    finally:
        rig.collector.cancel()
        await engine.stop()
        await sim.close()


# -- 1. the rate limit per caller ID -------------------------------------------------------------


async def test_sixth_call_in_a_minute_from_one_number_is_refused_as_spam(sim_rig: SimRig) -> None:
    r = sim_rig
    assert (r.engine.settings.api.rate_limit_calls, r.engine.settings.api.rate_limit_window_s) == (
        5,
        60.0,
    )
    lines = []
    for _ in range(5):
        lines.append(r.sim.inbound_call(caller_id="Pest <+34600000001>"))
        await until(lambda: lines[-1].channel_id in r.agent.contexts)
    sixth = r.sim.inbound_call(caller_id="Pest <+34600000001>")
    ear = Ear()
    sixth.attach(None, ear)
    other = r.sim.inbound_call(caller_id="Fine <+34600000002>")
    await asyncio.wait_for(sixth.wait_ended(), 20)  # told, then hung up by the engine
    assert sixth.channel_id not in r.agent.contexts  # never reached the agent
    assert ear.loud_frames > 25  # the polite prompt was played to the caller (> 0.5 s)
    refused = r.arrived[sixth.channel_id].call_id
    await until(lambda: refused in r.ended)
    assert (r.ended[refused].disposition, r.ended[refused].ended_by) == ("spam", "system")
    await until(lambda: other.channel_id in r.agent.contexts)  # another number is let in
    assert all(not line.ended for line in lines)  # the five earlier calls are untouched
    assert r.engine.calls.refused == 1
    # the store recorded exactly this call as spam, answered and ended
    await r.engine.recorder.drain()
    page = await r.engine.store.calls.list_calls(CallFilter(disposition="spam"))
    assert [c.id for c in page.items] == [refused]
    (record,) = page.items
    assert (record.caller_id, record.state, record.ended_by) == ("+34600000001", "ended", "system")
    assert record.answered_at is not None and record.ended_at is not None
    for line in [*lines, other]:
        await line.hangup()
    await until(lambda: r.engine.calls.calls == {})
    await r.engine.recorder.drain()
    assert (await r.engine.store.calls.list_calls(CallFilter(disposition="resolved"))).total == 6
    channels = await r.engine.connections["sim"].client.list_channels()
    bridges = await r.engine.connections["sim"].client.list_bridges()
    assert (channels, bridges) == ([], [])


async def test_a_refused_caller_who_hangs_up_first_is_spam_ended_by_the_caller(
    tmp_path: Path,
) -> None:
    password = secrets.token_urlsafe(12)
    sim = await start_simulator(SimSettings(port=0, password=password))
    settings = sim_settings(tmp_path, sim, password, api={"rate_limit_calls": 1})
    agent, bus = HoldingAgent(), ev.EventBus()
    async with Engine(settings, agent=agent, bus=bus, with_store=True) as engine:
        rig = SimRig(sim, engine, agent, bus)
        try:
            await engine.wait_connected(10)
            first = sim.inbound_call(caller_id="+34600000003")
            await until(lambda: first.channel_id in agent.contexts)
            second = sim.inbound_call(caller_id="+34600000003")
            await asyncio.wait_for(second.wait_answered(), 10)
            await second.hangup()
            await until(lambda: second.channel_id in rig.arrived)
            call_id = rig.arrived[second.channel_id].call_id
            await until(lambda: call_id in rig.ended)
            assert (rig.ended[call_id].disposition, rig.ended[call_id].ended_by) == (
                "spam",
                "caller",
            )
            assert not first.ended
            await first.hangup()
        finally:
            rig.collector.cancel()
    await sim.close()


# -- 2. shutdown with a dashboard open -----------------------------------------------------------


def down_settings(tmp_path: Path, **extra: Any) -> Any:
    extra.setdefault("media", {"port": 0, "uvloop": False})
    return load_settings(
        asterisk={
            "servers": [
                {
                    "name": "down",
                    "url": f"http://127.0.0.1:{free_port()}/ari",
                    "password": "pw",
                    "reconnect_max_backoff_s": 0.2,
                }
            ]
        },
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"},
        **extra,
    )


async def test_stop_completes_while_a_dashboard_event_stream_is_open(tmp_path: Path) -> None:
    port = free_port()
    engine = Engine(
        down_settings(tmp_path, api={"port": port}), agent=HoldingAgent(), with_api=True
    )
    await engine.start()
    try:
        token, _ = await engine.store.tokens.create("viewer", "wall")
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            async with asyncio.timeout(10):
                while True:  # the API server starts in the background
                    try:
                        if (await client.get("/api/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
            async with client.stream("GET", "/api/live/stream") as response:
                assert response.status_code == 200
                lines = response.aiter_lines()
                async with asyncio.timeout(10):
                    async for line in lines:
                        if line.startswith("event: snapshot"):
                            break
                # the stream is open and endless: stop must still finish, and end it
                await asyncio.wait_for(engine.stop(), 15)

                async def drain() -> None:
                    async for _ in lines:
                        pass

                await asyncio.wait_for(drain(), 10)  # the server closed the stream
        assert engine.store is None and engine.state is None
    finally:
        await engine.stop()


# -- 3. hardware detection at start ---------------------------------------------------------------


async def test_hardware_is_detected_through_the_engines_ari_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="operadora.hardware.detect")

    def no_own_client(server: Any) -> Any:
        raise AssertionError("detection must use the engine's ARI client")

    monkeypatch.setattr("operadora.hardware.detect.make_ari_get", no_own_client)
    password = secrets.token_urlsafe(12)
    sim = await start_simulator(SimSettings(port=0, password=password))
    try:
        settings = sim_settings(tmp_path, sim, password)
        async with Engine(settings, agent=HoldingAgent()) as engine:
            await until(lambda: engine.hardware is not None)
            report = engine.hardware
            assert report is not None and report.gateway.source == "ari", report
            assert report.gateway.endpoints and all(
                e.resource.startswith("gateway-fxo") and e.server == "sim"
                for e in report.gateway.endpoints
            )
            assert report.hardware_type in ("gateway", "both")
            assert report.pipeline.route_preference[0] in ("gateway", "dahdi")
    finally:
        await sim.close()
    logged = [r for r in caplog.records if r.getMessage().startswith("telephony hardware:")]
    assert len(logged) == 1 and logged[0].levelno == logging.INFO


async def test_hardware_detection_never_blocks_or_breaks_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    engine = Engine(down_settings(tmp_path), agent=HoldingAgent())
    await asyncio.wait_for(engine.start(), 10)
    try:
        assert engine.status().media_port > 0  # serving calls while detection runs
        await until(lambda: engine.hardware is not None)
        report = engine.hardware
        assert report is not None and report.gateway.source == "none"
        assert "ARI" in report.gateway.detail  # says why: Asterisk could not be asked
        assert report.pipeline.route_preference == ["sip_trunk"]
        logged = [r for r in caplog.records if r.getMessage().startswith("telephony hardware:")]
        assert len(logged) == 1 and logged[0].levelno == logging.INFO
    finally:
        await asyncio.wait_for(engine.stop(), 10)


async def test_detection_can_be_turned_off(tmp_path: Path) -> None:
    async with Engine(down_settings(tmp_path), agent=HoldingAgent(), detect_hardware=False) as e:
        await asyncio.sleep(0.1)
        assert e.hardware is None


# -- 4. the instance id ---------------------------------------------------------------------------


def test_default_instance_id_is_host_and_media_port(tmp_path: Path) -> None:
    settings = down_settings(tmp_path, media={"port": 9123, "uvloop": False})
    assert default_instance_id(settings) == f"{socket.gethostname()}:9123"
    assert Engine(settings).instance == f"{socket.gethostname()}:9123"
    named = down_settings(tmp_path, state={"instance_id": "edge-1"})
    assert Engine(named).instance == "edge-1"


async def test_restart_closes_out_only_this_instances_open_calls(tmp_path: Path) -> None:
    settings = down_settings(tmp_path, media={"port": free_port(), "uvloop": False})
    mine = default_instance_id(settings)
    store = await Store.open(settings.store)
    try:
        await store.calls.write(
            [
                (ev.CallArrivedEvent("left-by-me", caller_id="+1", instance=mine), False),
                (
                    ev.CallArrivedEvent("left-by-other", caller_id="+2", instance="other:9092"),
                    False,
                ),
            ]
        )
    finally:
        await store.close()
    async with Engine(settings, agent=HoldingAgent(), with_store=True) as engine:
        closed = await engine.store.calls.get_call("left-by-me")
        kept = await engine.store.calls.get_call("left-by-other")
        assert (closed.state, closed.disposition, closed.instance) == ("ended", "failed", mine)
        assert kept.state != "ended" and kept.instance == "other:9092"
        assert engine.calls.instance == mine and engine.state is not None
        assert engine.state.instance == mine


async def test_calls_are_published_with_the_instance(sim_rig: SimRig) -> None:
    line = sim_rig.sim.inbound_call(caller_id="+34600000009")
    await until(lambda: line.channel_id in sim_rig.arrived)
    assert sim_rig.arrived[line.channel_id].instance == sim_rig.engine.instance
    await line.hangup()


# -- 5. caller ID / DID for the voice agent --------------------------------------------------------


def test_the_llm_agent_is_told_who_called_and_which_number() -> None:
    from operadora.voice.agent.llm import LlmAgent
    from operadora.voice.engines import CallerInfo

    agent = LlmAgent(client=None, system_prompt="You are Acme's agent.", greeting=None)  # type: ignore[arg-type]
    conversation = agent.conversation("c1", CallerInfo("+34911", "Ana", "110"))
    system = conversation.messages[0]["content"]
    assert system.startswith("You are Acme's agent.")
    assert "Ana <+34911>" in system and "110" in system
    assert agent.conversation("c2").messages[0]["content"] == "You are Acme's agent."


async def test_the_limit_is_shared_by_engines_on_redis(tmp_path: Path) -> None:
    """Two engines (two Asterisk servers) sharing Redis count one number's calls together."""
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    number = f"+3460{secrets.randbelow(10**8):08d}"  # fresh key: other runs share the Redis
    redis_state = {"backend": "redis", "redis_url": "redis://127.0.0.1:6379/0"}
    sims, engines, rigs = [], [], []
    try:
        for n in range(2):
            password = secrets.token_urlsafe(12)
            sim = await start_simulator(SimSettings(port=0, password=password))
            sims.append(sim)
            settings = sim_settings(
                tmp_path / str(n),
                sim,
                password,
                state={**redis_state, "instance_id": f"engine-{n}"},
                api={"rate_limit_calls": 2},
                short_refusal=True,
            )
            agent, bus = HoldingAgent(), ev.EventBus()
            engine = Engine(settings, agent=agent, bus=bus)
            engines.append(engine)
            await engine.start()
            rigs.append(SimRig(sim, engine, agent, bus))
            await engine.wait_connected(10)
        first = sims[0].inbound_call(caller_id=number)
        await until(lambda: first.channel_id in rigs[0].agent.contexts)
        second = sims[1].inbound_call(caller_id=number)
        await until(lambda: second.channel_id in rigs[1].agent.contexts)
        third = sims[0].inbound_call(caller_id=number)  # the 3rd within the window
        await asyncio.wait_for(third.wait_ended(), 10)
        assert third.channel_id not in rigs[0].agent.contexts
        call_id = rigs[0].arrived[third.channel_id].call_id
        await until(lambda: call_id in rigs[0].ended)
        assert rigs[0].ended[call_id].disposition == "spam"
        assert (engines[0].calls.refused, engines[1].calls.refused) == (1, 0)
        await first.hangup()
        await second.hangup()
    finally:
        for rig in rigs:
            rig.collector.cancel()
        for engine in engines:
            await engine.stop()
        for sim in sims:
            await sim.close()


async def test_an_unreachable_redis_stops_the_start_with_one_clear_error(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = down_settings(tmp_path, state={"backend": "redis", "redis_url": url})
    engine = Engine(settings, agent=HoldingAgent())
    with pytest.raises(EngineStartError, match=r"state\.backend=redis"):
        await asyncio.wait_for(engine.start(), 20)
    assert engine.media_server is None and engine.connections == {} and engine.state is None
