"""The simulator over real HTTP, WebSocket and AudioSocket TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from operadora.config import ConfigError
from operadora.sim.lines import Line
from operadora.sim.server import Simulator, start_simulator
from operadora.sim.sounds import load_prompt

pytestmark = pytest.mark.integration

APP = "callcenter-ai"


def auth_header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Ari:
    """A small ARI client for the tests: REST calls and the events WebSocket."""

    def __init__(self, sim: Simulator, user: str, password: str) -> None:
        self.url = sim.ari_url
        self.session = aiohttp.ClientSession(headers=auth_header(user, password))
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, app: str = APP) -> None:
        self._ws = await self.session.ws_connect(f"{self.url}/events?app={app}&subscribeAll=true")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            self.events.append(json.loads(msg.data))
            self._arrived.set()

    async def call(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        query = {k: str(v) for k, v in params.items()}
        async with self.session.request(method, f"{self.url}{path}", params=query) as resp:
            body = await resp.json() if resp.status != 204 and resp.content_length != 0 else None
            return resp.status, body

    async def wait_event(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] = lambda e: True,
        within_s: float = 5,
    ) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if event["type"] == kind and match(event):
                        return event
                seen = len(self.events)
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(find(), within_s)

    def of_channel(self, channel_id: str) -> list[str]:
        return [e["type"] for e in self.events if e.get("channel", {}).get("id") == channel_id]

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.session.close()


@pytest.fixture
async def ari(simulator: Simulator, sim_credentials: tuple[str, str]) -> AsyncIterator[Ari]:
    client = Ari(simulator, *sim_credentials)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


@dataclass
class Connection:
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    writer: asyncio.StreamWriter | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def audio(self) -> list[bytes]:
        return [p for k, p in self.frames if 0x10 <= k <= 0x18]


class AudioSocketServer:
    """What Operadora's media server is to Asterisk: it accepts, reads frames, may send."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.connected = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(writer=writer)
        self.connections.append(conn)
        self.connected.set()
        try:
            while True:
                kind, length = struct.unpack("!BH", await reader.readexactly(3))
                conn.frames.append((kind, await reader.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            conn.closed.set()
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def media_server() -> AsyncIterator[AudioSocketServer]:
    server = AudioSocketServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack("!BH", kind, len(payload)) + payload


def constant(value: int, samples: int = 320) -> bytes:
    return np.full(samples, value, dtype="<i2").tobytes()


async def eventually(check: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll a condition on real I/O until it holds (fails after ``within_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- security
async def test_refuses_to_start_without_a_password(make_sim_settings: Any) -> None:
    with pytest.raises(ConfigError, match=r"sim\.password"):
        await start_simulator(make_sim_settings(password=None))


async def test_basic_auth_is_required(
    simulator: Simulator, sim_credentials: tuple[str, str]
) -> None:
    user, password = sim_credentials
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{simulator.ari_url}/channels") as resp:
            assert resp.status == 401
            assert await resp.json() == {"message": "Authentication required"}
            assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
        bad = auth_header(user, password + "x")
        async with session.get(f"{simulator.ari_url}/channels", headers=bad) as resp:
            assert resp.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(f"{simulator.ari_url}/events?app={APP}")
        assert err.value.status == 401
        good = auth_header(user, password)
        async with session.get(f"{simulator.ari_url}/channels", headers=good) as resp:
            assert resp.status == 200
            assert await resp.json() == []


# ---------------------------------------------------------------- resources
async def test_endpoints_include_the_fxo_gateway(ari: Ari, simulator: Simulator) -> None:
    status, body = await ari.call("GET", "/endpoints")
    assert status == 200
    states = {(e["technology"], e["resource"]): e["state"] for e in body}
    assert states[("PJSIP", "gateway-fxo-1")] == "online"
    assert states[("PJSIP", "agent1")] == "offline"
    simulator.set_endpoint_state("PJSIP/gateway-fxo-1", "offline")
    status, one = await ari.call("GET", "/endpoints/PJSIP/gateway-fxo-1")
    assert (status, one["state"], one["channel_ids"]) == (200, "offline", [])
    status, missing = await ari.call("GET", "/endpoints/PJSIP/nobody")
    assert (status, missing) == (404, {"message": "Endpoint not found"})


async def test_asterisk_info_and_applications(ari: Ari) -> None:
    status, info = await ari.call("GET", "/asterisk/info")
    assert status == 200 and info["system"]["version"] == "22.10.1"
    status, apps = await ari.call("GET", "/applications")
    assert status == 200 and [a["name"] for a in apps] == [APP]
    status, body = await ari.call("GET", "/channels/nope")
    assert (status, body) == (404, {"message": "Channel not found"})
    assert await ari.call("GET", "/no/such/resource") == (404, {"message": "Resource not found"})
    assert (await ari.call("PUT", "/channels"))[0] == 405


async def test_variables_and_unknown_bridge(ari: Ari) -> None:
    status, body = await ari.call(
        "POST", "/channels", endpoint="Local/s@stasis-test", app=APP, channelId="v1"
    )
    assert status == 200 and body["state"] == "Down"
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == "v1")
    assert (await ari.call("POST", "/channels/v1/variable", variable="X", value="1"))[0] == 204
    assert await ari.call("GET", "/channels/v1/variable", variable="X") == (200, {"value": "1"})
    name = await ari.call("GET", "/channels/v1/variable", variable="CHANNEL(name)")
    assert name[1]["value"].startswith("Local/s@stasis-test-")
    assert (await ari.call("GET", "/channels/v1/variable", variable="NOPE"))[0] == 404
    assert (await ari.call("POST", "/bridges/none/addChannel", channel="v1"))[0] == 404
    assert (await ari.call("DELETE", "/channels/v1", reason="bogus"))[0] == 400
    assert (await ari.call("DELETE", "/channels/v1", reason="busy"))[0] == 204
    destroyed = await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == "v1")
    assert (destroyed["cause"], destroyed["cause_txt"]) == (17, "User busy")


# ---------------------------------------------------------------- media
async def test_external_media_connects_before_bridging_and_bridges_mix(
    ari: Ari, media_server: AudioSocketServer
) -> None:
    """Three externalMedia legs in one mixing bridge: each hears the sum of the other two."""
    values = {"m1": 1000, "m2": 2000, "m3": 4000}
    uuids = {name: str(uuid.uuid4()) for name in values}
    for name in values:
        status, body = await ari.call(
            "POST",
            "/channels/externalMedia",
            app=APP,
            channelId=name,
            external_host=f"127.0.0.1:{media_server.port}",
            encapsulation="audiosocket",
            transport="tcp",
            format="slin16",
            data=uuids[name],
        )
        assert status == 200
        assert body["name"] == f"AudioSocket/127.0.0.1:{media_server.port}-{uuids[name]}"
    await eventually(
        lambda: (
            len(media_server.connections) == 3 and all(c.frames for c in media_server.connections)
        )
    )
    by_uuid = {}
    for conn in media_server.connections:
        kind, payload = conn.frames[0]
        assert kind == 0x01 and len(payload) == 16
        by_uuid[str(uuid.UUID(bytes=payload))] = conn
    assert set(by_uuid) == set(uuids.values())
    assert all(len(c.frames) == 1 for c in media_server.connections)  # nothing before bridging

    status, bridge = await ari.call("POST", "/bridges", type="mixing", bridgeId="conf")
    assert status == 200
    assert (await ari.call("POST", "/bridges/conf/addChannel", channel="m1,m2,m3"))[0] == 204
    status, bridge = await ari.call("GET", "/bridges/conf")
    assert bridge["technology"] == "softmix" and set(bridge["channels"]) == set(values)

    async def speak(conn: Connection, value: int) -> None:
        assert conn.writer is not None
        for _ in range(25):
            conn.writer.write(frame(0x12, constant(value)))
            await asyncio.sleep(0.02)

    await asyncio.gather(*(speak(by_uuid[uuids[n]], v) for n, v in values.items()))
    total = sum(values.values())
    for name, value in values.items():
        conn = by_uuid[uuids[name]]
        await eventually(lambda conn=conn: len(conn.audio()) >= 10)
        heard = {int(np.frombuffer(p, dtype="<i2")[100]) for p in conn.audio()}
        assert total - value in heard, (name, sorted(heard))
        assert value not in heard and total not in heard  # never its own voice
        assert all(len(p) == 640 for p in conn.audio())  # slin16: 20 ms = 640 bytes

    assert (await ari.call("DELETE", "/channels/m1"))[0] == 204
    await asyncio.wait_for(by_uuid[uuids["m1"]].closed.wait(), 5)  # Asterisk closes (EOF)
    assert (0x00, b"") not in by_uuid[uuids["m1"]].frames  # and never sends a hangup frame


async def test_server_hangup_frame_ends_the_external_media_channel(
    ari: Ari, media_server: AudioSocketServer
) -> None:
    status, _ = await ari.call(
        "POST",
        "/channels/externalMedia",
        app=APP,
        channelId="em",
        format="slin",
        external_host=f"127.0.0.1:{media_server.port}",
        encapsulation="audiosocket",
        transport="tcp",
        data=str(uuid.uuid4()),
    )
    assert status == 200
    await asyncio.wait_for(media_server.connected.wait(), 5)
    writer = media_server.connections[0].writer
    assert writer is not None
    writer.write(b"\x00\x00\x00")
    destroyed = await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == "em")
    assert destroyed["cause"] == 16
    assert ari.of_channel("em")[-4:] == [
        "ChannelHangupRequest",
        "StasisEnd",
        "ChannelVarset",
        "ChannelDestroyed",
    ]


@dataclass
class Device:
    """A simulated phone: constant-level speech out, records what it hears and DTMF."""

    sample_rate: int = 8000
    level: int = 3000
    heard: list[bytes] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def next_frame(self) -> bytes | None:
        return constant(self.level, self.sample_rate // 50)

    def hear(self, pcm: bytes) -> None:
        self.heard.append(pcm)

    def dtmf(self, digit: str, duration_ms: int) -> None:
        self.digits.append(digit)

    def ended(self, cause: int, cause_txt: str) -> None:
        self.ends.append(cause)


async def test_inbound_call_from_the_fxo_gateway_reaches_the_ai_route(
    ari: Ari, simulator: Simulator, media_server: AudioSocketServer
) -> None:
    device = Device()
    line = simulator.inbound_call(
        "PJSIP/gateway-fxo-1", context="call-center", extension="110", caller_id="Bob <5552000>"
    )
    line.attach(device, device, device)
    start = await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == line.channel_id)
    assert start["args"] == ["inbound", "110"]
    assert start["channel"]["state"] == "Ring"
    assert start["channel"]["name"].startswith("PJSIP/gateway-fxo-1-")
    assert start["channel"]["caller"] == {"name": "Bob", "number": "5552000"}
    assert start["channel"]["dialplan"]["app_data"] == "callcenter-ai,inbound,110"
    caller = line.channel_id
    _, endpoint = await ari.call("GET", "/endpoints/PJSIP/gateway-fxo-1")
    assert caller in endpoint["channel_ids"]

    assert (await ari.call("POST", f"/channels/{caller}/answer"))[0] == 204
    assert await asyncio.wait_for(line.wait_answered(), 2)
    call_uuid = str(uuid.uuid4())
    await ari.call(
        "POST",
        "/channels/externalMedia",
        app=APP,
        channelId="ai",
        format="slin16",
        external_host=f"127.0.0.1:{media_server.port}",
        encapsulation="audiosocket",
        transport="tcp",
        data=call_uuid,
    )
    await ari.call("POST", "/bridges", type="mixing", bridgeId="call")
    await ari.call("POST", "/bridges/call/addChannel", channel=f"{caller},ai")
    connected = await ari.wait_event("ChannelConnectedLine", lambda e: e["channel"]["id"] == "ai")
    assert connected["channel"]["connected"]["number"] == "5552000"

    conn = media_server.connections[0]
    await eventually(lambda: len(conn.audio()) >= 5)  # the caller's voice reaches the agent
    level = int(np.frombuffer(conn.audio()[-1], dtype="<i2")[200])
    assert level == device.level
    assert conn.writer is not None
    for _ in range(5):
        conn.writer.write(frame(0x12, constant(-1200)))  # the agent speaks
    await eventually(lambda: len(device.heard) >= 5)
    assert int(np.frombuffer(device.heard[-1], dtype="<i2")[50]) == -1200
    assert len(device.heard[-1]) == 320  # the device gets its own rate (8 kHz)

    await line.send_dtmf("7", 80)
    dtmf = await ari.wait_event("ChannelDtmfReceived", lambda e: e["channel"]["id"] == caller)
    assert (dtmf["digit"], dtmf["duration_ms"]) == ("7", 80)
    await eventually(lambda: (0x03, b"7") in conn.frames)  # passed through the bridge

    await line.hangup(16)
    destroyed = await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == caller)
    assert destroyed["cause_txt"] == "Normal Clearing"
    tail = [t for t in ari.of_channel(caller) if t != "ChannelVarset"][-5:]
    assert tail == [
        "ChannelHangupRequest",  # the phone hung up
        "ChannelLeftBridge",
        "StasisEnd",
        "ChannelHangupRequest",  # the dialplan (PBX) ends
        "ChannelDestroyed",
    ]
    left = await ari.wait_event("ChannelLeftBridge", lambda e: e["channel"]["id"] == caller)
    assert left["bridge"]["channels"] == ["ai"]
    assert device.ends == [16]
    assert line.ended


