"""Simulated extensions answering (or not) what the real PBX simulator dials."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from operadora.config import SimSettings
from operadora.sim.callers.audio import CallerAudio
from operadora.sim.callers.devices import DEMO_DIALPLAN, call_in, extension_dial_handler
from operadora.sim.callers.extensions import Directory, DirectorySettings, ExtensionBehaviour
from operadora.sim.callers.scenario import parse_persona
from operadora.sim.server import Simulator, start_simulator

pytestmark = pytest.mark.integration


class ToneTTS:
    name = "tone"
    sample_rate = 16000

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        t = np.arange(int(0.3 * 16000)) / 16000
        yield (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


DIRECTORY = Directory(
    DirectorySettings(
        extensions=[
            ExtensionBehaviour(endpoint="PJSIP/201", ring_s=0.2, talk_s=1.0, say="Sales, hello"),
            ExtensionBehaviour(endpoint="PJSIP/202", action="busy", ring_s=0.1),
        ]
    )
)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[tuple[Simulator, list[tuple[str, str]], list[Any]]]:
    shipped = (resources.files("operadora.sim") / "data" / "extensions.conf").read_text("utf-8")
    dialplan = tmp_path / "extensions.conf"
    dialplan.write_text(shipped + DEMO_DIALPLAN, encoding="utf-8")
    settings = SimSettings(port=0, password=SecretStr("devices-test"), dialplan_file=dialplan)
    simulator = await start_simulator(settings)
    decisions: list[tuple[str, str]] = []
    events: list[Any] = []
    simulator.pbx.hub.listeners.append(events.append)
    simulator.set_dial_handler(
        extension_dial_handler(DIRECTORY, ToneTTS(), lambda e, a: decisions.append((e, a)))
    )
    try:
        yield simulator, decisions, events
    finally:
        await simulator.close()


async def test_an_extension_answers_speaks_and_hangs_up(sim: Any) -> None:
    simulator, decisions, events = sim
    caller = CallerAudio(8000)
    line = simulator.inbound_call(caller_id="Ann <100>", extension="201")
    line.attach(caller, caller)
    await asyncio.wait_for(line.wait_ended(), 10)
    assert decisions == [("PJSIP/201", "answer")]
    dials = [e.get("dialstatus") for e in events if e["type"] == "Dial"]
    assert dials[-1] == "ANSWER"
    # the caller heard the extension's greeting through the bridge
    assert caller.tracker.heard_speech
    heard = caller.tracker.take()
    assert heard is not None and 0.2 <= heard.duration_s <= 0.45
    destroyed = [e for e in events if e["type"] == "ChannelDestroyed"]
    assert {e["cause"] for e in destroyed} == {16}


async def test_a_busy_extension_declines(sim: Any) -> None:
    simulator, decisions, events = sim
    line = simulator.inbound_call(caller_id="Ann <100>", extension="202")
    line.attach(CallerAudio(8000), None)
    await asyncio.wait_for(line.wait_ended(), 10)
    assert decisions == [("PJSIP/202", "busy")]
    callee = [
        e for e in events if e["type"] == "ChannelDestroyed" and "PJSIP/202" in e["channel"]["name"]
    ]
    assert callee and callee[0]["cause"] == 17


async def test_call_in_runs_a_persona_on_a_simulator_line(sim: Any) -> None:
    simulator, decisions, events = sim
    persona = parse_persona(
        {
            "name": "ann",
            "caller_id": "Ann <100>",
            "steps": [{"listen": {"silence_ms": 300, "timeout_s": 5}}, {"wait": 5}],
        }
    )
    lines: list[Any] = []
    report = await asyncio.wait_for(
        call_in(simulator, persona, ToneTTS(), extension="201", on_line=lines.append), 10
    )
    assert decisions == [("PJSIP/201", "answer")]
    assert report.ended_by == "far_end"  # Sam hung up after talking; the wait never finished
    assert report.steps_done == 1 and report.listen_timeouts == 0
    assert [t.speaker for t in report.transcript] == ["agent"]
    assert lines and lines[0].ended
    caller = next(e for e in events if e["type"] == "ChannelCreated")["channel"]
    assert caller["caller"] == {"name": "Ann", "number": "100"}


async def test_queue_members_answer_or_not_as_configured(tmp_path: Path) -> None:
    queues = tmp_path / "queues.conf"
    queues.write_text(
        "[support-queue]\nstrategy = ringall\ntimeout = 15\n"
        "member => PJSIP/agent8,0,Busy Bea\nmember => PJSIP/agent9,0,Alex\n",
        encoding="utf-8",
    )
    settings = SimSettings(port=0, password=SecretStr("queue-test"), queues_file=queues)
    simulator = await start_simulator(settings)
    decisions: list[tuple[str, str]] = []
    events: list[Any] = []
    simulator.pbx.hub.listeners.append(events.append)
    directory = Directory(
        DirectorySettings(
            extensions=[
                ExtensionBehaviour(endpoint="PJSIP/agent8", action="busy", ring_s=0.1),
                ExtensionBehaviour(endpoint="PJSIP/agent9", ring_s=0.3, talk_s=0.5, say="Alex"),
            ]
        )
    )
    simulator.set_dial_handler(
        extension_dial_handler(directory, ToneTTS(), lambda e, a: decisions.append((e, a)))
    )
    try:
        caller = CallerAudio(8000)
        line = simulator.inbound_call(caller_id="Ann <100>", extension="200")
        line.attach(caller, caller)
        await asyncio.wait_for(line.wait_ended(), 15)
    finally:
        await simulator.close()
    assert sorted(decisions) == [("PJSIP/agent8", "busy"), ("PJSIP/agent9", "answer")]
    answered = [e for e in events if e["type"] == "Dial" and e.get("dialstatus") == "ANSWER"]
    assert answered and "PJSIP/agent9" in answered[0]["peer"]["name"]
    assert caller.tracker.heard_speech  # Alex spoke to the caller
