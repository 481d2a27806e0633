"""``operadora demo`` end to end: real engine, real AudioSocket TCP, real espeak-ng callers,
Whisper and the scripted agent, the store and the dashboard API on loopback."""

from __future__ import annotations

import aiohttp
import pytest
from rich.console import Console

from operadora import events as ev
from operadora.config import load_settings
from operadora.demo import Demo, DemoError, DemoOptions, DemoResult, pick_personas
from operadora.sim.callers.scenario import shipped_personas
from support import free_port

pytestmark = pytest.mark.integration


async def test_two_calls_end_with_the_outcomes_their_personas_expect() -> None:
    settings = load_settings(
        api={"host": "127.0.0.1", "port": free_port()}, sim={"port": free_port()}
    )
    options = DemoOptions(
        calls=2,
        language="en",
        personas=("opening-hours-en", "sales-en"),
        live=False,
        rate_per_s=2.0,
        call_timeout_s=60,
    )
    seen: dict[str, object] = {}

    async def when_done(result: DemoResult) -> None:
        assert result.dashboard_url and result.admin_token
        headers = {"Authorization": f"Bearer {result.admin_token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.get(result.dashboard_url) as resp:
                seen["dashboard"] = resp.status
            async with http.get(result.dashboard_url + "api/me") as resp:
                seen["me"] = (resp.status, (await resp.json()).get("role"))
            async with http.get(result.dashboard_url + "api/calls") as resp:
                seen["calls"] = (resp.status, await resp.text())

    console = Console(width=160, record=True)
    result = await Demo(settings, options, console, when_done=when_done).run()

    hours, sales = result.calls
    assert hours.verdict is not None and sales.verdict is not None
    assert (hours.verdict.outcome, hours.verdict.ok) == ("resolved", True), hours.transcript
    assert (sales.verdict.outcome, sales.verdict.target, sales.verdict.ok) == (
        "transferred",
        "201",
        True,
    ), sales.transcript
    assert result.passed == 2
    for call in result.calls:
        agent_lines = [text for speaker, text in call.transcript if speaker == "agent"]
        assert agent_lines and "Acme" in agent_lines[0], call.transcript  # the script's greeting
        assert any(speaker == "caller" for speaker, _ in call.transcript), call.transcript
        assert call.verdict is not None and call.verdict.v2v_ms, call.transcript
        assert call.report is not None and call.report.error is None
        arrived = next(e for e in call.events if isinstance(e, ev.CallArrivedEvent))
        assert arrived.did == call.persona.did  # dialled into the DID route of the demo
        assert arrived.caller_id == call.persona.caller_id.number
    assert any(c.verdict.response_ms for c in result.calls if c.verdict)  # heard by the callers
    said_goodbye = any("Goodbye" in text for s, text in hours.transcript if s == "agent")
    assert hours.report is not None
    assert hours.report.ended_by == ("far_end" if said_goodbye else "caller"), hours.transcript
    assert sales.report is not None and sales.report.ended_by == "caller"
    assert any("open" in text.lower() for s, text in hours.transcript if s == "agent")
    assert seen["dashboard"] == 200
    assert seen["me"] == (200, "admin")
    status, calls_json = seen["calls"]  # type: ignore[misc]
    assert status == 200
    assert hours.call_id in calls_json and sales.call_id in calls_json
    shown = console.export_text()
    assert "2/2 calls ended as their persona expected" in shown
    assert "voice-to-voice" in shown
    assert "ARI password" in shown and "admin token" in shown


async def test_direct_audiosocket_route_without_the_simulator() -> None:
    settings = load_settings(api={"host": "127.0.0.1", "port": free_port()})
    options = DemoOptions(
        calls=1,
        language="en",
        personas=("callback-en",),
        live=False,
        route="direct",
        dashboard=False,
        call_timeout_s=60,
    )
    console = Console(width=160, record=True)
    demo = Demo(settings, options, console)
    result = await demo.run()
    (call,) = result.calls
    assert demo.simulator is None and result.dashboard_url is None
    assert call.verdict is not None
    assert (call.verdict.outcome, call.verdict.ok) == ("callback", True), call.transcript
    assert "direct AudioSocket route" in console.export_text()


def test_personas_are_picked_by_language_and_cycled() -> None:
    personas = shipped_personas()
    picked = pick_personas(personas, DemoOptions(calls=7, language="es"), ["es"])
    assert len(picked) == 7 and {p.language for p in picked} == {"es"}
    assert picked[0].name == "sales-es" and picked[5] == picked[0]
    both = pick_personas(personas, DemoOptions(calls=5), ["en", "es"])
    assert [p.name for p in both] == [
        "opening-hours-en",
        "sales-es",
        "human-en",
        "callback-es",
        "hangup-mid-sentence-en",
    ]
    only = pick_personas(personas, DemoOptions(calls=3, personas=("callback-en",)), ["en"])
    assert [p.name for p in only] == ["callback-en"] * 3
    with pytest.raises(DemoError, match="unknown persona"):
        pick_personas(personas, DemoOptions(personas=("nobody",)), ["en"])
    with pytest.raises(DemoError, match="no persona speaks"):
        pick_personas(personas, DemoOptions(personas=("sales-es",)), ["en"])


async def test_a_call_survives_websocket_drops_and_duplicated_events() -> None:
    settings = load_settings(
        api={"host": "127.0.0.1", "port": free_port()}, sim={"port": free_port()}
    )
    options = DemoOptions(
        calls=1,
        language="en",
        personas=("sales-en",),
        live=False,
        dashboard=False,
        chaos=True,
        call_timeout_s=60,
    )
    console = Console(width=160, record=True)
    demo = Demo(settings, options, console)
    result = await demo.run()
    (call,) = result.calls
    assert demo.faults.counters.ws_drops >= 1
    assert call.report is not None and call.report.error is None
    assert call.report.ended_by == "caller"  # the script ran to its end on a live call
    agent_turns = [e for e in call.events if isinstance(e, ev.TurnEvent) and e.speaker == "agent"]
    assert len(agent_turns) >= 2, call.transcript  # the greeting, and a reply after the drop
    ended = [e for e in call.events if isinstance(e, ev.CallEndedEvent)]
    assert len(ended) == 1  # closed out once, drops and duplicates notwithstanding
    assert any("WebSocket was dropped" in line.plain for line in demo.board.feed)
    assert "WebSocket drops" in console.export_text()