async def test_channel_playback_has_the_prompts_length(ari: Ari, simulator: Simulator) -> None:
    device = Device(sample_rate=16000, level=0)
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", extension="110")
    line.attach(None, device, device)
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == line.channel_id)
    await ari.call("POST", f"/channels/{line.channel_id}/answer")
    status, pb = await ari.call(
        "POST", f"/channels/{line.channel_id}/play", media="sound:hello-world", playbackId="p1"
    )
    assert (status, pb["state"], pb["target_uri"]) == (201, "queued", f"channel:{line.channel_id}")
    await ari.wait_event("PlaybackFinished", lambda e: e["playback"]["id"] == "p1", within_s=6)
    expected = load_prompt("hello-world").frames
    assert len(device.heard) == len(expected)  # 1.403 s of audio = 70 frames of 20 ms
    assert device.heard[10] == expected[10]


async def test_dialplan_dial_rings_a_simulated_extension(
    ari: Ari, make_sim_settings: Any, sim_credentials: tuple[str, str], tmp_path: Path
) -> None:
    plan = tmp_path / "extensions.conf"
    plan.write_text(
        "[from-gw]\nexten => 600,1,NoOp(to agent)\n same => n,Dial(PJSIP/agent1,20)\n"
        " same => n,Hangup()\n"
    )
    sim = await start_simulator(make_sim_settings(dialplan_file=plan))
    client = Ari(sim, *sim_credentials)
    await client.connect()
    answered: list[Line] = []
    agent = Device(level=1500)

    async def agent_desk(dialed: Line) -> None:
        assert dialed.endpoint == "PJSIP/agent1"
        dialed.attach(agent, agent, agent)
        await dialed.ring()
        await asyncio.sleep(0.05)
        await dialed.answer()
        answered.append(dialed)

    sim.set_dial_handler(agent_desk)
    try:
        caller = Device(level=700)
        line = sim.inbound_call("PJSIP/gateway-fxo-1", context="from-gw", extension="600")
        line.attach(caller, caller, caller)
        bridge = await client.wait_event("BridgeCreated")
        assert bridge["bridge"]["bridge_class"] == "basic"
        await eventually(lambda: len(caller.heard) >= 3 and len(agent.heard) >= 3)
        assert int(np.frombuffer(caller.heard[-1], dtype="<i2")[10]) == 1500
        assert int(np.frombuffer(agent.heard[-1], dtype="<i2")[10]) == 700
        assert line.state == "Up"
        await answered[0].hangup(16)
        await asyncio.wait_for(line.wait_ended(), 5)
        assert caller.ends == [16]
    finally:
        await client.close()
        await sim.close()


