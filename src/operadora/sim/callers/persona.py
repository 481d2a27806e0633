"""Runs one persona's steps on a call: speak, listen, press keys, wait, hang up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from operadora.sim.callers.audio import AgentUtterance, CallerAudio, Clock, resample
from operadora.sim.callers.scenario import (
    DtmfStep,
    HangupStep,
    ListenStep,
    Persona,
    SayStep,
    Step,
    WaitStep,
)
from operadora.voice.engines import STT_RATE, SpeechToText, TextToSpeech

log = logging.getLogger(__name__)

EndedBy = Literal["caller", "far_end", "error"]
CallerEventKind = Literal["state", "said", "heard", "dtmf", "ended"]


class LineControl(Protocol):
    """What a persona does to its channel besides audio (which goes through CallerAudio)."""

    async def send_dtmf(self, digit: str, duration_ms: int) -> None: ...

    async def hangup(self) -> None: ...

    async def wait_ended(self) -> None:
        """Returns once the call is over, whoever hung up."""
        ...


@dataclass(frozen=True, slots=True)
class CallerEvent:
    """Something a persona did or heard, for live displays."""

    persona: str
    kind: CallerEventKind
    text: str = ""
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    speaker: Literal["caller", "agent"]
    text: str
    at: float
    interrupted: bool = False


@dataclass(slots=True)
class CallerReport:
    """The call as the caller lived it."""

    persona: str
    started_at: float
    ended_at: float = 0.0
    ended_by: EndedBy = "caller"
    steps_done: int = 0
    transcript: list[TranscriptLine] = field(default_factory=list)
    response_ms: list[float] = field(default_factory=list)  # caller stops -> agent audio heard
    digits_sent: str = ""
    listen_timeouts: int = 0
    error: str | None = None

    def agent_text(self) -> str:
        return " ".join(line.text for line in self.transcript if line.speaker == "agent")


EventSink = Callable[[CallerEvent], None]


def pcm_to_stt(pcm: bytes, sample_rate: int) -> np.ndarray[tuple[int], np.dtype[np.float32]]:
    audio = np.frombuffer(resample(pcm, sample_rate, STT_RATE), dtype="<i2")
    return (audio.astype(np.float32) / 32768.0).astype(np.float32)


class PersonaRun:
    """One persona on one line. ``run()`` returns the report once the call is over."""

    def __init__(
        self,
        persona: Persona,
        audio: CallerAudio,
        line: LineControl,
        tts: TextToSpeech,
        stt: SpeechToText | None = None,
        *,
        on_event: EventSink | None = None,
        clock: Clock = time.monotonic,
        end_grace_s: float = 0.5,
    ) -> None:
        self.persona = persona
        self.audio = audio
        self.line = line
        self.tts = tts
        self.stt = stt
        self._on_event = on_event
        self._clock = clock
        self._end_grace_s = end_grace_s
        self.report = CallerReport(persona=persona.name, started_at=clock())
        self._hung_up = False

    def _emit(self, kind: CallerEventKind, text: str = "") -> None:
        if self._on_event is not None:
            self._on_event(CallerEvent(self.persona.name, kind, text, self._clock()))

    async def run(self) -> CallerReport:
        ended = asyncio.ensure_future(self.line.wait_ended())
        try:
            for step in self.persona.steps:
                if ended.done() or self._hung_up:
                    break
                if not await self._race(self._do(step), ended):
                    break
                self.report.steps_done += 1
            if not self._hung_up and not ended.done():
                await self._hangup()
        except Exception as exc:  # a broken engine ends this caller, never the simulation
            log.exception("persona %s failed", self.persona.name)
            self.report.error = f"{type(exc).__name__}: {exc}"
            self.report.ended_by = "error"
            with contextlib.suppress(Exception):
                await self.line.hangup()
        finally:
            if not self._hung_up and self.report.ended_by != "error":
                self.report.ended_by = "far_end"
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), self._end_grace_s)
            ended.cancel()
            await self._collect_trailing()
            self.report.ended_at = self._clock()
            self._emit("ended", self.report.ended_by)
        return self.report

    async def _race(self, step: Awaitable[None], ended: asyncio.Future[None]) -> bool:
        """Run a step unless the call ends first; True when the step completed."""
        task = asyncio.ensure_future(step)
        done, _ = await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            return True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False

    async def _do(self, step: Step) -> None:
        if isinstance(step, SayStep):
            await self._say(step)
        elif isinstance(step, ListenStep):
            await self._listen(step)
        elif isinstance(step, DtmfStep):
            await self._dtmf(step)
        elif isinstance(step, WaitStep):
            self._emit("state", f"waiting {step.seconds:g}s")
            await asyncio.sleep(step.seconds)
        elif isinstance(step, HangupStep):
            await self._hangup()

    async def _hangup(self) -> None:
        self._hung_up = True
        self.report.ended_by = "caller"
        self._emit("state", "hanging up")
        await self.line.hangup()

    async def _say(self, step: SayStep) -> None:
        if step.wait_agent_silence:
            await self.audio.tracker.wait_silence(0.5, timeout_s=30.0)
        pcm = await self._synthesize(step.text)
        heard = self.audio.tracker.take()
        if heard is not None:
            await self._heard(heard, interrupted=True)
        self._emit("state", "speaking")
        self.audio.speak(pcm)
        if step.hangup_after_ms is not None:
            await asyncio.sleep(step.hangup_after_ms / 1000.0)
            spoken_fraction = min(
                1.0, step.hangup_after_ms / max(1.0, len(pcm) / 2 / self.audio.sample_rate * 1000)
            )
            words = step.text.split()
            said = " ".join(words[: max(1, round(len(words) * spoken_fraction))])
            self._said(said + "—", interrupted=True)
            self.audio.clear()
            await self._hangup()
            return
        self._said(step.text)
        await self.audio.wait_spoken()

    def _said(self, text: str, interrupted: bool = False) -> None:
        self.report.transcript.append(TranscriptLine("caller", text, self._clock(), interrupted))
        self._emit("said", text)

    async def _synthesize(self, text: str) -> bytes:
        chunks = [c async for c in self.tts.synthesize(text, self.persona.language)]
        return resample(b"".join(chunks), self.tts.sample_rate, self.audio.sample_rate)

    async def _listen(self, step: ListenStep) -> None:
        self._emit("state", "listening")
        deadline = self._clock() + step.timeout_s
        heard_text: list[str] = []
        while True:
            remaining = deadline - self._clock()
            utterance = await self.audio.tracker.wait_turn_end(
                step.silence_ms / 1000.0, max(remaining, 0.0)
            )
            if utterance is None:
                self.report.listen_timeouts += 1
                self._emit("state", "no answer from the agent")
                return
            text = await self._heard(utterance)
            if step.phrase is None:
                return
            if self.stt is None:
                log.warning("persona %s: phrase needs STT; took end of turn", self.persona.name)
                return
            heard_text.append(text)
            if step.phrase.lower() in " ".join(heard_text).lower():
                return

    async def _heard(self, utterance: AgentUtterance, interrupted: bool = False) -> str:
        spoke_at = self.audio.speech_ended_at
        if spoke_at is not None and utterance.started_at > spoke_at:
            self.report.response_ms.append((utterance.started_at - spoke_at) * 1000.0)
            self.audio.speech_ended_at = None
        text = ""
        if self.stt is not None:
            audio = pcm_to_stt(utterance.pcm, utterance.sample_rate)
            text = (await self.stt.transcribe(audio, self.persona.language)).text.strip()
        shown = text or f"({utterance.duration_s:.1f}s of speech)"
        self.report.transcript.append(
            TranscriptLine("agent", shown, utterance.started_at, interrupted)
        )
        self._emit("heard", shown)
        return text

    async def _dtmf(self, step: DtmfStep) -> None:
        for digit in step.digits:
            self._emit("dtmf", digit)
            await self.line.send_dtmf(digit, step.duration_ms)
            self.report.digits_sent += digit
            await asyncio.sleep(step.gap_ms / 1000.0)

    async def _collect_trailing(self) -> None:
        utterance = self.audio.tracker.take()
        if utterance is not None and utterance.duration_s >= 0.2:
            with contextlib.suppress(Exception):
                await self._heard(utterance)
