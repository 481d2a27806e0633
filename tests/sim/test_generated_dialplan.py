"""The configuration ``operadora asterisk-config`` renders runs in the PBX simulator: its
``extensions.conf`` and ``queues.conf`` are loaded as they are, and each route of the
``call-center`` context does what it does on a real Asterisk 22."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from operadora.cli import app
from operadora.config import SimSettings
from operadora.sim.lines import Line
from operadora.sim.server import Simulator, start_simulator

pytestmark = pytest.mark.integration

USER, PASSWORD = "callcenter-ai", "generated-dialplan-test"
Event = dict[str, Any]


class AudioSocketServer:
    """A listening AudioSocket server: records the frames each connection sends."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.connected = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connected.set()
        try:
            while True:
                kind, length = struct.unpack("!BH", await reader.readexactly(3))
                self.frames.append((kind, await reader.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class Phone:
    """A silent telephone: 8 kHz source and sink."""

    sample_rate = 8000

    def __init__(self) -> None:
        self.heard = 0

    def next_frame(self) -> bytes | None:
        return bytes(320)

    def hear(self, pcm: bytes) -> None:
        self.heard += 1


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What ``operadora asterisk-config --out DIR`` writes, with one queue member."""
    for key in list(os.environ):
        if key.startswith("OPERADORA_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPERADORA_DIALPLAN__QUEUE_MEMBERS", '["PJSIP/agent1"]')
    out = tmp_path / "asterisk"
    result = CliRunner().invoke(app, ["asterisk-config", "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert "member=PJSIP/agent1" in (out / "queues.conf").read_text(encoding="utf-8")
    return out


@pytest.fixture
async def media() -> AsyncIterator[AudioSocketServer]:
    server = AudioSocketServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def sim(generated: Path, media: AudioSocketServer) -> AsyncIterator[Simulator]:
    settings = SimSettings(
        port=0,
        username=USER,
        password=SecretStr(PASSWORD),
        dialplan_file=generated / "extensions.conf",
        queues_file=generated / "queues.conf",
        globals={"OPERADORA_MEDIA": f"127.0.0.1:{media.port}"},
    )
    simulator = await start_simulator(settings)
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
def events(sim: Simulator) -> list[Event]:
    seen: list[Event] = []
    sim.pbx.hub.listeners.append(seen.append)
    return seen


@pytest.fixture
async def ari_app(sim: Simulator) -> AsyncIterator[list[Event]]:
    """Operadora's ARI application ``callcenter-ai`` connected: the events it receives."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    received: list[Event] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        ws = await session.ws_connect(f"{sim.ari_url}/events?app=callcenter-ai")

        async def read() -> None:
            async for message in ws:
                received.append(json.loads(message.data))

        reader = asyncio.create_task(read())
        try:
            yield received
        finally:
            await ws.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def wait_for(
    events: list[Event], kind: str, match: Callable[[Event], bool] = lambda e: True
) -> Event:
    for _ in range(500):
        for event in events:
            if event["type"] == kind and match(event):
                return event
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} event; saw {[e['type'] for e in events]}")


def steps(events: list[Event], channel_id: str) -> list[tuple[str, str]]:
    return [
        (e["dialplan_app"], e["dialplan_app_data"])
        for e in events
        if e["type"] == "ChannelDialplan" and e["channel"]["id"] == channel_id
    ]


async def test_the_ai_route_enters_stasis_with_its_arguments(
    sim: Simulator, events: list[Event], ari_app: list[Event]
) -> None:
    phone = Phone()
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="110", caller_id="Bob <5552000>")
    line.attach(phone, phone)
    start = await wait_for(ari_app, "StasisStart")
    assert start["application"] == "callcenter-ai"
    assert start["args"] == ["inbound", "110"]
    assert start["channel"]["id"] == line.channel_id
    ran = steps(events, line.channel_id)
    assert ran[0] == ("NoOp", f"Operadora AI call {line.name} from 5552000")
    # ExecIf's condition held for a PJSIP channel: its Set ran, with the expression evaluated
    assert ran[1] == ("ExecIf", "1?Set(PJSIP_TRANSFER_HANDLING()=ari-only)")
    assert ran[2] == ("Set", "PJSIP_TRANSFER_HANDLING()=ari-only")
    assert ran[3] == ("Stasis", "callcenter-ai,inbound,110")
    # ari-only transfer handling is in force: the phone's REFER reaches the app, Asterisk
    # does not transfer by itself
    await line.refer("500")
    transfer = await wait_for(events, "ChannelTransfer")
    assert transfer["refer_to"]["requested_destination"]["destination"] == "500"
    assert not any(e["type"] == "BridgeBlindTransfer" for e in events)
    await line.hangup()
    await asyncio.wait_for(line.wait_ended(), 5)