async def test_originate_to_a_device_endpoint(ari: Ari, simulator: Simulator) -> None:
    async def pick_up(dialed: Line) -> None:
        await dialed.answer()

    simulator.set_dial_handler(pick_up)
    status, body = await ari.call(
        "POST", "/channels", endpoint="PJSIP/agent2", app=APP, appArgs="out,1", channelId="o1"
    )
    assert status == 200 and body["name"].startswith("PJSIP/agent2-")
    start = await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == "o1")
    assert start["args"] == ["out", "1"] and start["channel"]["state"] == "Up"
    dials = [e["dialstatus"] for e in ari.events if e["type"] == "Dial"]
    assert dials == ["", "ANSWER"]


async def test_an_app_without_subscribe_all_sees_only_its_channels(
    ari: Ari, simulator: Simulator, sim_credentials: tuple[str, str]
) -> None:
    other = Ari(simulator, *sim_credentials)
    other._ws = await other.session.ws_connect(f"{simulator.ari_url}/events?app=other-app")
    other._task = asyncio.create_task(other._read())
    try:
        await ari.call("POST", "/channels", endpoint="Local/s@stasis-test", app=APP, channelId="x1")
        await ari.call(
            "POST",
            "/channels",
            endpoint="Local/s@stasis-test",
            app="other-app",
            appArgs="mine",
            channelId="y1",
        )
        start = await other.wait_event("StasisStart")
        assert start["channel"]["id"] == "y1" and start["application"] == "other-app"
        status, _ = await ari.call(
            "POST", "/events/user/Ping", application="other-app", source="channel:y1"
        )
        assert status == 204
        user = await other.wait_event("ChannelUserevent")
        assert (user["eventname"], user["channel"]["id"]) == ("Ping", "y1")
        await ari.call("DELETE", "/channels/y1")
        await other.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == "y1")
        await ari.call("DELETE", "/channels/x1")
        await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == "x1")
        ids = {e.get("channel", {}).get("id") for e in other.events}
        assert ids == {"y1"}  # never the other app's channel, nor the ;2 halves
        types = [e["type"] for e in other.events]
        assert types.index("StasisEnd") < types.index("ChannelDestroyed")
    finally:
        await other.close()


