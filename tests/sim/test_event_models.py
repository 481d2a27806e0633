"""Every event and REST body the simulator produces in a busy scenario matches the models of
Asterisk 22.10.1's Swagger documents: no unknown field, every required field, right types."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from operadora.sim.server import Simulator

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2].parent / "shared" / "asterisk" / "ari-api-docs"
APP = "callcenter-ai"
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "Date": (str,),
    "int": (int,),
    "long": (int,),
    "double": (int, float),
    "boolean": (bool,),
    "object": (dict,),
}


TRACES = DOCS.parent / "ari-traces"


def models() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for doc in DOCS.glob("*.json"):
        out.update(json.loads(doc.read_text()).get("models", {}))
    # Where the real Asterisk sends more than its documents say, the trace is right:
    # rtp_statistics carries the MES fields too (trace e1).
    for line in (TRACES / "e1_sip_call_into_stasis.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["kind"] == "response" and row["path"].endswith("/rtp_statistics"):
            props = out["RTPstat"]["properties"]
            for key in row["body"]:
                props.setdefault(key, {})
    return out


def check(value: Any, type_name: str, where: str, all_models: dict[str, Any]) -> list[str]:
    if type_name.startswith("List[") and type_name.endswith("]"):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        inner = type_name[5:-1]
        return [
            p for i, v in enumerate(value) for p in check(v, inner, f"{where}[{i}]", all_models)
        ]
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (
            type_name in ("int", "long") and isinstance(value, bool)
        )
        return [] if ok else [f"{where}: {value!r} is not {type_name}"]
    model = all_models.get(type_name)
    if model is None:
        return []  # free-form types (e.g. variables containers)
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} object"]
    props = dict(model["properties"])
    if type_name in all_models.get("Event", {}).get("subTypes", []):
        props.update(all_models["Event"]["properties"])
        props.update(all_models["Message"]["properties"])
    problems = [f"{where}: unknown field {k!r} for {type_name}" for k in value if k not in props]
    problems += [
        f"{where}: missing required {k!r} of {type_name}"
        for k, spec in props.items()
        if spec.get("required") and k not in value
    ]
    for key, item in value.items():
        if key in props and "type" in props[key]:
            problems += check(item, props[key]["type"], f"{where}.{key}", all_models)
    return problems


def auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_events_and_bodies_follow_the_swagger_models(
    simulator: Simulator, sim_credentials: tuple[str, str]
) -> None:
    all_models = models()
    events: list[dict[str, Any]] = []
    bodies: list[tuple[str, Any]] = []
    media_frames: list[bytes] = []

    async def media(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        media_frames.append(await reader.read(19))
        await reader.read()

    server = await asyncio.start_server(media, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession(headers=auth(*sim_credentials)) as session:
        ws = await session.ws_connect(f"{simulator.ari_url}/events?app={APP}&subscribeAll=true")

        async def read() -> None:
            async for msg in ws:
                events.append(json.loads(msg.data))

        reader = asyncio.create_task(read())

        async def call(method: str, path: str, model: str | None = None, **params: Any) -> Any:
            query = {k: str(v) for k, v in params.items()}
            async with session.request(method, simulator.ari_url + path, params=query) as resp:
                assert resp.status < 300, (method, path, resp.status, await resp.text())
                body = await resp.json() if resp.status != 204 else None
            if model is not None:
                bodies.append((model, body))
            return body

        async def wait_for(kind: str) -> None:
            for _ in range(300):
                if any(e["type"] == kind for e in events):
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"no {kind}")

        await call(
            "POST",
            "/channels",
            "Channel",
            endpoint="Local/s@stasis-test",
            app=APP,
            channelId="m-a",
            callerId="Ann <100>",
        )
        await call(
            "POST", "/channels", "Channel", endpoint="Local/s@stasis-test", app=APP, channelId="m-b"
        )
        phone = simulator.inbound_call("PJSIP/gateway-fxo-1", extension="110", caller_id="<555>")
        await wait_for("StasisStart")
        await asyncio.sleep(0.2)
        await call("POST", f"/channels/{phone.channel_id}/answer")
        await call(
            "POST",
            "/channels/externalMedia",
            "Channel",
            app=APP,
            channelId="m-ai",
            external_host=f"127.0.0.1:{port}",
            encapsulation="audiosocket",
            transport="tcp",
            format="slin16",
            data=str(uuid.uuid4()),
        )
        await call("POST", "/bridges", "Bridge", type="mixing", bridgeId="m-br", name="b")
        await call("POST", "/bridges/m-br/addChannel", channel=f"m-a,m-b,{phone.channel_id}")
        await call("GET", "/bridges", "List[Bridge]")
        await call("GET", "/channels", "List[Channel]")
        await call(
            "POST", "/channels/m-a/play", "Playback", media="sound:hello-world", playbackId="m-pb"
        )
        await call("GET", "/playbacks/m-pb", "Playback")
        await call("POST", "/channels/m-b/dtmf", dtmf="12", duration=50)
        await wait_for("ChannelDtmfReceived")
        await call("POST", "/channels/m-b/hold")
        await call("DELETE", "/channels/m-b/hold")
        await call("POST", "/channels/m-b/variable", variable="X", value="1")
        await call("GET", "/channels/m-b/variable", "Variable", variable="X")
        await call("POST", "/channels/m-b/move", app="nobody-here")
        await call("POST", "/events/user/Hello", application=APP, source="channel:m-b")
        await call("POST", "/channels/m-b/record", "LiveRecording", name="m-rec", format="wav")
        await call("POST", "/bridges/m-br/play", "Playback", media="sound:beep")
        await phone.refer("500")
        await wait_for("BridgeBlindTransfer")
        await call("POST", "/recordings/live/m-rec/stop")
        await wait_for("RecordingFinished")
        await call("GET", "/recordings/stored", "List[StoredRecording]")
        await call("GET", "/endpoints", "List[Endpoint]")
        await call("GET", "/asterisk/info", "AsteriskInfo")
        await call("GET", "/applications", "List[Application]")
        await call("GET", f"/channels/{phone.channel_id}/rtp_statistics", "RTPstat")
        await call("DELETE", "/playbacks/m-pb")
        await call("DELETE", "/bridges/m-br")
        for cid in ("m-a", "m-b", "m-ai", phone.channel_id):
            await call("DELETE", f"/channels/{cid}")
        await wait_for("ChannelDestroyed")
        await asyncio.sleep(0.3)
        await ws.close()
        reader.cancel()
    server.close()

    kinds = {e["type"] for e in events}
    assert {
        "ChannelCreated",
        "ChannelDestroyed",
        "ChannelDialplan",
        "ChannelVarset",
        "StasisStart",
        "StasisEnd",
        "ChannelStateChange",
        "Dial",
        "ChannelCallerId",
        "ChannelConnectedLine",
        "BridgeCreated",
        "BridgeDestroyed",
        "ChannelEnteredBridge",
        "ChannelLeftBridge",
        "PlaybackStarted",
        "PlaybackFinished",
        "ChannelDtmfReceived",
        "ChannelHold",
        "ChannelUnhold",
        "ApplicationMoveFailed",
        "ChannelUserevent",
        "RecordingStarted",
        "RecordingFinished",
        "BridgeBlindTransfer",
        "ChannelHangupRequest",
    } <= kinds
    problems: list[str] = []
    for event in events:
        problems += check(event, event["type"], event["type"], all_models)
    for model, body in bodies:
        problems += check(body, model, f"body {model}", all_models)
    assert not problems, "\n".join(sorted(set(problems))[:30])
    assert media_frames and media_frames[0][:3] == b"\x01\x00\x10"


def test_the_model_check_finds_problems() -> None:
    all_models = models()
    good = {"id": "p", "media_uri": "sound:x", "target_uri": "channel:c", "state": "queued"}
    assert check(good, "Playback", "pb", all_models) == []
    assert check({**good, "bogus": 1}, "Playback", "pb", all_models) == [
        "pb: unknown field 'bogus' for Playback"
    ]
    assert check({"id": "p"}, "Playback", "pb", all_models)  # required fields missing
    event = {"type": "ChannelDestroyed", "timestamp": "t", "application": "a", "cause": "16"}
    assert any("cause" in p for p in check(event, "ChannelDestroyed", "e", all_models))