async def test_the_app_sends_the_call_back_to_the_dialplan(
    sim: Simulator, events: list[Event], ari_app: list[Event]
) -> None:
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="110")
    await wait_for(ari_app, "StasisStart")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        url = f"{sim.ari_url}/channels/{line.channel_id}/continue"
        async with session.post(url) as response:
            assert response.status == 204
    await asyncio.wait_for(line.wait_ended(), 5)
    assert steps(events, line.channel_id)[-2:] == [
        ("NoOp", "Left Stasis: STASISSTATUS=SUCCESS"),
        ("Hangup", ""),
    ]
    assert line.hangup_cause == 16


async def test_the_s_extension_goes_to_the_ai_route(
    sim: Simulator, events: list[Event], ari_app: list[Event]
) -> None:
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="s")
    start = await wait_for(events, "StasisStart")
    assert start["args"] == ["inbound", "110"]
    assert steps(events, line.channel_id)[0] == ("Goto", "110,1")
    await line.hangup()


async def test_the_ai_route_without_the_app_continues_and_hangs_up(
    sim: Simulator, events: list[Event]
) -> None:
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="110")
    await asyncio.wait_for(line.wait_ended(), 5)
    ran = [app for app, _ in steps(events, line.channel_id)]
    assert ran == ["NoOp", "ExecIf", "Set", "Stasis", "NoOp", "Hangup"]
    assert steps(events, line.channel_id)[4] == ("NoOp", "Left Stasis: STASISSTATUS=FAILED")
    assert line.hangup_cause == 16


async def test_the_direct_audiosocket_route_connects_to_the_media_server(
    sim: Simulator, events: list[Event], media: AudioSocketServer
) -> None:
    phone = Phone()
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="100")
    line.attach(phone, phone)
    await asyncio.wait_for(media.connected.wait(), 5)
    await wait_for(events, "ChannelVarset", lambda e: e["variable"] == "OPERADORA_UUID")
    for _ in range(100):
        if len(media.frames) >= 5:
            break
        await asyncio.sleep(0.02)
    kind, payload = media.frames[0]
    assert kind == 0x01  # the first frame names the call
    call_uuid = next(e["value"] for e in events if e.get("variable") == "OPERADORA_UUID")
    assert uuid.UUID(bytes=payload) == uuid.UUID(call_uuid)
    assert any(k == 0x10 and len(p) == 320 for k, p in media.frames[1:])  # 8 kHz audio flows
    assert line.state == "Up"
    assert media.writer is not None
    media.writer.write(b"\x00\x00\x00")  # the server hangs up: the dialplan goes on
    await asyncio.wait_for(line.wait_ended(), 5)
    assert [app for app, _ in steps(events, line.channel_id)][-1] == "Hangup"
    assert line.hangup_cause == 16