async def test_redirect_of_an_unanswered_pjsip_channel(ari: Ari, simulator: Simulator) -> None:
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", extension="110")
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == line.channel_id)
    status, body = await ari.call(
        "POST", f"/channels/{line.channel_id}/redirect", endpoint="Local/500@call-center"
    )
    assert status == 422
    assert body == {
        "message": "Endpoint technology 'Local' does not match channel technology 'PJSIP'"
    }
    status, _ = await ari.call(
        "POST", f"/channels/{line.channel_id}/redirect", endpoint="PJSIP/agent2"
    )
    assert status == 204
    gone = await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == line.channel_id)
    assert (gone["cause"], gone["cause_txt"], gone["tech_cause"]) == (
        23,
        "Redirected to new destination",
        302,
    )


async def test_direct_audiosocket_route_without_ari(
    make_sim_settings: Any, media_server: AudioSocketServer
) -> None:
    """The seed's extension 100: ``AudioSocket(${UUID()},server)`` straight from the dialplan."""
    settings = make_sim_settings(globals={"AUDIOSOCKET_SERVER": f"127.0.0.1:{media_server.port}"})
    sim = await start_simulator(settings)
    seen: list[dict[str, Any]] = []
    sim.pbx.hub.listeners.append(seen.append)
    try:
        device = Device(sample_rate=8000, level=900)
        line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="100", caller_id="555")
        line.attach(device, device, device)
        await asyncio.wait_for(media_server.connected.wait(), 5)
        conn = media_server.connections[0]
        await eventually(lambda: len(conn.audio()) >= 5)
        kind, payload = conn.frames[0]
        as_uuid = next(e["value"] for e in seen if e.get("variable") == "AS_UUID")
        assert (kind, str(uuid.UUID(bytes=payload))) == (0x01, as_uuid)
        assert {len(p) for p in conn.audio()} == {320}  # the app is always 8 kHz slin
        assert int(np.frombuffer(conn.audio()[-1], dtype="<i2")[7]) == 900
        assert conn.writer is not None
        conn.writer.write(frame(0x10, constant(-300, 160)))
        await eventually(lambda: any(int(np.frombuffer(h, "<i2")[3]) == -300 for h in device.heard))
        conn.writer.write(b"\x00\x00\x00")  # the server ends the session
        await asyncio.wait_for(line.wait_ended(), 5)
        steps = [
            e["dialplan_app"]
            for e in seen
            if e["type"] == "ChannelDialplan" and e["channel"]["id"] == line.channel_id
        ]
        assert steps == ["NoOp", "Answer", "Set", "AudioSocket", "NoOp", "Hangup"]
        assert device.ends == [16]
    finally:
        await sim.close()


