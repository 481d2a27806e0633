"""The REST API over real HTTP: auth and roles, live calls, history, actions, errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from api.harness import Running
from operadora import events as ev

pytestmark = pytest.mark.integration


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def start_call(bus: ev.EventBus, call_id: str, caller: str = "+34911222333") -> None:
    bus.publish(ev.CallArrivedEvent(call_id, caller_id=caller, did="100", server="asterisk-1"))
    bus.publish(ev.CallAnsweredEvent(call_id))
    bus.publish(ev.MediaConnectedEvent(call_id))
    bus.publish(ev.TurnEvent(call_id, speaker="agent", text="Welcome to Operadora"))


async def live_ids(client: httpx.AsyncClient) -> set[str]:
    return {c["id"] for c in (await client.get("/api/live/calls")).json()}


async def test_health_needs_no_token(running: Running) -> None:
    async with running.client() as c:
        r = await c.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["database"] == "ok"


async def test_everything_else_needs_a_valid_token(running: Running) -> None:
    routes = [route for route in running.app.openapi()["paths"] if route != "/api/health"]
    assert "/api/calls" in routes and "/metrics" in routes
    async with running.client() as anon, running.client("opd_not-a-token") as bad:
        for path in routes:
            url = (
                path.replace("{call_id}", "x")
                .replace("{agent_id}", "a")
                .replace("{recording_id}", "1")
            )
            for client in (anon, bad):
                r = await client.get(url)
                if r.status_code == 405:
                    r = await client.post(url, json={})
                if r.status_code == 405:
                    r = await client.put(url, json={})
                assert r.status_code == 401, (path, r.status_code)
                body = r.json()
                assert body["error_id"] == "unauthorized" and body["message"]
                assert r.headers["www-authenticate"] == "Bearer"


async def test_revoked_tokens_stop_working(running: Running) -> None:
    running.app.state.auth.ttl_s = 0
    token, row = await running.store.tokens.create("viewer", "temp")
    async with running.client(token) as c:
        assert (await c.get("/api/me")).json() == {"name": "temp", "role": "viewer"}
        await running.store.tokens.revoke(row.id)
        assert (await c.get("/api/me")).status_code == 401


async def test_live_call_to_history(running: Running) -> None:
    bus = running.bus
    start_call(bus, "c1")
    bus.publish(ev.SpeakingEvent("c1", speaker="caller", speaking=True))
    async with running.client(running.viewer) as c:
        await eventually(lambda: _has_live(c, "c1", turns=1))
        [call] = (await c.get("/api/live/calls")).json()
        assert (call["caller_id"], call["state"], call["speaking"]) == (
            "+34911222333",
            "connected",
            ["caller"],
        )
        bus.publish(ev.TurnEvent("c1", speaker="caller", text="I need my balance"))
        await eventually(lambda: _has_live(c, "c1", turns=2))
        bus.publish(ev.CallEndedEvent("c1", disposition="resolved", ended_by="caller"))
        await eventually(lambda: _is_gone(c, "c1"))
        await running.recorder.drain()
        page = (await c.get("/api/calls", params={"state": "ended"})).json()
        assert [i["id"] for i in page["items"]] == ["c1"] and page["total"] == 1
        detail = (await c.get("/api/calls/c1")).json()
        assert [t["text"] for t in detail["turns"]] == ["Welcome to Operadora", "I need my balance"]
        assert detail["disposition"] == "resolved"
        missing = await c.get("/api/calls/nope")
        assert missing.status_code == 404 and missing.json()["error_id"] == "call_not_found"


async def _has_live(c: httpx.AsyncClient, call_id: str, turns: int) -> bool:
    calls = {x["id"]: x for x in (await c.get("/api/live/calls")).json()}
    return call_id in calls and len(calls[call_id]["turns"]) == turns


async def _is_gone(c: httpx.AsyncClient, call_id: str) -> bool:
    return call_id not in await live_ids(c)


async def test_viewers_cannot_act_admins_can(running: Running) -> None:
    start_call(running.bus, "c2")
    async with running.client(running.viewer) as viewer, running.client(running.admin) as admin:
        await eventually(lambda: _has_live(viewer, "c2", turns=1))
        for action in ("hangup", "record"):
            r = await viewer.post(f"/api/calls/c2/{action}")
            assert r.status_code == 403 and r.json()["error_id"] == "forbidden"
        assert running.actions.hangups == [] and running.actions.recordings == []
        assert (await viewer.get("/api/audit")).status_code == 403

        r = await admin.post("/api/calls/c2/record", json={"reason": "supervisor"})
        assert r.status_code == 200 and r.json()["recording"] == "c2-0"
        r = await admin.post("/api/calls/c2/hangup")
        assert r.status_code == 200 and running.actions.hangups == ["c2"]
        await eventually(lambda: _is_gone(viewer, "c2"))
        again = await admin.post("/api/calls/c2/hangup")
        assert again.status_code == 404 and again.json()["error_id"] == "call_not_live"
        await running.recorder.drain()
        detail = (await viewer.get("/api/calls/c2")).json()
        assert detail["ended_by"] == "api"
        assert [(r["reason"], r["state"]) for r in detail["recordings"]] == [
            ("supervisor", "finished")
        ]
        trail = (await admin.get("/api/audit")).json()
        assert [(a["actor"], a["action"], a["call_id"]) for a in trail[:2]] == [
            ("ops", "hangup", "c2"),
            ("ops", "record", "c2"),
        ]


async def test_recording_playback_serves_only_the_recordings_folder(running: Running) -> None:
    bus = running.bus
    start_call(bus, "c3")
    folder = running.store.admin.recordings_dir
    (folder / "c3-take.wav").write_bytes(b"RIFF----WAVEfmt ")
    bus.publish(ev.RecordingEvent("c3", name="c3-take", state="finished", reason="api"))
    bus.publish(
        ev.RecordingEvent("c3", name="../../etc/passwd", state="finished", path="/etc/passwd")
    )
    await running.recorder.drain()
    async with running.client(running.viewer) as c:
        recs = (await c.get("/api/calls/c3")).json()["recordings"]
        assert [(r["name"], r["playable"]) for r in recs] == [
            ("c3-take", True),
            ("../../etc/passwd", False),
        ]
        audio = await c.get(f"/api/recordings/{recs[0]['id']}/audio")
        assert audio.status_code == 200 and audio.content.startswith(b"RIFF")
        assert audio.headers["content-type"] == "audio/wav"
        evil = await c.get(f"/api/recordings/{recs[1]['id']}/audio")
        assert evil.status_code == 404 and evil.json()["error_id"] == "recording_file_missing"
        assert (await c.get("/api/recordings/999999")).status_code == 404


async def test_bad_input_gets_a_4xx_with_a_message(running: Running) -> None:
    async with running.client(running.admin) as c:
        for r in (
            await c.get("/api/calls", params={"limit": 0}),
            await c.get("/api/calls", params={"since": "yesterday"}),
            await c.put("/api/agents/a1", json={"status": "asleep"}),
            await c.put(
                "/api/agents/a1", content=b"{not json", headers={"content-type": "application/json"}
            ),
            await c.post("/api/calls/x/record", json={"reason": "", "extra": 1}),
        ):
            assert r.status_code == 422, r.text
            body = r.json()
            assert body["error_id"] == "validation_error" and body["message"]
            assert body["details"]["errors"]
        r = await c.delete("/api/calls")
        assert r.status_code == 405 and r.json()["error_id"] == "method_not_allowed"


async def test_human_agents_and_side_panels(running: Running) -> None:
    async with running.client(running.admin) as admin, running.client(running.viewer) as viewer:
        r = await admin.put(
            "/api/agents/ana", json={"name": "Ana", "extension": "201", "status": "available"}
        )
        assert r.status_code == 200 and r.json()["status"] == "available"
        assert (await viewer.put("/api/agents/ana", json={"status": "busy"})).status_code == 403
        agents = (await viewer.get("/api/agents")).json()
        assert [(a["id"], a["status"]) for a in agents] == [("ana", "available")]
        running.bus.publish(
            ev.ActionRequestedEvent("cb1", action="callback", params={"number": "+1555"})
        )
        await running.recorder.drain()
        assert [c["number"] for c in (await viewer.get("/api/callbacks")).json()] == ["+1555"]
        assert (await viewer.get("/api/conferences")).json() == []
        assert (await viewer.get("/api/transfers")).json() == []


async def test_live_stream_sends_a_snapshot_then_events(running: Running) -> None:
    start_call(running.bus, "s1")
    async with running.client(running.viewer) as c:
        await eventually(lambda: _has_live(c, "s1", turns=1))
        async with c.stream("GET", "/api/live/stream") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.aiter_lines()
            kind, data = await _next_event(lines)
            assert kind == "snapshot" and [x["id"] for x in data["calls"]] == ["s1"]
            running.bus.publish(
                ev.TransferEvent(
                    "s1", transfer_id="t", kind="queue", target="support", state="queued"
                )
            )
            kind, data = await _next_event(lines)
            assert kind == "TransferEvent" and data["kind"] == "queue"


async def _next_event(lines: Any) -> tuple[str, dict[str, Any]]:
    kind = ""
    async for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            return kind, json.loads(line[6:])
    raise AssertionError("stream ended")


async def test_metrics(running: Running) -> None:
    async with running.client(running.viewer) as c:
        before = _sample((await c.get("/metrics")).text, 'operadora_calls_total{outcome="spam"}')
        running.bus.publish(ev.CallArrivedEvent("m1", caller_id="+1"))
        running.bus.publish(
            ev.TurnEvent(
                "m1",
                speaker="agent",
                text="hi",
                latency_ms=450.0,
                timings={"stt_ms": 100.0, "tts_s": 0.05},
            )
        )
        running.bus.publish(ev.CallEndedEvent("m1", disposition="spam"))
        await asyncio.sleep(0.1)
        text = (await c.get("/metrics")).text
    assert _sample(text, 'operadora_calls_total{outcome="spam"}') == before + 1
    for name in (
        "operadora_active_calls",
        "operadora_voice_to_voice_seconds_bucket",
        'operadora_stage_seconds_count{stage="stt"}',
        "operadora_ari_errors_total",
        "operadora_audiosocket_errors_total",
        "operadora_transfers_total",
    ):
        assert name in text, name


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_rate_limiter_follows_settings(running: Running) -> None:
    limiter = running.app.state.rate_limiter
    assert (limiter.limit, limiter.window_s) == (5, 60.0)
    assert [await limiter.allow("+1999") for _ in range(6)][-1] is False


async def test_dashboard_is_served_from_the_package(running: Running) -> None:
    async with running.client() as c:
        page = await c.get("/")
        assert page.status_code == 200 and "Live calls" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        js = await c.get("/static/app.js")
        assert js.status_code == 200 and "EventSource" not in js.text  # token stays in headers
        assert (await c.get("/openapi.json")).json()["info"]["title"] == "Operadora"


async def test_hardware_and_capacity(running: Running) -> None:
    async with running.client(running.viewer) as c:
        hw = await c.get("/api/hardware")
        assert hw.status_code == 200
        assert hw.json()["hardware_type"] in ("none", "gateway", "dahdi", "both")
        cap = await c.get("/api/capacity", params={"calls": 40})
        assert cap.status_code == 200
        body = cap.json()
        assert body["plan"]["max_calls"] >= 0 and body["plan"]["bottleneck"]
        assert body["recommendation"]["calls"] == 40
        assert (await c.get("/api/capacity", params={"calls": 0})).status_code == 422


async def test_shutdown_ends_open_event_streams(running: Running) -> None:
    import uvicorn

    from operadora.api.app import ApiServer
    from support import free_port

    port = free_port()
    # no graceful timeout: without closing the streams, this server would wait forever
    server = ApiServer(
        uvicorn.Config(
            running.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _true(server.started))
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        timeout=None,
        headers={"Authorization": f"Bearer {running.viewer}"},
    ) as c:
        async with c.stream("GET", "/api/live/stream") as r:
            lines = r.aiter_lines()
            assert (await _next_event(lines))[0] == "snapshot"
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            assert [line async for line in lines if line] == []  # the stream ended cleanly


async def _true(value: bool) -> bool:
    return value


async def test_a_revoked_token_loses_its_event_stream(running: Running) -> None:
    running.app.state.auth.ttl_s = 0
    running.app.state.heartbeat_s = 0.05
    token, row = await running.store.tokens.create("viewer", "leaving")
    async with running.client(token) as c, c.stream("GET", "/api/live/stream") as r:
        lines = r.aiter_lines()
        assert (await _next_event(lines))[0] == "snapshot"
        await running.store.tokens.revoke(row.id)
        rest = await asyncio.wait_for(_rest(lines), 10)  # ends by itself
        assert all(line in ("", ": keep-alive") for line in rest)


async def _rest(lines: Any) -> list[str]:
    return [line async for line in lines]
