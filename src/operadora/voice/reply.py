"""One agent reply: the agent's text stream cut into clauses, each synthesised as soon as it is
complete, its audio handed to the speaker. Two stages joined by a frame queue, so the agent keeps
streaming while a clause is being synthesised, and an interruption drops what is still waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

from operadora.voice.clauses import ClauseSplitter
from operadora.voice.engines import (
    AgentAction,
    AgentOutput,
    AgentText,
    LineRateTts,
    TextToSpeech,
)
from operadora.voice.errors import ProviderError
from operadora.voice.frames import (
    ActionFrame,
    FrameQueue,
    ReplyEndFrame,
    TextFrame,
    UserTurnFrame,
)
from operadora.voice.speaker import Speaker

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplyTimes:
    started_at: float
    first_text_at: float | None = None
    first_clause_at: float | None = None
    first_audio_at: float | None = None  # first synthesised chunk ready
    actions: list[ActionFrame] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


class Reply:
    def __init__(
        self,
        outputs: AsyncIterator[AgentOutput],
        tts: TextToSpeech,
        speaker: Speaker,
        language: str | None,
        turn: UserTurnFrame | None = None,
    ) -> None:
        self._outputs = outputs
        self._tts = tts
        self._speaker = speaker
        self._language = language
        self._queue = FrameQueue()
        self.turn = turn  # the caller's turn this replies to (none for a greeting)
        self.finalised = False
        self.times = ReplyTimes(started_at=asyncio.get_running_loop().time())

    async def run(self) -> None:
        """Produce and play the whole reply; returns once the caller has heard it."""
        self._speaker.start()
        producer = asyncio.create_task(self._produce())
        try:
            await self._synthesise()
            await self._speaker.wait()
        finally:
            producer.cancel()

    def interrupt(self) -> int:
        return self._queue.interrupt()

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        splitter = ClauseSplitter()
        try:
            async for out in self._outputs:
                if isinstance(out, AgentText):
                    if self.times.first_text_at is None:
                        self.times.first_text_at = loop.time()
                    for clause in splitter.push(out.text):
                        self._put_clause(clause)
                elif isinstance(out, AgentAction):
                    self._queue.put(ActionFrame(out.action, out.target, dict(out.params)))
        except ProviderError as exc:
            log.warning("agent failed: %s", exc)
        except Exception:
            log.exception("agent crashed; the reply ends here")
        finally:
            for clause in splitter.flush():
                self._put_clause(clause)
            self._queue.put(ReplyEndFrame())

    def _put_clause(self, clause: str) -> None:
        if self.times.first_clause_at is None:
            self.times.first_clause_at = asyncio.get_running_loop().time()
        self._queue.put(TextFrame(clause))

    def _clause_audio(self, text: str) -> tuple[AsyncIterator[bytes], int]:
        """The clause's audio stream and its rate: at the line's rate when the engine can
        resample in its own thread, else at the engine's rate (the speaker resamples)."""
        at_rate = getattr(self._tts, "synthesize_at", None)
        if at_rate is not None:
            rate = self._speaker.rate
            return cast(LineRateTts, self._tts).synthesize_at(text, self._language, rate), rate
        return self._tts.synthesize(text, self._language), self._tts.sample_rate

    async def _synthesise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self._queue.get()
            if isinstance(frame, ReplyEndFrame):
                self._speaker.finish()
                return
            if isinstance(frame, ActionFrame):
                self.times.actions.append(frame)
            elif isinstance(frame, TextFrame):
                try:
                    spoken = False
                    chunks, rate = self._clause_audio(frame.text)
                    async for pcm in chunks:
                        if self.times.first_audio_at is None:
                            self.times.first_audio_at = loop.time()
                        self._speaker.add(pcm, rate, frame.text)
                        if not spoken:
                            spoken = True
                            self.times.text.append(frame.text)
                except ProviderError as exc:
                    log.warning("speech synthesis failed for a clause: %s", exc)
                except Exception:
                    log.exception("speech synthesis crashed on a clause; skipping it")