async def test_audiosocket_app_times_out_after_two_silent_seconds(
    make_sim_settings: Any, media_server: AudioSocketServer
) -> None:
    settings = make_sim_settings(globals={"AUDIOSOCKET_SERVER": f"127.0.0.1:{media_server.port}"})
    sim = await start_simulator(settings)
    try:
        device = Device()
        line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="100")
        line.attach(None, device, device)  # a line that sends nothing, like a Local in Wait()
        await asyncio.wait_for(media_server.connected.wait(), 5)
        conn = media_server.connections[0]
        await asyncio.wait_for(conn.closed.wait(), 5)
        await asyncio.wait_for(line.wait_ended(), 5)
        assert [k for k, _ in conn.frames] == [0x01]
        assert device.ends == [0]  # hung up with no cause, as in trace f3
    finally:
        await sim.close()


async def test_playback_control_and_mute(ari: Ari, simulator: Simulator) -> None:
    device = Device(sample_rate=16000, level=0)
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", extension="110")
    line.attach(None, device, device)
    cid = line.channel_id
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == cid)
    await ari.call("POST", f"/channels/{cid}/answer")
    await ari.call("POST", f"/channels/{cid}/play", media="sound:tt-weasels", playbackId="pc")
    await ari.wait_event("PlaybackStarted", lambda e: e["playback"]["id"] == "pc")
    await eventually(lambda: len(device.heard) >= 5)
    assert await ari.call("POST", "/playbacks/pc/control", operation="pause") == (204, None)
    assert (await ari.call("GET", "/playbacks/pc"))[1]["state"] == "paused"
    await asyncio.sleep(0.1)
    paused_at = len(device.heard)
    await asyncio.sleep(0.2)
    assert len(device.heard) == paused_at  # nothing is sent while paused
    assert (await ari.call("POST", "/playbacks/pc/control", operation="bogus"))[0] == 400
    await ari.call("POST", "/playbacks/pc/control", operation="unpause")
    await eventually(lambda: len(device.heard) > paused_at + 3)
    await ari.call("POST", f"/channels/{cid}/mute", direction="out")
    await asyncio.sleep(0.1)
    muted_at = len(device.heard)
    await asyncio.sleep(0.2)
    assert len(device.heard) == muted_at  # muted towards the device
    assert (await ari.call("POST", f"/channels/{cid}/mute", direction="sideways"))[0] == 400
    await ari.call("DELETE", f"/channels/{cid}/mute")
    await eventually(lambda: len(device.heard) > muted_at + 3)
    assert (await ari.call("DELETE", "/playbacks/pc"))[0] == 204
    done = await ari.wait_event("PlaybackFinished", lambda e: e["playback"]["id"] == "pc")
    assert done["playback"]["state"] == "done"
    assert (await ari.call("GET", "/playbacks/pc"))[0] == 404


async def test_rtp_statistics_count_real_frames(ari: Ari, simulator: Simulator) -> None:
    device = Device(sample_rate=8000, level=100)
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", extension="110", caller_id="555")
    line.attach(device, device, device)
    cid = line.channel_id
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == cid)
    status, stats = await ari.call("GET", f"/channels/{cid}/rtp_statistics")
    assert status == 200 and stats["rxcount"] == 0  # nothing flows before the answer
    await ari.call("POST", f"/channels/{cid}/answer")
    await ari.call("POST", f"/channels/{cid}/play", media="sound:hello-world", playbackId="r")
    await ari.wait_event("PlaybackFinished", lambda e: e["playback"]["id"] == "r")
    _, stats = await ari.call("GET", f"/channels/{cid}/rtp_statistics")
    assert stats["txcount"] == len(device.heard) == len(load_prompt("hello-world").frames)
    assert stats["rxcount"] > 20
    assert stats["channel_uniqueid"] == cid
    value = await ari.call(
        "GET", f"/channels/{cid}/variable", variable="CHANNEL(pjsip,remote_addr)"
    )
    assert value[0] == 200
    _, local = await ari.call("POST", "/channels", endpoint="Local/s@stasis-test", app=APP)
    assert (await ari.call("GET", f"/channels/{local['id']}/rtp_statistics"))[0] == 404


