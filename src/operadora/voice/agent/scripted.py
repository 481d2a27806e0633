"""The embedded agent: a YAML script whose intents are matched by sentence embeddings."""

from __future__ import annotations

import asyncio
import logging
import threading
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from operadora.voice.agent.embeddings import Matrix, MiniLmEncoder
from operadora.voice.agent.script import AgentScript, Intent, ScriptAction
from operadora.voice.engines import AgentAction, AgentOutput, AgentText, CallerInfo

log = logging.getLogger(__name__)

CACHE_SIZE = 16


@dataclass(frozen=True, slots=True)
class IntentMatch:
    intent: Intent | None
    score: float


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class IntentMatcher:
    """Best intent by cosine similarity to its example phrases, or none under the threshold."""

    def __init__(self, script: AgentScript, encoder: MiniLmEncoder, threshold: float) -> None:
        self._script = script
        self._encoder = encoder
        self.threshold = script.threshold if script.threshold is not None else threshold
        owners: list[int] = []
        phrases: list[str] = []
        for index, intent in enumerate(script.intents):
            for example in intent.examples:
                owners.append(index)
                phrases.append(example)
        self._owners = np.asarray(owners)
        self._examples: Matrix = encoder.encode(phrases)
        # the session asks for the speculative transcript's match before the turn ends
        self._cache: dict[str, IntentMatch] = {}
        self._cache_lock = threading.Lock()

    def cached(self, text: str) -> IntentMatch | None:
        """The match already made for this text (by ``prepare``), without waiting for one."""
        return self._cache.get(text)

    def match(self, text: str) -> IntentMatch:
        if not text.strip():
            return IntentMatch(None, 0.0)
        # one lock around lookup and work: a reply asking while the same text is being
        # prepared waits for that result instead of encoding it a second time
        with self._cache_lock:
            cached = self._cache.get(text)
            if cached is not None:
                return cached
            match = self._match(text)
            self._cache[text] = match
            while len(self._cache) > CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            return match

    def _match(self, text: str) -> IntentMatch:
        scores = self._examples @ self._encoder.encode([text])[0]
        per_intent = np.full(len(self._script.intents), -1.0, dtype=np.float32)
        np.maximum.at(per_intent, self._owners, scores)
        plain = f" {_normalise(text)} "
        for index, intent in enumerate(self._script.intents):
            if any(f" {_normalise(k)} " in plain for k in intent.keywords):
                per_intent[index] = max(per_intent[index], 0.9)
        best = int(per_intent.argmax())
        score = float(per_intent[best])
        if score < self.threshold:
            return IntentMatch(None, score)
        return IntentMatch(self._script.intents[best], score)


def _action(action: ScriptAction, caller_text: str, intent: str) -> AgentAction:
    params = dict(action.params)
    params.setdefault("intent", intent)
    params.setdefault("request", caller_text)  # what the caller said, for whoever takes over
    return AgentAction(action.action, action.target, params)


class ScriptedConversation:
    def __init__(
        self, agent: ScriptedAgent, call_id: str, caller: CallerInfo | None = None
    ) -> None:
        self._agent = agent
        self.call_id = call_id
        self.caller = caller or CallerInfo()
        self.history: list[tuple[str, str]] = []
        self._misses = 0
        self.last_match: IntentMatch | None = None

    def greeting(self) -> str | None:
        return self._agent.script.greeting

    async def reply(self, caller_text: str) -> AsyncIterator[AgentOutput]:
        self.history.append(("caller", caller_text))
        matcher = self._agent.matcher
        # prepared while the caller was still in the end-of-turn silence: no thread hop
        match = matcher.cached(caller_text)
        if match is None:
            match = await asyncio.to_thread(matcher.match, caller_text)
        self.last_match = match
        log.info(
            "call %s: intent %s (%.2f)",
            self.call_id,
            match.intent.name if match.intent else "-",
            match.score,
        )
        for out in self._answer(match.intent, caller_text):
            yield out

    async def prepare(self, caller_text: str) -> None:
        """Match a likely transcript ahead of the end of the turn (the result is cached)."""
        await asyncio.to_thread(self._agent.matcher.match, caller_text)

    async def dtmf(self, digit: str) -> AsyncIterator[AgentOutput]:
        name = self._agent.script.dtmf.get(digit)
        if name is None:
            return
        self.history.append(("caller", f"[dtmf {digit}]"))
        for out in self._answer(self._agent.script.intent(name), f"dtmf {digit}"):
            yield out

    def _answer(self, intent: Intent | None, caller_text: str) -> list[AgentOutput]:
        script = self._agent.script
        if intent is not None:
            self._misses = 0
            out: list[AgentOutput] = [AgentText(intent.answer)]
            if intent.action is not None:
                out.append(_action(intent.action, caller_text, intent.name))
            return out
        self._misses += 1
        if self._misses >= script.fallback_limit and script.fallback_action is not None:
            self._misses = 0
            answer = script.fallback_action_answer or script.fallback
            return [AgentText(answer), _action(script.fallback_action, caller_text, "fallback")]
        return [AgentText(script.fallback)]

    def heard(self, spoken: str, interrupted: bool) -> None:
        if spoken:
            self.history.append(("agent", spoken + (" —" if interrupted else "")))


class ScriptedAgent:
    name = "scripted"

    def __init__(self, script: AgentScript, encoder: MiniLmEncoder, threshold: float) -> None:
        self.script = script
        self.matcher = IntentMatcher(script, encoder, threshold)

    def conversation(self, call_id: str, caller: CallerInfo | None = None) -> ScriptedConversation:
        return ScriptedConversation(self, call_id, caller)
