"""The small interfaces every speech and language provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Float32Audio = npt.NDArray[np.float32]

STT_RATE = 16000  # what every STT engine receives: mono float32 in [-1, 1] at 16 kHz


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None = None
    confidence: float | None = None


class SpeechToText(Protocol):
    """Turns one utterance into text; engines that block run in a worker thread."""

    name: str

    async def transcribe(self, audio: Float32Audio, language: str | None = None) -> Transcript: ...


class TextToSpeech(Protocol):
    """Turns one clause into audio (slin16 at :attr:`sample_rate`), in chunks as it is made."""

    name: str

    @property
    def sample_rate(self) -> int: ...

    def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]: ...


class LineRateTts(Protocol):
    """A TTS that can deliver at the line's rate itself, resampling in its worker thread so the
    event loop does not (espeak-ng, Piper); the reply uses it when the engine has it."""

    def synthesize_at(
        self, text: str, language: str | None, sample_rate: int
    ) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class AgentText:
    text: str


@dataclass(frozen=True, slots=True)
class AgentAction:
    """A request for call control: transfer, attended_transfer, queue, callback, hangup."""

    action: str
    target: str = ""
    params: dict[str, Any] = field(default_factory=dict)


AgentOutput = AgentText | AgentAction

ACTIONS = ("transfer", "attended_transfer", "queue", "callback", "hangup")


class Conversation(Protocol):
    """One call's dialogue with the agent; keeps its own memory."""

    def greeting(self) -> str | None: ...

    def reply(self, caller_text: str) -> AsyncIterator[AgentOutput]: ...

    def heard(self, spoken: str, interrupted: bool) -> None:
        """What the caller actually heard of the last reply (all of it unless interrupted)."""
        ...

    def dtmf(self, digit: str) -> AsyncIterator[AgentOutput]: ...


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """Who is calling and which number they dialled, as call control learned it."""

    caller_id: str = ""
    caller_name: str = ""
    did: str = ""

    def describe(self) -> str:
        """One line for an LLM's system prompt; empty when nothing is known."""
        parts = []
        if self.caller_id:
            who = f"{self.caller_name} <{self.caller_id}>" if self.caller_name else self.caller_id
            parts.append(f"The caller's number is {who}.")
        if self.did:
            parts.append(f"They dialled {self.did}.")
        return " ".join(parts)


class Agent(Protocol):
    """Shared across calls (models load once); each call gets its own conversation."""

    name: str

    def conversation(self, call_id: str, caller: CallerInfo | None = None) -> Conversation: ...
