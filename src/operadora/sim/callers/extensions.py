"""Simulated extensions and queue members: people who answer, are busy, or never pick up.

A :class:`Directory` maps dialled endpoints (``PJSIP/201``, ``PJSIP/agent*``; shell-style
patterns allowed) to a behaviour, and decides what a ringing call meets. The simulator's own
``Queue()`` rings the members of a queue; each PJSIP member it dials meets its behaviour here.
:class:`ExtensionAgent` then acts it out on a dialled channel through :class:`DialedChannel`,
the few operations the simulator gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from operadora.sim.callers.audio import CallerAudio, resample
from operadora.sim.callers.scenario import ScenarioError
from operadora.voice.engines import TextToSpeech

log = logging.getLogger(__name__)

Action = Literal["answer", "busy", "no_answer"]

# Q.850 causes and the texts Asterisk reports with them.
CAUSE_NORMAL = (16, "Normal Clearing")
CAUSE_BUSY = (17, "User busy")
CAUSE_NO_ANSWER = (19, "No answer")


class ExtensionBehaviour(BaseModel):
    """How the person behind an endpoint treats a ringing call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str  # exact or fnmatch pattern: "PJSIP/201", "Local/agent*@queue-agents"
    name: str = ""
    action: Action = "answer"
    ring_s: float = Field(2.0, ge=0)  # ringing before answering or declining
    talk_s: float | None = Field(4.0, gt=0)  # then hangs up; None: stays until the other side
    say: str | None = None  # spoken on answering
    language: Literal["en", "es"] = "en"


class DirectorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extensions: list[ExtensionBehaviour] = Field(default_factory=list)
    default_action: Action = "no_answer"


@dataclass(frozen=True, slots=True)
class Decision:
    """What a ringing call meets: ``action`` after ``after_s`` of ringing."""

    endpoint: str
    action: Action
    after_s: float
    cause: int | None = None
    cause_txt: str = ""
    behaviour: ExtensionBehaviour | None = None

    @property
    def dial_status(self) -> str:
        """The DIALSTATUS Asterisk would set."""
        return {"answer": "ANSWER", "busy": "BUSY", "no_answer": "NOANSWER"}[self.action]


def load_directory(path: Path) -> DirectorySettings:
    """A directory from YAML: ``extensions: [{endpoint, action, ring_s, ...}]``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return DirectorySettings.model_validate(data or {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None


class Directory:
    def __init__(self, settings: DirectorySettings | None = None) -> None:
        self.settings = settings or DirectorySettings()

    def behaviour(self, endpoint: str) -> ExtensionBehaviour | None:
        for ext in self.settings.extensions:  # exact matches win over patterns
            if ext.endpoint == endpoint:
                return ext
        for ext in self.settings.extensions:
            if fnmatch.fnmatchcase(endpoint, ext.endpoint):
                return ext
        return None

    def decide(self, endpoint: str, timeout_s: float | None = None) -> Decision:
        """What a call to ``endpoint`` meets, given the caller gives up after ``timeout_s``."""
        ext = self.behaviour(endpoint)
        action = ext.action if ext is not None else self.settings.default_action
        ring_s = ext.ring_s if ext is not None else 0.0
        if action == "answer" and timeout_s is not None and ring_s > timeout_s:
            action = "no_answer"
        if action == "no_answer":
            after = timeout_s if timeout_s is not None else float("inf")
            return Decision(endpoint, "no_answer", after, *CAUSE_NO_ANSWER, behaviour=ext)
        if action == "busy":
            return Decision(endpoint, "busy", ring_s, *CAUSE_BUSY, behaviour=ext)
        return Decision(endpoint, "answer", ring_s, behaviour=ext)


class DialedChannel(Protocol):
    """The operations the simulator offers on a channel it is ringing."""

    async def ring(self) -> None: ...

    async def answer(self) -> None: ...

    async def hangup(self, cause: int) -> None: ...

    async def wait_ended(self) -> None: ...


class ExtensionAgent:
    """Acts out a :class:`Decision` on a dialled channel."""

    def __init__(
        self,
        decision: Decision,
        channel: DialedChannel,
        *,
        audio: CallerAudio | None = None,
        tts: TextToSpeech | None = None,
    ) -> None:
        self.decision = decision
        self.channel = channel
        self.audio = audio
        self.tts = tts
        self.answered = False

    async def run(self) -> Decision:
        ended = asyncio.ensure_future(self.channel.wait_ended())
        try:
            await self.channel.ring()
            if not await self._wait(self.decision.after_s, ended):
                return self.decision
            if self.decision.action != "answer":
                if self.decision.cause is not None:
                    await self.channel.hangup(self.decision.cause)
                return self.decision
            await self.channel.answer()
            self.answered = True
            try:
                await self._greet()
            except Exception as exc:  # a voice that fails leaves a silent person on the line
                log.warning("%s: cannot speak its greeting: %s", self.decision.endpoint, exc)
            behaviour = self.decision.behaviour
            talk_s = behaviour.talk_s if behaviour is not None else None
            if talk_s is not None and await self._wait(talk_s, ended):
                await self.channel.hangup(CAUSE_NORMAL[0])
            elif talk_s is None:
                await ended
            return self.decision
        finally:
            ended.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ended

    async def _wait(self, seconds: float, ended: asyncio.Future[None]) -> bool:
        """Sleep unless the call ends first; True when the time ran out with the call still up."""
        if seconds == float("inf"):
            await asyncio.shield(ended)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ended), seconds)
            return False
        return True

    async def _greet(self) -> None:
        behaviour = self.decision.behaviour
        if behaviour is None or not behaviour.say or self.audio is None or self.tts is None:
            return
        chunks = [c async for c in self.tts.synthesize(behaviour.say, behaviour.language)]
        self.audio.speak(resample(b"".join(chunks), self.tts.sample_rate, self.audio.sample_rate))