async def test_the_ivr_sends_a_digit_to_its_target(
    sim: Simulator, events: list[Event], ari_app: list[Event]
) -> None:
    phone = Phone()
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="300")
    line.attach(phone, phone)
    await wait_for(events, "ChannelDialplan", lambda e: e["dialplan_app"] == "Background")
    await line.send_dtmf("2")  # the 25 s menu prompt is still playing
    start = await wait_for(events, "StasisStart")
    assert start["args"] == ["inbound", "110"]
    ran = steps(events, line.channel_id)
    assert ran[:4] == [
        ("NoOp", "IVR"),
        ("Answer", ""),
        ("Goto", "ivr-menu,s,1"),
        ("Background", "basic-pbx-ivr-main"),
    ]
    assert ran[4] == ("Goto", "call-center,110,1")  # the digit cut the prompt: no WaitExten
    digit = await wait_for(events, "ChannelDtmfReceived")
    assert digit["digit"] == "2"
    await line.hangup()


async def test_an_invalid_ivr_digit_replays_the_menu(sim: Simulator, events: list[Event]) -> None:
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="300")
    await wait_for(events, "ChannelDialplan", lambda e: e["dialplan_app"] == "Background")
    await line.send_dtmf("9")
    await wait_for(events, "ChannelDialplan", lambda e: e["dialplan_app_data"] == "invalid")
    invalid = await wait_for(events, "ChannelVarset", lambda e: e["variable"] == "INVALID_EXTEN")
    assert invalid["value"] == "9"
    await line.send_dtmf("3")  # pressed during "invalid": not a menu choice, ignored
    await wait_for(events, "ChannelDialplan", lambda e: e["dialplan_app_data"] == "s,1")
    await asyncio.sleep(0.05)
    ran = steps(events, line.channel_id)
    assert ran[4:] == [
        ("Playback", "invalid"),
        ("Goto", "s,1"),
        ("Background", "basic-pbx-ivr-main"),  # the menu again; the "3" went nowhere
    ]
    await line.hangup()


async def test_the_queue_route_reaches_the_queue_and_its_member(
    sim: Simulator, events: list[Event]
) -> None:
    agent = Phone()
    rung: list[str] = []

    async def member(dialed: Line) -> None:
        rung.append(dialed.endpoint)
        dialed.attach(agent, agent)
        await dialed.ring()
        await asyncio.sleep(0.2)
        await dialed.answer()

    sim.set_dial_handler(member)
    phone = Phone()
    line = sim.inbound_call("PJSIP/gateway-fxo-1", extension="200")
    line.attach(phone, phone)
    await wait_for(events, "Dial", lambda e: e["dialstatus"] == "ANSWER")
    assert ("Queue", "support-queue,t,,,120") in steps(events, line.channel_id)
    assert rung == ["PJSIP/agent1"]
    entered = await wait_for(
        events, "ChannelEnteredBridge", lambda e: e["channel"]["id"] == line.channel_id
    )
    assert entered["bridge"]["bridge_class"] == "basic"
    await wait_for(events, "ChannelEnteredBridge", lambda e: "agent1" in e["channel"]["name"])
    await line.hangup()
    await asyncio.wait_for(line.wait_ended(), 5)


async def test_a_callback_without_a_route_is_congested(
    sim: Simulator, events: list[Event], ari_app: list[Event]
) -> None:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        params = {"endpoint": "Local/5551234@outbound-callback", "app": "callcenter-ai"}
        async with session.post(f"{sim.ari_url}/channels", params=params) as response:
            assert response.status == 200
    busy = await wait_for(events, "ChannelStateChange", lambda e: e["channel"]["state"] == "Busy")
    assert busy["channel"]["name"].endswith(";2")
    assert [app for app, _ in steps(events, busy["channel"]["id"])] == [
        "NoOp",
        "NoOp",
        "Congestion",
    ]
    for _ in range(80):  # Congestion(5): five seconds of congestion tone, then the hang-up
        if sum(e["type"] == "ChannelDestroyed" for e in events) == 2:
            break
        await asyncio.sleep(0.1)
    causes = {
        e["channel"]["name"][-2:]: e["cause"] for e in events if e["type"] == "ChannelDestroyed"
    }
    assert causes == {";2": 34, ";1": 34}
    assert not any(e["type"] == "StasisStart" for e in ari_app)  # never answered