async def _caller(ari: Ari, sim: Simulator, level: int) -> tuple[str, Device]:
    device = Device(sample_rate=16000, level=level)
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="110")
    line.attach(device, device, device)
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == line.channel_id)
    await ari.call("POST", f"/channels/{line.channel_id}/answer")
    return line.channel_id, device


def levels(device: Device) -> set[int]:
    return {int(np.frombuffer(pcm, dtype="<i2")[5]) for pcm in device.heard}


async def test_holding_bridge_announcer_and_music(ari: Ari, simulator: Simulator) -> None:
    a, dev_a = await _caller(ari, simulator, 100)
    b, dev_b = await _caller(ari, simulator, 200)
    c, dev_c = await _caller(ari, simulator, 400)
    await ari.call("POST", "/bridges", type="holding", bridgeId="hold")
    await ari.call("POST", "/bridges/hold/addChannel", channel=f"{a},{b}")
    await ari.call("POST", "/bridges/hold/addChannel", channel=c, role="announcer")
    await eventually(lambda: len(dev_a.heard) >= 10 and len(dev_b.heard) >= 10)
    assert levels(dev_a) == {400} and levels(dev_b) == {400}  # only the announcer
    assert dev_c.heard == []  # the announcer hears nobody
    await ari.call("POST", "/bridges/hold/removeChannel", channel=c)
    count = len(dev_a.heard)
    assert (await ari.call("POST", "/bridges/hold/moh", mohClass="nope"))[0] == 404
    assert (await ari.call("POST", "/bridges/hold/moh", mohClass="default"))[0] == 204
    await eventually(lambda: len(dev_a.heard) >= count + 10)
    assert len(levels(dev_a) - {400}) > 3  # music, not a constant
    assert (await ari.call("DELETE", "/bridges/hold/moh"))[0] == 204


async def test_bridge_playback_and_recording(ari: Ari, simulator: Simulator) -> None:
    a, dev_a = await _caller(ari, simulator, 0)
    b, dev_b = await _caller(ari, simulator, 1234)
    await ari.call("POST", "/bridges", type="mixing", bridgeId="mix")
    await ari.call("POST", "/bridges/mix/addChannel", channel=f"{a},{b}")
    status, rec = await ari.call(
        "POST", f"/channels/{b}/record", name="b-voice", format="wav", ifExists="overwrite"
    )
    assert (status, rec["state"], rec["target_uri"]) == (201, "queued", f"channel:{b}")
    await ari.wait_event("RecordingStarted")
    status, pb = await ari.call("POST", "/bridges/mix/play", media="sound:hello-world")
    assert status == 201 and pb["target_uri"] == "bridge:mix"
    done = await ari.wait_event("PlaybackFinished", lambda e: e["playback"]["id"] == pb["id"])
    assert done["playback"]["state"] == "done"
    prompt = set(load_prompt("hello-world").frames)
    assert sum(1 for pcm in dev_b.heard if pcm in prompt) > 30  # b hears it (a is silent)

    def minus_b(pcm: bytes) -> bytes:
        return (np.frombuffer(pcm, dtype="<i2").astype(np.int32) - 1234).astype("<i2").tobytes()

    assert sum(1 for pcm in dev_a.heard if minus_b(pcm) in prompt) > 30  # a: prompt + b
    assert (await ari.call("POST", "/recordings/live/b-voice/stop"))[0] == 204
    finished = await ari.wait_event("RecordingFinished")
    assert finished["recording"]["name"] == "b-voice"
    status, stored = await ari.call("GET", "/recordings/stored")
    assert status == 200 and {"name": "b-voice", "format": "wav"} in stored
    async with ari.session.get(f"{ari.url}/recordings/stored/b-voice/file") as resp:
        assert resp.status == 200
        wav = await resp.read()
    pcm = np.frombuffer(wav[44:], dtype="<i2")
    assert len(pcm) > 16000 and set(pcm[:1000].tolist()) == {1234}  # b's own voice, >1 s
    status, body = await ari.call("POST", f"/channels/{b}/record", name="b-voice", format="wav")
    assert (status, body) == (422, {"message": "Recording already exists"})
    assert (await ari.call("DELETE", "/recordings/stored/b-voice"))[0] == 204
    assert (await ari.call("GET", "/recordings/stored/b-voice"))[0] == 404


