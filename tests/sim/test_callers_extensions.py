from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from operadora.sim.callers.audio import CallerAudio
from operadora.sim.callers.extensions import (
    Decision,
    Directory,
    DirectorySettings,
    ExtensionAgent,
    ExtensionBehaviour,
    load_directory,
)
from operadora.sim.callers.scenario import ScenarioError

pytestmark = pytest.mark.unit


def directory() -> Directory:
    return Directory(
        DirectorySettings(
            extensions=[
                ExtensionBehaviour(endpoint="PJSIP/201", action="answer", ring_s=1.5),
                ExtensionBehaviour(endpoint="PJSIP/202", action="busy", ring_s=0.5),
                ExtensionBehaviour(endpoint="PJSIP/203", action="no_answer"),
                ExtensionBehaviour(endpoint="PJSIP/2*", action="answer", ring_s=9),
                ExtensionBehaviour(endpoint="Local/agent1@queue-agents", ring_s=3),
                ExtensionBehaviour(endpoint="Local/agent2@queue-agents", ring_s=6),
                ExtensionBehaviour(endpoint="Local/lazy@queue-agents", action="no_answer"),
            ],
        )
    )


def test_extensions_answer_decline_or_ignore() -> None:
    d = directory()
    assert d.decide("PJSIP/201") == Decision(
        "PJSIP/201", "answer", 1.5, behaviour=d.behaviour("PJSIP/201")
    )
    busy = d.decide("PJSIP/202")
    assert (busy.action, busy.after_s, busy.cause, busy.dial_status) == ("busy", 0.5, 17, "BUSY")
    ignored = d.decide("PJSIP/203", timeout_s=30)
    assert (ignored.action, ignored.after_s, ignored.cause) == ("no_answer", 30, 19)
    assert ignored.dial_status == "NOANSWER"


def test_exact_match_wins_over_pattern_and_unknown_uses_default() -> None:
    d = directory()
    assert d.decide("PJSIP/299").after_s == 9
    assert d.decide("PJSIP/299", timeout_s=5).action == "no_answer"
    assert d.decide("PJSIP/999").action == "no_answer"
    always = Directory(DirectorySettings(default_action="busy"))
    assert always.decide("PJSIP/999").action == "busy"


class FakeChannel:
    def __init__(self) -> None:
        self.ops: list[str] = []
        self.ended = asyncio.Event()

    async def ring(self) -> None:
        self.ops.append("ring")

    async def answer(self) -> None:
        self.ops.append("answer")

    async def hangup(self, cause: int) -> None:
        self.ops.append(f"hangup {cause}")
        self.ended.set()

    async def wait_ended(self) -> None:
        await self.ended.wait()


async def test_agent_answers_then_hangs_up_after_talking() -> None:
    behaviour = ExtensionBehaviour(endpoint="PJSIP/1", ring_s=0.01, talk_s=0.02)
    channel = FakeChannel()
    decision = Directory(DirectorySettings(extensions=[behaviour])).decide("PJSIP/1")
    agent = ExtensionAgent(decision, channel)
    await asyncio.wait_for(agent.run(), 2)
    assert channel.ops == ["ring", "answer", "hangup 16"]
    assert agent.answered


async def test_agent_busy_declines_with_cause_17() -> None:
    behaviour = ExtensionBehaviour(endpoint="PJSIP/1", action="busy", ring_s=0.01)
    channel = FakeChannel()
    d = Directory(DirectorySettings(extensions=[behaviour]))
    await asyncio.wait_for(ExtensionAgent(d.decide("PJSIP/1"), channel).run(), 2)
    assert channel.ops == ["ring", "hangup 17"]


async def test_agent_ignoring_stops_when_the_caller_gives_up() -> None:
    channel = FakeChannel()
    agent = ExtensionAgent(Directory().decide("PJSIP/1"), channel)
    task = asyncio.create_task(agent.run())
    await asyncio.sleep(0.02)
    assert channel.ops == ["ring"]
    channel.ended.set()  # the caller stops ringing
    await asyncio.wait_for(task, 2)
    assert channel.ops == ["ring"]
    assert not agent.answered


async def test_agent_staying_on_the_line_until_the_other_side_hangs_up() -> None:
    behaviour = ExtensionBehaviour(endpoint="PJSIP/1", ring_s=0, talk_s=None)
    channel = FakeChannel()
    d = Directory(DirectorySettings(extensions=[behaviour]))
    task = asyncio.create_task(ExtensionAgent(d.decide("PJSIP/1"), channel).run())
    await asyncio.sleep(0.02)
    assert channel.ops == ["ring", "answer"]
    channel.ended.set()
    await asyncio.wait_for(task, 2)
    assert channel.ops == ["ring", "answer"]


def test_directory_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "who.yaml"
    path.write_text(
        "extensions:\n"
        "  - {endpoint: PJSIP/301, action: busy, ring_s: 0.5}\n"
        "default_action: answer\n",
        encoding="utf-8",
    )
    d = Directory(load_directory(path))
    assert d.decide("PJSIP/301").action == "busy"
    assert d.decide("PJSIP/999").action == "answer"
    path.write_text("extensions: [{endpoint: PJSIP/1, action: maybe}]\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"who\.yaml"):
        load_directory(path)


async def test_a_broken_voice_leaves_a_silent_person_who_still_hangs_up() -> None:
    class BrokenTTS:
        name = "broken"
        sample_rate = 16000

        async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
            raise RuntimeError("no voice")
            yield b""

    behaviour = ExtensionBehaviour(endpoint="PJSIP/1", ring_s=0, talk_s=0.02, say="Hello")
    channel = FakeChannel()
    decision = Directory(DirectorySettings(extensions=[behaviour])).decide("PJSIP/1")
    agent = ExtensionAgent(decision, channel, audio=CallerAudio(8000), tts=BrokenTTS())
    await asyncio.wait_for(agent.run(), 2)
    assert channel.ops == ["ring", "answer", "hangup 16"]
