"""What flows through a call's voice pipeline, and the queue that carries it.

System frames (speech started, interruption, DTMF, end of call) jump the queue and survive an
interruption; data frames (caller audio, agent text and audio) wait their turn and are dropped
when the caller barges in.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class Frame:
    pass


@dataclass(slots=True)
class SystemFrame(Frame):
    pass


@dataclass(slots=True)
class DataFrame(Frame):
    pass


@dataclass(slots=True)
class AudioFrame(DataFrame):
    """Caller audio, slin16 little-endian."""

    pcm: bytes
    sample_rate: int
    at: float


@dataclass(slots=True)
class TextFrame(DataFrame):
    """A piece of the agent's reply text (a token, a clause, or all of it)."""

    text: str


@dataclass(slots=True)
class TtsAudioFrame(DataFrame):
    """Synthesised agent audio for one clause."""

    pcm: bytes
    sample_rate: int
    text: str


@dataclass(slots=True)
class ActionFrame(DataFrame):
    """The agent asks call control to act once what it says before has been played."""

    action: str
    target: str = ""
    params: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class ReplyEndFrame(DataFrame):
    """The agent's reply is complete."""


@dataclass(slots=True)
class SpeechStartedFrame(SystemFrame):
    at: float


@dataclass(slots=True)
class SpeechStoppedFrame(SystemFrame):
    at: float


@dataclass(slots=True)
class InterruptionFrame(SystemFrame):
    """The caller spoke over the agent: drop the reply in flight."""

    at: float


@dataclass(slots=True)
class UserTurnFrame(SystemFrame):
    """The caller finished a turn; ``timings`` are milliseconds per stage so far."""

    text: str
    started_at: float
    ended_at: float
    timings: dict[str, float] = field(default_factory=dict)
    ready_at: float = 0.0  # when the transcript was in hand (loop time)


@dataclass(slots=True)
class DtmfFrame(SystemFrame):
    digit: str
    at: float


@dataclass(slots=True)
class EndFrame(SystemFrame):
    """The call's media ended."""

    reason: str = "hangup"


class FrameQueue:
    """System frames first; :meth:`interrupt` drops the data frames still waiting."""

    def __init__(self) -> None:
        self._system: deque[SystemFrame] = deque()
        self._data: deque[Frame] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._system) + len(self._data)

    def put(self, frame: Frame) -> None:
        if isinstance(frame, SystemFrame):
            self._system.append(frame)
        else:
            self._data.append(frame)
        self._ready.set()

    def get_nowait(self) -> Frame | None:
        if self._system:
            return self._system.popleft()
        if self._data:
            return self._data.popleft()
        self._ready.clear()
        return None

    async def get(self) -> Frame:
        while True:
            frame = self.get_nowait()
            if frame is not None:
                return frame
            await self._ready.wait()

    def interrupt(self) -> int:
        """Drop every waiting data frame; returns how many were dropped."""
        dropped = len(self._data)
        self._data.clear()
        if not self._system:
            self._ready.clear()
        return dropped
