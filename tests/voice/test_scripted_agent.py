"""The scripted agent's dialogue logic and script validation, with a bag-of-words stand-in for
MiniLM (the real model is exercised in test_engines.py)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from operadora.voice.agent.script import AgentScript, load_script
from operadora.voice.agent.scripted import ScriptedAgent
from operadora.voice.engines import AgentAction, AgentOutput, AgentText
from operadora.voice.errors import ProviderError

pytestmark = pytest.mark.unit


class BagOfWords:
    """Unit vectors over the words seen so far, one dimension each (no hash collisions, so
    no word ever matches a different one): equal words, high cosine."""

    def __init__(self) -> None:
        self.encoded: list[str] = []
        self.vocabulary: dict[str, int] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += texts
        out = np.zeros((len(texts), 64), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                index = self.vocabulary.setdefault(word, len(self.vocabulary))
                out[row, index] += 1
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out


SCRIPT = {
    "name": "Test",
    "greeting": "Hello.",
    "fallback": "Sorry?",
    "fallback_limit": 2,
    "fallback_action": {"action": "queue", "target": "support-queue"},
    "fallback_action_answer": "Let me get someone.",
    "intents": [
        {
            "name": "sales",
            "examples": ["sales please"],
            "answer": "Sales.",
            "action": {"action": "transfer", "target": "201", "params": {"department": "sales"}},
        },
        {
            "name": "callback",
            "examples": ["call me back"],
            "answer": "Will do.",
            "action": {"action": "callback"},
        },
        {
            "name": "hours",
            "examples": ["opening hours"],
            "keywords": ["open"],
            "answer": "Nine to five.",
        },
    ],
    "dtmf": {"1": "sales"},
}


def agent(threshold: float = 0.6) -> ScriptedAgent:
    return ScriptedAgent(AgentScript.model_validate(SCRIPT), BagOfWords(), threshold)  # type: ignore[arg-type]


async def outputs(stream: object) -> list[AgentOutput]:
    return [o async for o in stream]  # type: ignore[attr-defined]


async def test_intent_answer_and_action() -> None:
    conversation = agent().conversation("c")
    assert conversation.greeting() == "Hello."
    out = await outputs(conversation.reply("sales please"))
    assert out == [
        AgentText("Sales."),
        AgentAction(
            "transfer", "201", {"department": "sales", "intent": "sales", "request": "sales please"}
        ),
    ]


async def test_callback_carries_what_the_caller_asked() -> None:
    out = await outputs(agent().conversation("c").reply("call me back"))
    assert out[1] == AgentAction("callback", "", {"intent": "callback", "request": "call me back"})


async def test_keywords_match_without_examples() -> None:
    out = await outputs(agent().conversation("c").reply("are you open"))
    assert out == [AgentText("Nine to five.")]


async def test_fallback_then_fallback_action_after_the_limit() -> None:
    conversation = agent().conversation("c")
    assert await outputs(conversation.reply("blah")) == [AgentText("Sorry?")]
    second = await outputs(conversation.reply("blah blah"))
    assert second == [
        AgentText("Let me get someone."),
        AgentAction("queue", "support-queue", {"intent": "fallback", "request": "blah blah"}),
    ]
    assert await outputs(conversation.reply("meh")) == [AgentText("Sorry?")]


async def test_a_match_resets_the_fallback_count() -> None:
    conversation = agent().conversation("c")
    await outputs(conversation.reply("blah"))
    await outputs(conversation.reply("opening hours"))
    assert await outputs(conversation.reply("blah")) == [AgentText("Sorry?")]


async def test_dtmf_digits_map_to_intents() -> None:
    conversation = agent().conversation("c")
    out = await outputs(conversation.dtmf("1"))
    assert out[0] == AgentText("Sales.") and isinstance(out[1], AgentAction)
    assert await outputs(conversation.dtmf("9")) == []


async def test_memory_records_what_was_heard() -> None:
    conversation = agent().conversation("c")
    await outputs(conversation.reply("sales please"))
    conversation.heard("Sal", interrupted=True)
    assert conversation.history == [("caller", "sales please"), ("agent", "Sal —")]


async def test_prepare_matches_ahead_and_reply_reuses_it() -> None:
    encoder = BagOfWords()
    scripted = ScriptedAgent(AgentScript.model_validate(SCRIPT), encoder, 0.6)  # type: ignore[arg-type]
    conversation = scripted.conversation("c")
    before = len(encoder.encoded)
    await conversation.prepare("sales please")
    out = await outputs(conversation.reply("sales please"))
    assert out[0] == AgentText("Sales.")
    assert encoder.encoded[before:] == ["sales please"]  # encoded once


def test_script_validation() -> None:
    bad = dict(SCRIPT, dtmf={"5": "nope"})
    with pytest.raises(ValueError, match="unknown intent"):
        AgentScript.model_validate(bad)
    no_target = dict(SCRIPT, fallback_action={"action": "transfer"})
    with pytest.raises(ValueError, match="needs a target"):
        AgentScript.model_validate(no_target)


def test_shipped_scripts_load_and_cover_the_call_center(tmp_path: Path) -> None:
    for language in ("en", "es"):
        script = load_script(None, language)
        assert script.language == language
        names = {i.name for i in script.intents}
        assert {"hours", "sales", "support", "billing", "human", "callback", "goodbye"} <= names
        actions = {i.action.action for i in script.intents if i.action}
        assert {"transfer", "attended_transfer", "queue", "callback", "hangup"} <= actions
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ProviderError, match="invalid agent script"):
        load_script(broken)
    with pytest.raises(ProviderError, match="no agent script"):
        load_script(tmp_path / "missing.yaml")