async def test_nothing_is_left_behind_after_many_calls(
    ari: Ari, simulator: Simulator, media_server: AudioSocketServer
) -> None:
    baseline = len(asyncio.all_tasks())
    for i in range(15):
        device = Device()
        line = simulator.inbound_call("PJSIP/gateway-fxo-1", extension="110")
        line.attach(device, device, device)
        cid = line.channel_id
        await ari.wait_event("StasisStart", lambda e, cid=cid: e["channel"]["id"] == cid)
        await ari.call("POST", f"/channels/{cid}/answer")
        await ari.call(
            "POST",
            "/channels/externalMedia",
            app=APP,
            channelId=f"ai{i}",
            format="slin16",
            external_host=f"127.0.0.1:{media_server.port}",
            encapsulation="audiosocket",
            transport="tcp",
            data=str(uuid.uuid4()),
        )
        await ari.call("POST", "/bridges", type="mixing", bridgeId=f"call{i}")
        await ari.call("POST", f"/bridges/call{i}/addChannel", channel=f"{cid},ai{i}")
        await ari.call("POST", f"/channels/{cid}/play", media="sound:hello-world")
        if i % 2:
            await line.hangup()  # the caller hangs up first
            await ari.call("DELETE", f"/channels/ai{i}")
        else:
            await ari.call("DELETE", f"/channels/ai{i}")
            await ari.call("DELETE", f"/channels/{cid}")
        await ari.call("DELETE", f"/bridges/call{i}")
        await asyncio.wait_for(line.wait_ended(), 5)
    assert await ari.call("GET", "/channels") == (200, [])
    assert await ari.call("GET", "/bridges") == (200, [])
    assert simulator.pbx.playbacks == {}
    await eventually(lambda: all(c.closed.is_set() for c in media_server.connections))
    assert len(media_server.connections) == 15
    await eventually(lambda: len(asyncio.all_tasks()) <= baseline + 1)


async def _phone_bridged_with_customer(ari: Ari, sim: Simulator, tag: str) -> tuple[Line, str]:
    phone = Device()
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="110", caller_id="Phone <sipp>")
    line.attach(phone, phone, phone)
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == line.channel_id)
    customer = f"{tag}-customer"
    await ari.call("POST", "/channels", endpoint="Local/s@stasis-test", app=APP, channelId=customer)
    await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == customer)
    await ari.call("POST", f"/channels/{line.channel_id}/answer")
    await ari.call("POST", "/bridges", type="mixing", bridgeId=f"{tag}-call")
    await ari.call(
        "POST", f"/bridges/{tag}-call/addChannel", channel=f"{line.channel_id},{customer}"
    )
    return line, customer


async def test_phone_refer_with_core_handling(ari: Ari, simulator: Simulator) -> None:
    line, customer = await _phone_bridged_with_customer(ari, simulator, "e3")
    await line.refer("500")
    start = await ari.wait_event(
        "StasisStart", lambda e: e["channel"]["name"].startswith("Local/500@call-center-")
    )
    assert start["args"] == [] and start["replace_channel"]["id"] == line.channel_id
    blind = await ari.wait_event("BridgeBlindTransfer")
    assert (blind["result"], blind["is_external"], blind["exten"], blind["context"]) == (
        "Success",
        True,
        "500",
        "call-center",
    )
    assert blind["transferee"]["id"] == customer
    assert blind["replace_channel"]["id"] == start["channel"]["id"]
    _, bridge = await ari.call("GET", "/bridges/e3-call")
    assert set(bridge["channels"]) == {customer, start["channel"]["id"]}
    assert not line.ended  # the transferer stays in Stasis until the phone hangs up
    assert line.transfer_states == ["channel_answered"]
    assert "ChannelUnhold" in ari.of_channel(line.channel_id)


async def test_phone_refer_with_ari_only_handling(ari: Ari, simulator: Simulator) -> None:
    line, customer = await _phone_bridged_with_customer(ari, simulator, "e4")
    sip = line.channel_id
    await ari.call(
        "POST", f"/channels/{sip}/variable", variable="PJSIP_TRANSFER_HANDLING()", value="ari-only"
    )
    await line.refer("500")
    event = await ari.wait_event("ChannelTransfer")
    assert event["refer_to"] == {"requested_destination": {"destination": "500"}}
    assert event["referred_by"]["source_channel"]["id"] == sip
    assert event["referred_by"]["connected_channel"]["id"] == customer
    assert event["referred_by"]["bridge"]["id"] == "e4-call"
    assert "channel" not in event and "state" not in event
    await ari.call("POST", f"/channels/{sip}/transfer_progress", states="channel_progress")
    await ari.call(
        "POST", f"/channels/{customer}/continue", context="call-center", extension="500", priority=1
    )
    await ari.call("POST", f"/channels/{sip}/transfer_progress", states="channel_answered")
    await ari.wait_event("ChannelTransfer", lambda e: e.get("state") == "channel_answered")
    states = [e.get("state") for e in ari.events if e["type"] == "ChannelTransfer"]
    assert states == [None, "channel_progress", "channel_answered"]
    last = [e for e in ari.events if e["type"] == "ChannelTransfer"][-1]
    assert "connected_channel" not in last["referred_by"]  # the customer has left the bridge
    assert line.transfer_states == ["channel_progress", "channel_answered"]
    assert (await ari.call("POST", f"/channels/{sip}/transfer_progress", states="bogus"))[0] == 400
    assert not any(e["type"] == "BridgeBlindTransfer" for e in ari.events)


