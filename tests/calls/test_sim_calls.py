"""The inbound AI call end to end against the PBX simulator (ARI over HTTP/WebSocket, real
AudioSocket TCP): set-up, teardown leaving nothing behind (listed through ARI), DTMF, and
the faults of issue 4 item 7 (WebSocket drops during live calls, duplicated, reordered and
stray events) checked against the call records in a real SQLite store."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from operadora import events as ev
from operadora.ari.client import AriClient
from operadora.calls.call import CallContext
from operadora.config import AriServerSettings, SimSettings, load_settings
from operadora.engine import Engine
from operadora.media import AudioIn, DtmfIn, MediaSession
from operadora.sim.faults import FaultInjector
from operadora.sim.server import start_simulator
from operadora.store import CallFilter
from support import free_port

pytestmark = pytest.mark.integration


class ListeningAgent:
    """Keeps the call up, noting audio and digits, until call control ends it."""

    def __init__(self) -> None:
        self.contexts: dict[str, CallContext] = {}
        self.audio: dict[str, int] = {}
        self.digits: dict[str, list[str]] = {}
        self.connected = asyncio.Condition()

    async def __call__(self, media: MediaSession, context: CallContext) -> None:
        self.contexts[context.channel_id] = context
        self.audio[context.channel_id] = 0
        self.digits[context.channel_id] = []
        async for item in media.inbound():
            if isinstance(item, AudioIn):
                self.audio[context.channel_id] += 1
            elif isinstance(item, DtmfIn):
                self.digits[context.channel_id].append(item.digit)

    async def wait_audio(self, channel_id: str, timeout_s: float = 10.0) -> CallContext:
        async with asyncio.timeout(timeout_s):
            while self.audio.get(channel_id, 0) == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return self.contexts[channel_id]


class Rig:
    def __init__(self, sim: Any, engine: Engine, driver: AriClient, agent: ListeningAgent) -> None:
        self.sim, self.engine, self.driver, self.agent = sim, engine, driver, agent
        self.ended: dict[str, ev.CallEndedEvent] = {}
        self.ended_count = 0
        self._n = 0
        self.injector: FaultInjector | None = None
        self.collector: asyncio.Task[None]

    async def call(self, caller: str = "5551000") -> tuple[str, str]:
        """An inbound call the way a2 in ari-traces makes one: (outer leg, inbound leg)."""
        self._n += 1
        out, inbound = f"t{self._n}-out", f"t{self._n}-in"
        await self.driver.originate(
            "Local/110@call-center",
            context="stasis-test",
            extension="tone",
            priority=1,
            caller_id=f"Test <{caller}>",
            channel_id=out,
            other_channel_id=inbound,
        )
        return out, inbound

    async def leftovers(self) -> tuple[list[str], list[str]]:
        channels = [c.id for c in await self.driver.list_channels()]
        bridges = [b.id for b in await self.driver.list_bridges()]
        return channels, bridges


async def make_rig(tmp_path: Path, injector: FaultInjector | None) -> Rig:
    password = secrets.token_urlsafe(12)
    extensions = []
    if injector is not None:

        def install(sim: Any, app: Any) -> None:
            injector.install(app)
            injector.attach(sim.pbx.hub)

        extensions.append(install)
    sim = await start_simulator(SimSettings(port=0, password=password), extensions=extensions)
    media_port = free_port()
    server = {
        "name": "sim",
        "url": sim.ari_url,
        "password": password,
        "reconnect_max_backoff_s": 0.2,
    }
    settings = load_settings(
        asterisk={"servers": [server], "media_address": f"127.0.0.1:{media_port}"},
        media={"port": media_port, "uvloop": False},
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"},
    )
    agent = ListeningAgent()
    bus = ev.EventBus()
    engine = Engine(settings, agent=agent, bus=bus, with_store=True)
    await engine.start()
    driver = AriClient(AriServerSettings(**server))
    r = Rig(sim, engine, driver, agent)
    r.injector = injector
    ended = bus.subscribe()

    async def collect() -> None:
        while True:
            event = await ended.get()
            if isinstance(event, ev.CallEndedEvent):
                r.ended[event.call_id] = event
                r.ended_count += 1

    r.collector = asyncio.create_task(collect())
    await engine.wait_connected(10)
    return r


async def close_rig(r: Rig) -> None:
    r.collector.cancel()
    await r.driver.close()
    await r.engine.stop()
    await r.sim.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, None)
    yield r
    await close_rig(r)


@pytest.fixture
async def faulty_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, FaultInjector(seed=7))
    yield r
    await close_rig(r)


async def until(check: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_inbound_call_set_up_and_torn_down(rig: Rig) -> None:
    out, inbound = await rig.call("5551234")
    context = await rig.agent.wait_audio(inbound)
    assert (context.caller_id, context.did) == ("5551234", "110")
    call = rig.engine.calls.calls[context.call_id]
    bridge = await rig.driver.get_bridge(call.bridge_id)
    assert sorted(bridge.channels) == sorted([inbound, call.media_channel_id])
    assert bridge.bridge_type == "mixing"
    await rig.driver.hangup(out)  # the caller hangs up
    await until(lambda: context.call_id in rig.ended)
    record = rig.ended[context.call_id]
    assert (record.ended_by, record.cause, record.disposition) == ("caller", 16, "resolved")
    assert await rig.leftovers() == ([], [])


async def wait_context(agent: ListeningAgent, channel_id: str) -> CallContext:
    await until(lambda: channel_id in agent.contexts)
    return agent.contexts[channel_id]


async def test_device_call_dtmf_and_agent_hangup(rig: Rig) -> None:
    line = rig.sim.inbound_call("PJSIP/gateway-fxo-1", caller_id="Bob <5552000>")
    context = await wait_context(rig.agent, line.channel_id)
    assert (context.caller_id, context.caller_name, context.did) == ("5552000", "Bob", "110")
    await line.send_dtmf("4", 80)
    await line.send_dtmf("#", 80)
    await until(lambda: rig.agent.digits[line.channel_id] == ["4", "#"])
    rig.engine.bus.publish(ev.ActionRequestedEvent(context.call_id, action="hangup"))
    await until(lambda: context.call_id in rig.ended)
    record = rig.ended[context.call_id]
    assert (record.ended_by, record.cause, record.cause_txt) == ("agent", 16, "Normal Clearing")
    await asyncio.wait_for(line.wait_ended(), 5)
    assert await rig.leftovers() == ([], [])


async def test_caller_hangup_with_a_busy_cause(rig: Rig) -> None:
    line = rig.sim.inbound_call("PJSIP/gateway-fxo-1", caller_id="Eve <5553000>")
    context = await wait_context(rig.agent, line.channel_id)
    await line.hangup(cause=17)
    await until(lambda: context.call_id in rig.ended)
    record = rig.ended[context.call_id]
    assert (record.ended_by, record.cause) == ("caller", 17)
    assert await rig.leftovers() == ([], [])


async def stored(r: Rig, call_id: str) -> Any:
    await r.engine.recorder.drain()
    return await r.engine.store.calls.get_call(call_id)


async def test_twenty_websocket_drops_during_twenty_live_calls(faulty_rig: Rig) -> None:
    r = faulty_rig
    assert r.injector is not None
    stream = r.engine.connections["sim"].stream
    lines = [
        r.sim.inbound_call("PJSIP/gateway-fxo-1", caller_id=f"Caller {n} <5550{n:03d}>")
        for n in range(20)
    ]
    contexts = [await wait_context(r.agent, line.channel_id) for line in lines]
    expected: dict[str, str] = {}
    for n, (line, context) in enumerate(zip(lines, contexts, strict=True)):
        connections = stream.connections
        assert await r.injector.drop_websockets() >= 1
        # while the events WebSocket is down: a caller hangs up, or the agent ends a call
        if n % 2 == 0:
            await line.hangup(cause=16)
            expected[context.call_id] = "caller"
        else:
            r.engine.bus.publish(ev.ActionRequestedEvent(context.call_id, action="hangup"))
            expected[context.call_id] = "agent"
        await until(lambda c=connections: stream.connections > c and stream.connected.is_set())
    await until(lambda: len(r.ended) == 20)
    assert r.ended_count == 20  # each call ended exactly once
    assert r.injector.counters.ws_drops >= 20
    assert r.engine.connections["sim"].resyncs >= 20
    for call_id, ended_by in expected.items():
        event = r.ended[call_id]
        assert event.ended_by == ended_by, event
        if ended_by == "agent":
            assert (event.cause, event.cause_txt) == (16, "Normal Clearing")
        else:  # seen live (16) or only by the resync, which cannot know why
            assert event.cause == 16 or "event stream was down" in event.cause_txt
        record = await stored(r, call_id)
        assert record is not None and record.ended_at is not None
        assert (record.ended_by, record.hangup_cause) == (ended_by, event.cause)
        assert record.disposition == "resolved"
    assert await r.leftovers() == ([], [])
    assert r.engine.calls.calls == {}


async def test_a_caller_whose_stasis_start_was_lost_is_answered_after_the_reconnect(
    faulty_rig: Rig,
) -> None:
    r = faulty_rig
    assert r.injector is not None
    stream = r.engine.connections["sim"].stream
    connections = stream.connections
    # the connection dies with this caller's StasisStart in flight
    r.injector.lose_events(types=["StasisStart"])
    line = r.sim.inbound_call("PJSIP/gateway-fxo-1", caller_id="Lost <5554000>")
    await until(lambda: r.injector is not None and r.injector.counters.lost == 1)
    assert r.engine.calls.call_for_channel("sim", line.channel_id) is None  # never seen
    await until(lambda: stream.connections > connections and stream.connected.is_set())
    # the resync finds the caller waiting in our application and takes it as a new call
    context = await wait_context(r.agent, line.channel_id)
    assert (context.caller_id, context.did) == ("5554000", "110")
    call = r.engine.calls.calls[context.call_id]
    bridge = await r.driver.get_bridge(call.bridge_id)
    assert sorted(bridge.channels) == sorted([line.channel_id, call.media_channel_id])
    await line.hangup(cause=16)
    await until(lambda: context.call_id in r.ended)
    assert r.ended_count == 1
    record = await stored(r, context.call_id)
    assert record is not None and record.ended_at is not None
    assert (record.caller_id, record.ended_by, record.hangup_cause) == ("5554000", "caller", 16)
    assert await r.leftovers() == ([], [])


async def test_duplicated_reordered_and_stray_events(
    faulty_rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    r = faulty_rig
    assert r.injector is not None
    r.injector.duplicate_events(count=None, probability=0.5)
    r.injector.reorder_events(count=None, probability=0.3)
    # every StasisStart, StasisEnd and ChannelDestroyed also comes as a copy about a
    # channel that does not exist
    r.injector.unknown_channel_events(
        count=None, types=["StasisStart", "StasisEnd", "ChannelDestroyed"]
    )
    lines = [
        r.sim.inbound_call("PJSIP/gateway-fxo-1", caller_id=f"Dup {n} <5551{n:03d}>")
        for n in range(8)
    ]
    contexts = [await wait_context(r.agent, line.channel_id) for line in lines]
    for n, (line, context) in enumerate(zip(lines, contexts, strict=True)):
        if n % 2:
            await line.hangup(cause=16)
        else:
            r.engine.bus.publish(ev.ActionRequestedEvent(context.call_id, action="hangup"))
    await until(lambda: len(r.ended) == 8)
    await asyncio.sleep(0.3)  # late duplicates must not end anything twice
    counters = r.injector.counters
    assert counters.duplicated > 0 and counters.unknown_channel >= 8 * 3
    assert r.engine.calls.discarded >= 8  # stray StasisStarts: 404 on answer, no record
    assert r.ended_count == 8
    assert len(r.agent.contexts) == 8  # a duplicated StasisStart never made a second call
    router = r.engine.connections["sim"].router
    assert router.ignored["duplicate StasisStart"] + router.ignored["unknown channel"] > 0
    for n, context in enumerate(contexts):
        record = await stored(r, context.call_id)
        assert record.ended_by == ("caller" if n % 2 else "agent")
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]
    r.injector.clear()
    assert await r.leftovers() == ([], [])
    await until(lambda: r.engine.calls.calls == {})  # stray StasisStarts left nothing behind
    await r.engine.recorder.drain()
    page = await r.engine.store.calls.list_calls(CallFilter())
    assert page.total == 8  # and no record


async def test_two_asterisk_servers_share_one_engine(tmp_path: Path) -> None:
    sims = []
    for _ in range(2):
        sims.append(
            await start_simulator(SimSettings(port=0, password="pw-" + secrets.token_hex(4)))
        )
    media_port = free_port()
    servers = [
        {"name": f"pbx-{n}", "url": sim.ari_url, "password": sim.password}
        for n, sim in enumerate(sims)
    ]
    settings = load_settings(
        asterisk={"servers": servers, "media_address": f"127.0.0.1:{media_port}"},
        media={"port": media_port, "uvloop": False},
    )
    agent = ListeningAgent()
    engine = Engine(settings, agent=agent)
    await engine.start()
    try:
        await engine.wait_connected(10)
        # the same channel id on both servers: calls are keyed by server
        lines = [sim.inbound_call("PJSIP/gateway-fxo-1", caller_id="X <1>") for sim in sims]
        assert lines[0].channel_id == lines[1].channel_id
        await until(
            lambda: (
                len(engine.calls.calls) == 2
                and all(c.state.value == "active" for c in engine.calls.calls.values())
            )
        )
        assert {c.server for c in engine.calls.calls.values()} == {"pbx-0", "pbx-1"}
        await lines[1].hangup()
        await until(lambda: len(engine.calls.calls) == 1)
        (left,) = engine.calls.calls.values()
        assert left.server == "pbx-0" and left.state.value == "active"
    finally:
        await engine.stop()
        for sim in sims:
            await sim.close()


async def test_calls_survive_5xx_and_slow_responses(faulty_rig: Rig) -> None:
    r = faulty_rig
    assert r.injector is not None
    r.injector.fail_requests(status=503, count=4, paths=["/ari/bridges", "/ari/channels/*"])
    r.injector.slow_requests(delay_ms=200, count=2, paths=["/ari/channels/*/answer"])
    lines = [
        r.sim.inbound_call("PJSIP/gateway-fxo-1", caller_id=f"Err {n} <5552{n:03d}>")
        for n in range(4)
    ]
    contexts = [await wait_context(r.agent, line.channel_id) for line in lines]
    assert r.injector.counters.http_5xx == 4 and r.injector.counters.slow == 2
    for line in lines:
        await line.hangup()
    await until(lambda: len(r.ended) == 4)
    assert {e.disposition for e in r.ended.values()} == {"resolved"}
    assert {r.ended[c.call_id].ended_by for c in contexts} == {"caller"}
    assert await r.leftovers() == ([], [])


async def crash(engine: Engine) -> None:
    """Stop an engine as a killed process would: no hang-ups, no goodbyes."""
    for connection in engine.connections.values():
        await connection.stream.stop()
        if connection.task is not None:
            connection.task.cancel()
        await connection.client.close()
    for call in engine.calls.calls.values():
        if call.agent_task is not None:
            call.agent_task.cancel()
    for task in list(engine.calls._tasks):
        task.cancel()
    await engine.media_server.close()
    engine.media_server = None
    engine.connections.clear()
    engine.calls.calls.clear()  # a dead process forgets its calls


async def test_a_restarted_engine_takes_over_the_callers_left_behind(rig: Rig) -> None:
    line = rig.sim.inbound_call("PJSIP/gateway-fxo-1", caller_id="Ann <5554000>")
    first = await wait_context(rig.agent, line.channel_id)
    old_bridge = rig.engine.calls.calls[first.call_id].bridge_id
    settings = rig.engine.settings
    await crash(rig.engine)
    assert old_bridge in (await rig.leftovers())[1]  # the dead engine's bridge is still there
    rig.agent.contexts.clear()
    engine = Engine(settings, agent=rig.agent, with_store=False)
    await engine.start()
    try:
        await engine.wait_connected(10)
        second = await wait_context(rig.agent, line.channel_id)
        assert second.call_id != first.call_id
        assert (second.caller_id, second.did) == ("5554000", "110")
        call = engine.calls.calls[second.call_id]
        await until(lambda: call.state.value == "active")
        channels, bridges = await rig.leftovers()
        assert bridges == [call.bridge_id]  # the old bridge and media leg are gone
        assert sorted(channels) == sorted([line.channel_id, call.media_channel_id])
        await line.hangup()
        await until(lambda: engine.calls.calls == {})
        assert await rig.leftovers() == ([], [])
    finally:
        await engine.stop()
