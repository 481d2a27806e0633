"""Test doubles for the voice pipeline: a virtual-time event loop, a media session that follows
the ``operadora.media.MediaSession`` contract and paces playback like the AudioSocket server
(one frame per 20 ms, silence when nothing is queued), and a scripted conversation."""

from __future__ import annotations

import asyncio
import selectors
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from operadora.media import AudioIn, DtmfIn, InboundItem
from operadora.voice.engines import AgentAction, AgentOutput, AgentText, CallerInfo

T = TypeVar("T")


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._vloop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("virtual clock: nothing scheduled, the test would hang")
        self._vloop.advance(timeout)
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of sleeping."""

    def __init__(self) -> None:
        self._now = 1000.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@dataclass(frozen=True, slots=True)
class Speech:
    ms: int
    amplitude: float = 0.3


@dataclass(frozen=True, slots=True)
class Recorded:
    """Real speech (slin at the media's rate), e.g. one of Asterisk's recorded prompts."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class Silence:
    ms: int


@dataclass(frozen=True, slots=True)
class NoFrames:
    """The line sends nothing at all (a real Asterisk during silence on some channels)."""

    ms: int


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


Segment = Speech | Recorded | Silence | NoFrames | Dtmf


def tone(ms: int, rate: int, amplitude: float, freq: float = 220.0) -> bytes:
    t = np.arange(rate * ms // 1000, dtype=np.float32) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes()


@dataclass(slots=True)
class WireFrame:
    at: float
    real: bool


class FakeMedia:
    """A MediaSession on the virtual clock; records what goes on the wire and every clear()."""

    def __init__(
        self,
        script: Sequence[Segment],
        *,
        sample_rate: int = 16000,
        frame_ms: int = 20,
        linger_ms: int = 3000,
    ) -> None:
        self._uuid = uuid.uuid4()
        self._rate = sample_rate
        self._frame_ms = frame_ms
        self._frame_bytes = sample_rate * frame_ms // 1000 * 2
        self._script = list(script)
        self._linger_s = linger_ms / 1000
        self._playback = bytearray()
        self._played_bytes = 0
        self._closed = False
        self.wire: list[WireFrame] = []
        self.clears: list[float] = []
        self.speech_onsets: list[float] = []
        self.speech_ends: list[float] = []
        self._pacer: asyncio.Task[None] | None = None

    @property
    def call_uuid(self) -> uuid.UUID:
        return self._uuid

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def inbound(self) -> AsyncIterator[InboundItem]:
        loop = asyncio.get_running_loop()
        self._pacer = loop.create_task(self._pace())
        frame = self._frame_ms / 1000
        now = loop.time()
        for segment in self._script:
            if isinstance(segment, Dtmf):
                yield DtmfIn(segment.digit, loop.time())
                continue
            if isinstance(segment, NoFrames):
                now += segment.ms / 1000
                await asyncio.sleep(max(0.0, now - loop.time()))
                continue
            voiced = isinstance(segment, Speech | Recorded)
            if voiced:
                self.speech_onsets.append(now)
                if isinstance(segment, Recorded):
                    pcm = segment.pcm
                else:
                    pcm = tone(segment.ms, self._rate, segment.amplitude)
            else:
                pcm = bytes(self._rate * segment.ms // 1000 * 2)
            for pos in range(0, len(pcm), self._frame_bytes):
                now += frame
                await asyncio.sleep(max(0.0, now - loop.time()))
                yield AudioIn(pcm[pos : pos + self._frame_bytes], self._rate, loop.time())
            if voiced:
                self.speech_ends.append(now)
        await asyncio.sleep(self._linger_s)
        self._closed = True
        if self._pacer is not None:
            self._pacer.cancel()

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self._frame_ms / 1000
        next_at = loop.time() + tick
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += tick
            if self._playback:
                chunk = self._playback[: self._frame_bytes]
                del self._playback[: self._frame_bytes]
                self._played_bytes += len(chunk)
                self.wire.append(WireFrame(loop.time(), True))

    async def stop_pacing(self) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
            await asyncio.gather(self._pacer, return_exceptions=True)

    def play(self, pcm: bytes, sample_rate: int | None = None) -> None:
        assert sample_rate in (None, self._rate), "tests play at the media rate"
        if not self._closed:
            self._playback += pcm

    def clear(self) -> int:
        self.clears.append(asyncio.get_running_loop().time())
        dropped = len(self._playback)
        self._playback.clear()
        return dropped

    @property
    def queued_ms(self) -> float:
        return len(self._playback) / 2 / self._rate * 1000

    @property
    def played_ms(self) -> float:
        return self._played_bytes / 2 / self._rate * 1000

    async def hangup(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def agent_audio_ms(self) -> float:
        return len([w for w in self.wire if w.real]) * self._frame_ms


class ReceiverMedia(FakeMedia):
    """A FakeMedia that, like ``AudioSocketSession.set_receiver``, hands each inbound item to a
    receiver as its frame arrives; ``inbound()`` then yields nothing and only ends with the call.
    Notes, for every clear(), which frame was being handed over at that moment (or None)."""

    def __init__(self, script: Sequence[Segment], **kwargs: Any) -> None:
        super().__init__(script, **kwargs)
        self.receiver: Callable[[InboundItem], None] | None = None
        self.receivers_set: list[bool] = []
        self.delivering: InboundItem | None = None
        self.clears_during: list[InboundItem | None] = []

    def set_receiver(self, receiver: Callable[[InboundItem], None] | None) -> None:
        self.receivers_set.append(receiver is not None)
        self.receiver = receiver

    async def inbound(self) -> AsyncIterator[InboundItem]:
        async for item in super().inbound():
            if self.receiver is None:
                yield item
                continue
            self.delivering = item
            try:
                self.receiver(item)
            finally:
                self.delivering = None

    def clear(self) -> int:
        self.clears_during.append(self.delivering)
        return super().clear()


@dataclass(slots=True)
class ScriptedConversation:
    """Replies in order; each reply is a list of outputs, with an optional thinking delay."""

    replies: list[list[AgentOutput]]
    greeting_text: str | None = None
    delay_s: float = 0.0
    heard_log: list[tuple[str, bool]] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    prepared: list[str] = field(default_factory=list)

    def greeting(self) -> str | None:
        return self.greeting_text

    async def reply(self, caller_text: str) -> AsyncIterator[AgentOutput]:
        self.asked.append(caller_text)
        await asyncio.sleep(self.delay_s)
        outputs = self.replies.pop(0) if self.replies else [AgentText("Sorry?")]
        for out in outputs:
            yield out

    async def prepare(self, caller_text: str) -> None:
        self.prepared.append(caller_text)

    async def dtmf(self, digit: str) -> AsyncIterator[AgentOutput]:
        yield AgentText(f"You pressed {digit}.")
        yield AgentAction("transfer", "201", {"digit": digit})

    def heard(self, spoken: str, interrupted: bool) -> None:
        self.heard_log.append((spoken, interrupted))


@dataclass(slots=True)
class ScriptedAgent:
    conversation_: ScriptedConversation
    name: str = "scripted-fake"

    def conversation(self, call_id: str, caller: CallerInfo | None = None) -> ScriptedConversation:
        return self.conversation_