async def test_dial_to_a_busy_extension_continues_the_dialplan(
    make_sim_settings: Any, tmp_path: Path
) -> None:
    plan = tmp_path / "extensions.conf"
    plan.write_text(
        "[from-gw]\nexten => 600,1,Dial(PJSIP/agent1,20)\n"
        " same => n,Playback(${DIALSTATUS})\n same => n,Hangup()\n"
    )
    sim = await start_simulator(make_sim_settings(dialplan_file=plan))
    seen: list[dict[str, Any]] = []
    sim.pbx.hub.listeners.append(seen.append)

    async def busy_desk(dialed: Line) -> None:
        await dialed.ring()
        await dialed.hangup(17)

    sim.set_dial_handler(busy_desk)
    try:
        caller = Device()
        line = sim.inbound_call("PJSIP/gateway-fxo-1", context="from-gw", extension="600")
        line.attach(caller, caller, caller)
        await asyncio.wait_for(line.wait_ended(), 8)
        statuses = [e["dialstatus"] for e in seen if e["type"] == "Dial"]
        assert statuses == ["", "RINGING", "BUSY"]
        played = [e["dialplan_app_data"] for e in seen if e["type"] == "ChannelDialplan"]
        assert "BUSY" in played  # ${DIALSTATUS} after Dial() returned
    finally:
        await sim.close()


async def test_a_newer_websocket_takes_the_application_over(
    ari: Ari, simulator: Simulator, sim_credentials: tuple[str, str]
) -> None:
    newer = Ari(simulator, *sim_credentials)
    await newer.connect()
    try:
        replaced = await ari.wait_event("ApplicationReplaced")
        assert replaced["application"] == APP
        await newer.call(
            "POST", "/channels", endpoint="Local/s@stasis-test", app=APP, channelId="n1"
        )
        await newer.wait_event("StasisStart", lambda e: e["channel"]["id"] == "n1")
        await asyncio.sleep(0.1)
        assert [e["type"] for e in ari.events] == ["ApplicationReplaced"]  # nothing after
        _, apps = await newer.call("GET", "/applications")
        assert [a["name"] for a in apps] == [APP]
    finally:
        await newer.close()


async def test_snoop_lets_a_supervisor_listen_and_whisper(
    ari: Ari, simulator: Simulator, media_server: AudioSocketServer
) -> None:
    caller, device = await _caller(ari, simulator, 500)
    status, spy = await ari.call(
        "POST",
        f"/channels/{caller}/snoop",
        app=APP,
        appArgs="supervisor",
        spy="in",
        whisper="out",
        snoopId="spy1",
    )
    assert status == 200 and spy["name"].startswith(f"Snoop/{caller}-")
    start = await ari.wait_event("StasisStart", lambda e: e["channel"]["id"] == "spy1")
    assert start["args"] == ["supervisor"]
    await ari.call(
        "POST",
        "/channels/externalMedia",
        app=APP,
        channelId="sup",
        format="slin16",
        external_host=f"127.0.0.1:{media_server.port}",
        encapsulation="audiosocket",
        transport="tcp",
        data=str(uuid.uuid4()),
    )
    await ari.call("POST", "/bridges", type="mixing", bridgeId="listen")
    await ari.call("POST", "/bridges/listen/addChannel", channel="spy1,sup")
    conn = media_server.connections[0]
    await eventually(lambda: len(conn.audio()) >= 5)  # the supervisor hears the caller
    assert int(np.frombuffer(conn.audio()[-1], dtype="<i2")[9]) == 500
    assert conn.writer is not None
    for _ in range(5):
        conn.writer.write(frame(0x12, constant(-700)))  # and whispers to the caller
    await eventually(lambda: any(int(np.frombuffer(h, "<i2")[9]) == -700 for h in device.heard))
    assert (await ari.call("POST", f"/channels/{caller}/snoop", app=APP))[0] == 400
    await ari.call("DELETE", f"/channels/{caller}")
    gone = await ari.wait_event("ChannelDestroyed", lambda e: e["channel"]["id"] == "spy1")
    assert gone["cause"] == 16


async def test_queue_caller_hears_music_until_a_member_answers(
    make_sim_settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "extensions.conf").write_text(
        "[in]\nexten => 200,1,Answer()\n same => n,Queue(sales,t,,,10)\n same => n,Hangup()\n"
    )
    (tmp_path / "queues.conf").write_text(
        "[sales]\nstrategy = ringall\ntimeout = 5\nmember => PJSIP/agent1,0,Agent\n"
    )
    sim = await start_simulator(
        make_sim_settings(
            dialplan_file=tmp_path / "extensions.conf", queues_file=tmp_path / "queues.conf"
        )
    )
    agent = Device(level=2500)

    async def member(dialed: Line) -> None:
        dialed.attach(agent, agent, agent)
        await dialed.ring()
        await asyncio.sleep(0.5)
        await dialed.answer()

    sim.set_dial_handler(member)
    try:
        caller = Device(level=0)
        line = sim.inbound_call("PJSIP/gateway-fxo-1", context="in", extension="200")
        line.attach(caller, caller, caller)
        await eventually(lambda: any(int(np.frombuffer(h, "<i2")[3]) == 2500 for h in caller.heard))
        first_agent = next(
            i for i, h in enumerate(caller.heard) if int(np.frombuffer(h, "<i2")[3]) == 2500
        )
        music = caller.heard[:first_agent]
        assert len(music) >= 15  # about half a second of music on hold before the answer
        assert len({h for h in music}) > 5  # music, not silence
        await line.hangup()
        await asyncio.wait_for(line.wait_ended(), 5)
    finally:
        await sim.close()
