"""One call's voice agent: caller audio in, turns detected on the clock, replies spoken back,
barge-in honoured, and everything that happens published on the event bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from operadora.audio.vad_batch import SileroBatchStream
from operadora.audio.vad_pcm import shared_pcm_runner
from operadora.config import VoiceSettings
from operadora.events import (
    ActionRequestedEvent,
    DtmfEvent,
    EventBus,
    SpeakingEvent,
    TurnEvent,
)
from operadora.media import AudioIn, DtmfIn, InboundItem, MediaSession
from operadora.voice.engines import (
    STT_RATE,
    Agent,
    AgentOutput,
    AgentText,
    CallerInfo,
    Float32Audio,
    SpeechToText,
    TextToSpeech,
)
from operadora.voice.errors import ProviderError
from operadora.voice.frames import (
    DtmfFrame,
    EndFrame,
    Frame,
    FrameQueue,
    InterruptionFrame,
    SpeechStartedFrame,
    SpeechStoppedFrame,
    UserTurnFrame,
)
from operadora.voice.listening import BatchedVad, UtteranceBuffer, VadWindows, VoiceActivity
from operadora.voice.pcm import resample, to_float32, to_pcm16
from operadora.voice.reply import Reply
from operadora.voice.speaker import Speaker
from operadora.voice.turns import Signal, TurnDetector, TurnSignal, TurnState

log = logging.getLogger(__name__)

PREROLL_S = 0.3
NO_AUDIO_S = 0.1  # no caller frame for this long while speech is open: the line went quiet
# fast barge-in: a caller frame this loud pauses agent playback before the VAD's window is full...
FAST_PAUSE_FLOOR = 10 ** (-40 / 20)
# ...if it is also this much louder than the loudest echo the agent's own audio could cause
# (telephone echo return loss is 20 dB or more)
FAST_PAUSE_ECHO_MARGIN = 10 ** (-14 / 20)
FAST_PAUSE_HOLD_S = 0.12  # resumed if the VAD has not seen a speech onset by then


VadFactory = Callable[[int], VoiceActivity]


@dataclass(slots=True)
class Engines:
    stt: SpeechToText
    tts: TextToSpeech
    agent: Agent
    vad: VadFactory


class VoiceAgentSession:
    """Runs the voice agent on one media session until the media ends."""

    def __init__(
        self,
        media: MediaSession,
        engines: Engines,
        settings: VoiceSettings,
        bus: EventBus,
        call_id: str,
        *,
        language: str | None = None,
        greet: bool = True,
        caller: CallerInfo | None = None,
    ) -> None:
        self._media = media
        self._engines = engines
        self._settings = settings
        self._bus = bus
        self.call_id = call_id
        self.language = language or settings.agent.language
        self._greet = greet
        vad = settings.vad
        self._turns = TurnDetector(
            threshold=vad.threshold,
            min_speech_ms=vad.min_speech_ms,
            end_of_turn_silence_ms=vad.end_of_turn_silence_ms,
            barge_in_min_speech_ms=vad.barge_in_min_speech_ms,
        )
        self._frames = FrameQueue()
        self._speaker = Speaker(media, settings.playback_lookahead_ms, self._on_agent_audio)
        self.caller = caller or CallerInfo()
        self._conversation = engines.agent.conversation(call_id, self.caller)
        self._rate = 0  # learnt from the first caller frame (the media may not know it before)
        self._windows: VadWindows | None = None
        # with Silero: this call's audio scored with every other call's by the shared runner
        self._batched_vad: BatchedVad | None = None
        self._utterance = UtteranceBuffer(STT_RATE, PREROLL_S)
        self._timer: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_audio_at = 0.0
        self._speculative: asyncio.Task[tuple[str, float]] | None = None
        self._stt_tasks: set[asyncio.Task[None]] = set()
        self._turn_stt: set[asyncio.Task[tuple[str, float]]] = set()
        self._ended = False  # the control task has stopped taking frames
        self._reply_task: asyncio.Task[None] | None = None
        self._reply: Reply | None = None
        self.turns: list[TurnEvent] = []

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def run(self) -> None:
        inbound = asyncio.create_task(self._read_inbound())
        try:
            if self._greet and (greeting := self._conversation.greeting()):
                self._start_reply(_one_text(greeting), None)
            await self._control()
        finally:
            inbound.cancel()
            if self._reply is not None and not self._reply.finalised:
                self._reply.interrupt()
                self._finalise(self._reply, interrupted=True)  # the call ended mid-reply
            self._ended = True
            if self._batched_vad is not None:
                self._batched_vad.close()
            for task in (self._reply_task, self._speculative, *self._stt_tasks, *self._turn_stt):
                if task is not None:
                    task.cancel()
            self._speaker.stop()
            for handle in (self._timer, self._watchdog):
                if handle is not None:
                    handle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await inbound

    # -- caller side ---------------------------------------------------------------------------

    async def _read_inbound(self) -> None:
        # A media session that can hand each item over as its frame is read (the AudioSocket
        # server's set_receiver) gets the pipeline called right there: a barge-in's clear()
        # happens in the same event-loop callback as the caller frame that shows the onset,
        # before the paced writer's next write, with no queue or task switch in between.
        set_receiver = getattr(self._media, "set_receiver", None)
        try:
            if set_receiver is not None:
                set_receiver(self._on_inbound)
            async for item in self._media.inbound():  # with a receiver: only waits for the end
                self._on_inbound(item)
        except (ConnectionError, OSError) as exc:
            log.info("call %s: media ended: %s", self.call_id, exc)
        finally:
            if set_receiver is not None and not self._media.closed:
                set_receiver(None)
            self._frames.put(EndFrame())

    def _on_inbound(self, item: InboundItem) -> None:
        if isinstance(item, AudioIn):
            self._on_audio(item)
        elif isinstance(item, DtmfIn):
            self._frames.put(DtmfFrame(item.digit, item.received_at))

    def _start_vad(self, sample_rate: int) -> VadWindows:
        self._rate = sample_rate
        vad_rate = sample_rate if sample_rate in (8000, 16000) else STT_RATE
        vad = self._engines.vad(vad_rate)
        self._windows = VadWindows(vad)
        wait_ms = self._settings.vad.batch_wait_ms
        if wait_ms > 0 and isinstance(vad, SileroBatchStream):
            # this call's windows are scored with every other call's, a few ms later
            runner = shared_pcm_runner(vad.batch, wait_ms / 1000.0)
            self._batched_vad = BatchedVad(runner, self._on_window)
        self._utterance = UtteranceBuffer(sample_rate, PREROLL_S)
        return self._windows

    def _on_audio(self, item: AudioIn) -> None:
        windows = self._windows or self._start_vad(item.sample_rate)
        self._last_audio_at = item.received_at
        audio = to_float32(item.pcm)
        if item.sample_rate != self._rate:
            audio = resample(audio, item.sample_rate, self._rate)
        self._utterance.add(audio)
        if self._settings.fast_barge_in and self._speaker.active and not self._speaker.paused:
            self._fast_pause(audio, item.received_at)
        self._turns.agent_speaking = self._speaker.active
        if self._batched_vad is not None:
            if item.sample_rate == windows.rate:
                self._batched_vad.feed(item.pcm, item.received_at)  # the line's own slin
            else:
                vad_pcm = to_pcm16(resample(audio, self._rate, windows.rate))
                self._batched_vad.feed(vad_pcm, item.received_at)
            return
        vad_audio = resample(audio, self._rate, windows.rate)
        for probability, start, end in windows.feed(vad_audio, item.received_at):
            self._on_window(start, end, probability)

    def _on_window(self, start: float, end: float, probability: float) -> None:
        if self._ended:
            return  # a batched result for a call that has ended
        for signal in self._turns.window(probability, start, end):
            self._on_signal(signal)

    def _fast_pause(self, audio: Float32Audio, at: float) -> None:
        """Pause the agent on one loud frame; the VAD then confirms it or playback resumes."""
        if self._turns.state is not TurnState.QUIET or audio.size == 0:
            return
        level = float(np.sqrt(np.mean(np.square(audio))))
        if level < FAST_PAUSE_FLOOR or level < self._speaker.recent_level * FAST_PAUSE_ECHO_MARGIN:
            return
        self._speaker.pause()
        self._loop.call_at(at + FAST_PAUSE_HOLD_S, self._release_fast_pause)

    def _release_fast_pause(self) -> None:
        if self._turns.state is TurnState.QUIET and self._speaker.paused:
            self._speaker.resume()

    def _on_signal(self, signal: TurnSignal) -> None:
        kind = signal.signal
        if kind is Signal.ONSET:
            self._utterance.start()
            if self._speaker.active:
                self._speaker.pause()  # barge-in: silence the agent now, decide later
            self._arm_watchdog(self._last_audio_at + NO_AUDIO_S)
        elif kind is Signal.REJECTED:
            self._utterance.drop()
            if self._speaker.paused:
                self._speaker.resume()
        elif kind is Signal.STARTED:
            self._frames.put(SpeechStartedFrame(signal.at))
            if self._reply_task is not None and not self._reply_task.done():
                self._frames.put(InterruptionFrame(signal.at))
        elif kind is Signal.PAUSED:
            self._arm_timer()
            if self._settings.speculative_stt:
                self._start_speculative()
        elif kind is Signal.RESUMED:
            self._disarm_timer()
            if self._speculative is not None:
                self._speculative.cancel()
                self._speculative = None
        elif kind is Signal.END_OF_TURN:
            self._disarm_timer()
            self._end_of_turn(signal.at)

    def _arm_watchdog(self, at: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = self._loop.call_at(at, self._on_watchdog)

    def _on_watchdog(self) -> None:
        self._watchdog = None
        if self._turns.state not in (TurnState.ONSET, TurnState.SPEAKING):
            return
        now = self._loop.time()
        if now - self._last_audio_at < NO_AUDIO_S:
            self._arm_watchdog(self._last_audio_at + NO_AUDIO_S)
            return
        for signal in self._turns.no_audio(now):
            self._on_signal(signal)

    def _arm_timer(self) -> None:
        self._disarm_timer()
        deadline = self._turns.deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _disarm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        signals = self._turns.tick(self._loop.time())
        if not signals:
            self._arm_timer()
        for signal in signals:
            self._on_signal(signal)

    def _start_speculative(self) -> None:
        if self._speculative is not None:
            self._speculative.cancel()
        task = self._loop.create_task(self._transcribe(self._utterance.audio(STT_RATE)))
        task.add_done_callback(self._on_speculative)
        self._speculative = task

    def _on_speculative(self, task: asyncio.Task[tuple[str, float]]) -> None:
        """A transcript that reads as a finished sentence ends the turn sooner; an agent that
        can prepare its answer (the scripted agent matches the intent) starts on it now."""
        if task is not self._speculative or task.cancelled():
            return
        text = task.result()[0]
        prepare = getattr(self._conversation, "prepare", None)
        if text and prepare is not None:
            self._background(prepare(text))
        quick = self._settings.complete_turn_silence_ms
        if quick and self._turns.state is TurnState.TRAILING and looks_complete(text):
            self._turns.shorten_silence(quick)
            self._disarm_timer()
            self._on_timer()

    def _background(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("call %s: background work failed", self.call_id)

        task = self._loop.create_task(run())
        self._stt_tasks.add(task)
        task.add_done_callback(self._stt_tasks.discard)

    async def _transcribe(self, audio: Float32Audio) -> tuple[str, float]:
        started = self._loop.time()
        try:
            transcript = await self._engines.stt.transcribe(audio, self.language)
        except ProviderError as exc:
            log.warning("call %s: speech recognition failed: %s", self.call_id, exc)
            return "", self._loop.time() - started
        return transcript.text.strip(), self._loop.time() - started

    def _end_of_turn(self, last_voice_at: float) -> None:
        now = self._loop.time()
        stt = self._speculative
        self._speculative = None
        audio = self._utterance.take(STT_RATE)
        if stt is None:
            stt = self._loop.create_task(self._transcribe(audio))
        started_at = self._turns.speech_started_at
        self._dispatch(SpeechStoppedFrame(last_voice_at))

        def finish(task: asyncio.Task[tuple[str, float]]) -> None:
            self._turn_stt.discard(task)
            self._finish_turn(task, started_at, last_voice_at, now)

        if stt.done():  # the speculative decode is in hand: answer in this very callback
            finish(stt)
        else:
            self._turn_stt.add(stt)
            stt.add_done_callback(finish)

    def _finish_turn(
        self,
        stt: asyncio.Task[tuple[str, float]],
        started_at: float,
        last_voice_at: float,
        end_of_turn_at: float,
    ) -> None:
        if stt.cancelled() or self._ended:
            return
        try:
            text, decode_s = stt.result()
        except Exception:
            log.exception("call %s: speech recognition crashed", self.call_id)
            text, decode_s = "", 0.0
        done = self._loop.time()
        timings = {
            "endpointing_ms": (end_of_turn_at - last_voice_at) * 1000,
            "stt_ms": (done - end_of_turn_at) * 1000,
            "stt_decode_ms": decode_s * 1000,
        }
        self._dispatch(UserTurnFrame(text, started_at, last_voice_at, timings, done))

    # -- control -------------------------------------------------------------------------------

    def _dispatch(self, frame: Frame) -> None:
        """Handle a frame in the caller's own callback when nothing is waiting before it (the
        handlers never await, so this is what the control task would do, one loop turn and
        one wake-up sooner); else queue it behind the others."""
        if self._frames or self._ended:
            self._frames.put(frame)
        else:
            self._handle(frame)

    async def _control(self) -> None:
        while True:
            frame = await self._frames.get()
            if isinstance(frame, EndFrame):
                self._ended = True
                return
            self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        if isinstance(frame, SpeechStartedFrame):
            self._publish_speaking("caller", True)
        elif isinstance(frame, SpeechStoppedFrame):
            self._publish_speaking("caller", False)
        elif isinstance(frame, InterruptionFrame):
            self._interrupt()
        elif isinstance(frame, UserTurnFrame):
            self._on_user_turn(frame)
        elif isinstance(frame, DtmfFrame):
            self._bus.publish(DtmfEvent(self.call_id, digit=frame.digit))
            self._interrupt()
            self._start_reply(self._conversation.dtmf(frame.digit), None)

    def _on_user_turn(self, frame: UserTurnFrame) -> None:
        event = TurnEvent(
            self.call_id,
            speaker="caller",
            text=frame.text,
            started_at=frame.started_at,
            ended_at=frame.ended_at,
            timings=dict(frame.timings),
        )
        self._publish_turn(event)
        if not frame.text:
            if self._speaker.paused:
                self._speaker.resume()
            return
        self._interrupt()
        self._start_reply(self._conversation.reply(frame.text), frame)

    def _interrupt(self) -> None:
        reply = self._reply
        if reply is not None and not reply.finalised:
            reply.interrupt()
            self._finalise(reply, interrupted=True)
        if self._reply_task is not None and not self._reply_task.done():
            self._reply_task.cancel()
        self._speaker.stop()

    def _start_reply(self, outputs: AsyncIterator[AgentOutput], turn: UserTurnFrame | None) -> None:
        reply = Reply(outputs, self._engines.tts, self._speaker, self.language, turn)
        self._reply = reply
        self._reply_task = self._loop.create_task(self._run_reply(reply))

    async def _run_reply(self, reply: Reply) -> None:
        await reply.run()
        self._finalise(reply, interrupted=False)

    def _on_agent_audio(self) -> None:
        self._publish_speaking("agent", True)

    def _finalise(self, reply: Reply, interrupted: bool) -> None:
        """Close a reply once: memory keeps what the caller heard, then events and actions."""
        reply.finalised = True
        heard = self._speaker.heard_text() if interrupted else " ".join(reply.times.text)
        self._conversation.heard(heard, interrupted)
        if self._speaker.first_audio_at is not None:
            self._publish_speaking("agent", False)
        timings, latency = self._reply_timings(reply, reply.turn)
        self._publish_turn(
            TurnEvent(
                self.call_id,
                speaker="agent",
                text=heard,
                started_at=reply.times.started_at,
                ended_at=self._loop.time(),
                interrupted=interrupted,
                latency_ms=latency,
                timings=timings,
            )
        )
        if interrupted:
            return
        for action in reply.times.actions:
            self._bus.publish(
                ActionRequestedEvent(
                    self.call_id, action=action.action, target=action.target, params=action.params
                )
            )

    def _reply_timings(
        self, reply: Reply, turn: UserTurnFrame | None
    ) -> tuple[dict[str, float], float | None]:
        times = reply.times
        first_audio = self._speaker.first_audio_at
        timings: dict[str, float] = {}
        if turn is not None:
            timings.update(turn.timings)
        if times.first_clause_at is not None:
            timings["agent_ms"] = (times.first_clause_at - times.started_at) * 1000
            if times.first_audio_at is not None:
                timings["tts_first_chunk_ms"] = (
                    times.first_audio_at - times.first_clause_at
                ) * 1000
        if turn is None or first_audio is None:
            return timings, None
        v2v = (first_audio - turn.ended_at) * 1000
        timings["v2v_ms"] = v2v
        stages = ("endpointing_ms", "stt_ms", "agent_ms", "tts_first_chunk_ms")
        timings["overhead_ms"] = max(0.0, v2v - sum(timings.get(k, 0.0) for k in stages))
        # the overhead's two parts: transcript in hand -> reply started, TTS chunk -> on the wire
        timings["handoff_ms"] = (times.started_at - turn.ready_at) * 1000
        if times.first_audio_at is not None:
            timings["playout_ms"] = (first_audio - times.first_audio_at) * 1000
        return timings, v2v

    def _publish_speaking(self, speaker: str, speaking: bool) -> None:
        self._bus.publish(SpeakingEvent(self.call_id, speaker=speaker, speaking=speaking))

    def _publish_turn(self, event: TurnEvent) -> None:
        self.turns.append(event)
        self._bus.publish(event)


def looks_complete(text: str) -> bool:
    """Ends like a sentence, not like a trailing-off ("so...") or a clause ("and,")."""
    text = text.strip()
    return bool(text) and text[-1] in ".?!" and not text.endswith("..")


async def _one_text(text: str) -> AsyncIterator[AgentOutput]:
    yield AgentText(text)
