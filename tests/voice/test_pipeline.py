"""The voice pipeline on a simulated timeline: scripted engines, a virtual clock, exact timings."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import pytest

from operadora.audio.vad import EnergyVad
from operadora.audio.vad_batch import shared_silero_stream
from operadora.config import VoiceSettings
from operadora.events import (
    ActionRequestedEvent,
    DomainEvent,
    DtmfEvent,
    EventBus,
    SpeakingEvent,
    TurnEvent,
)
from operadora.media import AudioIn
from operadora.voice.engines import AgentAction, AgentText
from operadora.voice.errors import ProviderError
from operadora.voice.factory import vad_factory
from operadora.voice.frames import DtmfFrame, SpeechStoppedFrame, UserTurnFrame
from operadora.voice.session import Engines, VoiceAgentSession
from operadora.voice.stt.fake import ScriptedStt
from operadora.voice.tts.fake import ToneTts
from support import require
from voice.fakes import (
    Dtmf,
    FakeMedia,
    NoFrames,
    ReceiverMedia,
    Recorded,
    ScriptedAgent,
    ScriptedConversation,
    Silence,
    Speech,
    run_virtual,
)

pytestmark = pytest.mark.unit

WINDOW_MS = 32  # EnergyVad/Silero window at 16 kHz (512 samples)


def _settings(**voice: object) -> VoiceSettings:
    settings = VoiceSettings()
    settings.vad.engine = "energy"
    for key, value in voice.items():
        setattr(settings, key, value)
    return settings


def _run(
    script: list[object],
    conversation: ScriptedConversation,
    *,
    stt: ScriptedStt | None = None,
    tts: ToneTts | None = None,
    settings: VoiceSettings | None = None,
    vad_floor_dbfs: float = -50.0,
    sample_rate: int = 16000,
    session_cls: type[VoiceAgentSession] = VoiceAgentSession,
    media_cls: type[FakeMedia] = FakeMedia,
) -> tuple[FakeMedia, list[DomainEvent], ScriptedStt]:
    stt = stt or ScriptedStt(["I want sales"], delay_s=0.1)
    tts = tts or ToneTts(sample_rate=sample_rate, ms_per_char=20, delay_s=0.03)
    media = media_cls(script, sample_rate=sample_rate)  # type: ignore[arg-type]
    bus = EventBus()

    async def main() -> list[DomainEvent]:
        queue = bus.subscribe()
        engines = Engines(
            stt,
            tts,
            ScriptedAgent(conversation),
            lambda rate: EnergyVad(rate, vad_floor_dbfs, vad_floor_dbfs + 20),
        )
        session = session_cls(media, engines, settings or _settings(), bus, "call-1")
        await session.run()
        events = []
        while not queue.empty():
            events.append(queue.get_nowait())
        return events

    return media, run_virtual(main), stt


def _turns(events: list[DomainEvent], speaker: str) -> list[TurnEvent]:
    return [e for e in events if isinstance(e, TurnEvent) and e.speaker == speaker]


@pytest.mark.parametrize("rate", [16000, 8000])
def test_turn_latency_with_speculative_stt(rate: int) -> None:
    conversation = ScriptedConversation(
        [[AgentText("Sales, right away."), AgentAction("transfer", "201")]]
    )
    media, events, stt = _run(
        [Silence(200), Speech(600), Silence(1500)], conversation, sample_rate=rate
    )
    caller = _turns(events, "caller")
    agent = _turns(events, "agent")
    assert [t.text for t in caller] == ["I want sales"]
    assert conversation.asked == ["I want sales"]
    assert conversation.prepared == ["I want sales"]  # from the speculative transcript
    assert len(agent) == 1 and not agent[0].interrupted
    timings = agent[0].timings
    # end of turn 280 ms after the last voiced sample, give or take one VAD window
    assert 280 - 1e-6 <= timings["endpointing_ms"] <= 280 + WINDOW_MS
    # the speculative decode started at the first silent window and finished before the turn ended
    assert timings["stt_ms"] == pytest.approx(0.0, abs=1e-6)
    assert timings["stt_decode_ms"] == pytest.approx(100.0)
    assert stt.calls and stt.calls[0] > 0.6 * 16000  # the utterance, resampled to 16 kHz
    assert timings["agent_ms"] == pytest.approx(0.0, abs=1e-6)
    assert timings["tts_first_chunk_ms"] == pytest.approx(30.0)
    assert timings["overhead_ms"] == pytest.approx(0.0, abs=1e-6)
    assert agent[0].latency_ms == pytest.approx(timings["endpointing_ms"] + 30.0)
    # the first agent frame reaches the wire within one pacing tick of being queued
    last_voice = media.speech_ends[0]
    first_wire = media.wire[0].at
    assert 0 <= (first_wire - last_voice) * 1000 - agent[0].latency_ms <= 20 + 1e-6
    actions = [e for e in events if isinstance(e, ActionRequestedEvent)]
    assert [(a.action, a.target) for a in actions] == [("transfer", "201")]
    # all of the reply was played: 18 characters at 20 ms each
    assert media.agent_audio_ms() == pytest.approx(18 * 20, abs=20)
    assert conversation.heard_log == [("Sales, right away.", False)]


def test_without_speculative_stt_the_decode_is_on_the_clock() -> None:
    conversation = ScriptedConversation([[AgentText("Okay.")]])
    settings = _settings(speculative_stt=False)
    _, events, stt = _run([Speech(500), Silence(1500)], conversation, settings=settings)
    timings = _turns(events, "agent")[0].timings
    assert timings["stt_ms"] == pytest.approx(100.0)
    assert len(stt.calls) == 1


def test_resumed_speech_discards_the_speculative_decode() -> None:
    conversation = ScriptedConversation([[AgentText("Okay.")]])
    stt = ScriptedStt(["first half", "whole sentence"], delay_s=0.05)
    _, events, _ = _run(
        [Speech(400), Silence(150), Speech(400), Silence(1500)], conversation, stt=stt
    )
    caller = _turns(events, "caller")
    assert [t.text for t in caller] == ["whole sentence"]
    # the second decode covered both halves of the utterance
    assert stt.calls[1] > stt.calls[0]


def test_turn_ends_on_the_clock_when_frames_stop() -> None:
    conversation = ScriptedConversation([[AgentText("Okay.")]])
    _media, events, _ = _run([Speech(500), NoFrames(2000)], conversation)
    caller = _turns(events, "caller")
    agent = _turns(events, "agent")
    assert len(caller) == 1 and len(agent) == 1
    # no frame arrived after the speech, yet the turn ended 280 ms after it on the timer
    assert agent[0].timings["endpointing_ms"] == pytest.approx(280.0, abs=1.0)


def test_short_noise_is_not_a_turn() -> None:
    conversation = ScriptedConversation([[AgentText("Okay.")]])
    _, events, stt = _run([Speech(60), Silence(1500)], conversation)
    assert _turns(events, "caller") == []
    assert stt.calls == []


def test_barge_in_stops_playback_within_two_frames_and_memory_keeps_what_was_heard() -> None:
    greeting = "Thank you for calling. " + "We have many options for you today. " * 6
    conversation = ScriptedConversation([[AgentText("Okay, billing.")]], greeting_text=greeting)
    media, events, _ = _run([Silence(1500), Speech(500), Silence(2000)], conversation)
    onset = media.speech_onsets[0]
    # playback was cleared within two 20 ms frames of the caller starting to speak
    assert media.clears and 0 <= media.clears[0] - onset <= 0.040 + 1e-9
    after = [w.at for w in media.wire if w.real and onset < w.at < onset + 0.3]
    assert all(at - onset <= 0.040 + 1e-9 for at in after)
    agent = _turns(events, "agent")
    assert agent[0].interrupted
    heard, interrupted = conversation.heard_log[0]
    assert interrupted and heard and greeting.startswith(heard.split()[0])
    assert len(heard) < len(greeting) / 2
    # what was heard matches the audio that reached the wire (20 ms per character)
    played_chars = (onset - media.wire[0].at) * 1000 / 20
    assert abs(len(heard) - played_chars) < 40
    assert agent[1].text == "Okay, billing." and not agent[1].interrupted


def test_without_fast_barge_in_the_vad_window_decides() -> None:
    greeting = "Thank you for calling. " + "We have many options for you today. " * 6
    conversation = ScriptedConversation([[AgentText("Okay.")]], greeting_text=greeting)
    media, _, _ = _run(
        [Silence(1540), Speech(500), Silence(2000)],
        conversation,
        settings=_settings(fast_barge_in=False),
    )
    onset = media.speech_onsets[0]
    # speech starts at 1540 ms; the VAD window 1536-1568 ms is complete with the 1580 ms frame
    assert media.clears[0] - onset == pytest.approx(0.040, abs=1e-6)


def test_fast_barge_in_pauses_on_the_first_loud_frame() -> None:
    greeting = "Thank you for calling. " + "We have many options for you today. " * 6
    conversation = ScriptedConversation([[AgentText("Okay.")]], greeting_text=greeting)
    media, _, _ = _run([Silence(1540), Speech(500), Silence(2000)], conversation)
    onset = media.speech_onsets[0]
    # paused as the first frame of speech arrives (1560 ms), not at the end of a VAD window
    assert media.clears[0] - onset == pytest.approx(0.020, abs=1e-6)


def test_echo_of_the_agent_neither_pauses_nor_interrupts_it() -> None:
    greeting = "Thank you for calling, please listen carefully to the options."
    conversation = ScriptedConversation([], greeting_text=greeting)
    # the agent plays at about -13 dBFS; its echo comes back 20 dB down, under the VAD's floor
    media, events, stt = _run(
        [Silence(200), Speech(1500, amplitude=0.03), Silence(2000)],
        conversation,
        vad_floor_dbfs=-30.0,
    )
    assert media.clears == []
    assert not _turns(events, "agent")[0].interrupted
    assert stt.calls == []


def test_a_click_during_playback_pauses_then_resumes_without_losing_audio() -> None:
    greeting = "Thank you for calling, please listen carefully to the options."
    conversation = ScriptedConversation([], greeting_text=greeting)
    # the click fits inside one 32 ms VAD window (they start at 0 ms: 640 = 20 windows)
    media, events, stt = _run([Silence(640), Speech(20), Silence(3000)], conversation)
    agent = _turns(events, "agent")
    assert len(agent) == 1 and not agent[0].interrupted
    assert media.clears, "the click paused playback at once"
    assert media.agent_audio_ms() == pytest.approx(len(greeting) * 20, abs=40)
    assert stt.calls == []


def test_dtmf_is_published_and_answered() -> None:
    conversation = ScriptedConversation([])
    _, events, _ = _run([Silence(200), Dtmf("1"), Silence(2000)], conversation)
    assert [e.digit for e in events if isinstance(e, DtmfEvent)] == ["1"]
    actions = [e for e in events if isinstance(e, ActionRequestedEvent)]
    assert [(a.action, a.target, a.params) for a in actions] == [
        ("transfer", "201", {"digit": "1"})
    ]


def test_speaking_events_bracket_each_side() -> None:
    conversation = ScriptedConversation([[AgentText("Okay.")]])
    _, events, _ = _run([Speech(500), Silence(1500)], conversation)
    speaking = [(e.speaker, e.speaking) for e in events if isinstance(e, SpeakingEvent)]
    assert speaking == [("caller", True), ("caller", False), ("agent", True), ("agent", False)]


def test_session_ends_when_media_ends() -> None:
    conversation = ScriptedConversation([], greeting_text="Hello.")
    media = FakeMedia([Silence(100)], linger_ms=100)
    bus = EventBus()

    async def main() -> None:
        engines = Engines(
            ScriptedStt(), ToneTts(), ScriptedAgent(conversation), lambda r: EnergyVad(r)
        )
        session = VoiceAgentSession(media, engines, _settings(), bus, "c")
        await asyncio.wait_for(session.run(), 5)

    run_virtual(main)
    assert media.closed


@pytest.mark.parametrize(("decode_s", "expected_ms"), [(0.1, 160.0), (0.2, 240.0)])
def test_a_finished_sentence_ends_the_turn_sooner(decode_s: float, expected_ms: float) -> None:
    # speech ends at 640 ms, on a window edge; the first silent window (640-672 ms) is complete
    # with the frame that arrives at 680 ms, where the speculative decode starts. When its
    # transcript reads as a whole sentence, 160 ms of silence are enough (or its arrival, if later)
    conversation = ScriptedConversation([[AgentText("Okay.")]])
    stt = ScriptedStt(["I want sales."], delay_s=decode_s)
    _, events, _ = _run([Speech(640), Silence(1500)], conversation, stt=stt)
    timings = _turns(events, "agent")[0].timings
    assert timings["endpointing_ms"] == pytest.approx(expected_ms, abs=1e-6)
    assert timings["stt_ms"] == pytest.approx(0.0, abs=1e-6)


def test_an_unfinished_sentence_waits_the_full_silence() -> None:
    conversation = ScriptedConversation([[AgentText("Okay.")]])
    stt = ScriptedStt(["I want to talk to..."], delay_s=0.05)
    _, events, _ = _run([Speech(640), Silence(1500)], conversation, stt=stt)
    assert _turns(events, "agent")[0].timings["endpointing_ms"] == pytest.approx(280.0, abs=1e-6)


def test_a_reply_cut_by_the_end_of_the_call_is_still_recorded() -> None:
    greeting = "Thank you for calling. " + "We have many options for you today. " * 6
    conversation = ScriptedConversation([], greeting_text=greeting)
    media = FakeMedia([Silence(1000)], linger_ms=0)
    bus = EventBus()

    async def main() -> list[DomainEvent]:
        queue = bus.subscribe()
        engines = Engines(
            ScriptedStt(),
            ToneTts(ms_per_char=20),
            ScriptedAgent(conversation),
            lambda r: EnergyVad(r),
        )
        await VoiceAgentSession(media, engines, _settings(), bus, "c").run()
        return [queue.get_nowait() for _ in range(queue.qsize())]

    events = run_virtual(main)
    [agent] = _turns(events, "agent")
    assert agent.interrupted and agent.text and len(agent.text) < len(greeting)
    assert conversation.heard_log == [(agent.text, True)]


class FailingStt(ScriptedStt):
    async def transcribe(self, audio: object, language: str | None = None) -> object:  # type: ignore[override]
        raise ProviderError("fake-stt", "server down", retryable=True)


class FlakyTts(ToneTts):
    async def synthesize(self, text: str, language: str | None = None):  # type: ignore[no-untyped-def,override]
        if "broken" in text:
            raise ProviderError("fake-tts", "cannot say that")
        async for chunk in super().synthesize(text, language):
            yield chunk


def test_a_failed_recognition_ends_the_turn_without_a_reply() -> None:
    conversation = ScriptedConversation([[AgentText("Okay.")]])
    _, events, _ = _run([Speech(500), Silence(1500)], conversation, stt=FailingStt())
    assert [t.text for t in _turns(events, "caller")] == [""]
    assert _turns(events, "agent") == [] and conversation.asked == []


def test_a_clause_that_fails_to_synthesise_is_skipped() -> None:
    conversation = ScriptedConversation([[AgentText("First part. A broken clause. Last part.")]])
    tts = FlakyTts(sample_rate=16000, ms_per_char=20, delay_s=0.01)
    media, events, _ = _run([Speech(500), Silence(2500)], conversation, tts=tts)
    [agent] = _turns(events, "agent")
    assert not agent.interrupted and agent.text == "First part. Last part."
    assert media.agent_audio_ms() == pytest.approx((11 + 10) * 20, abs=40)


def test_the_answer_starts_in_the_callback_that_ends_the_turn() -> None:
    # no queue hop and no task wake-up between the end of the turn and the reply: on a busy
    # machine one wake-up can wait a whole GIL switch interval behind a worker thread
    started_inside: list[bool] = []

    class Probe(VoiceAgentSession):
        depth = 0

        def _end_of_turn(self, last_voice_at: float) -> None:
            self.depth += 1
            try:
                super()._end_of_turn(last_voice_at)
            finally:
                self.depth -= 1

        def _start_reply(self, outputs: Any, turn: UserTurnFrame | None) -> None:
            if turn is not None:
                started_inside.append(self.depth > 0)
            super()._start_reply(outputs, turn)

    conversation = ScriptedConversation([[AgentText("Okay.")]])
    _, events, _ = _run([Speech(500), Silence(1500)], conversation, session_cls=Probe)
    assert started_inside == [True]  # the speculative transcript was in hand
    speaking = [(e.speaker, e.speaking) for e in events if isinstance(e, SpeakingEvent)]
    assert speaking == [("caller", True), ("caller", False), ("agent", True), ("agent", False)]


def test_a_frame_that_finds_another_waiting_queues_behind_it() -> None:
    conversation = ScriptedConversation([])
    bus = EventBus()
    queue = bus.subscribe()

    async def main() -> list[object]:
        engines = Engines(
            ScriptedStt(), ToneTts(), ScriptedAgent(conversation), lambda r: EnergyVad(r)
        )
        session = VoiceAgentSession(FakeMedia([]), engines, _settings(), bus, "c", greet=False)
        session._frames.put(DtmfFrame("1", 0.0))
        session._dispatch(SpeechStoppedFrame(0.0))
        assert queue.empty()  # not handled ahead of the DTMF
        return [session._frames.get_nowait(), session._frames.get_nowait()]

    first, second = run_virtual(main)
    assert isinstance(first, DtmfFrame) and isinstance(second, SpeechStoppedFrame)


def test_with_a_receiver_the_barge_in_clear_happens_while_its_frame_is_handed_over() -> None:
    # the AudioSocket server calls the receiver from data_received: clear() then happens in
    # the same event-loop callback as the caller frame, before the paced writer's next write
    greeting = "Thank you for calling. " + "We have many options for you today. " * 6
    conversation = ScriptedConversation([[AgentText("Okay.")]], greeting_text=greeting)
    media, events, _ = _run(
        [Silence(1540), Speech(500), Silence(2000)], conversation, media_cls=ReceiverMedia
    )
    assert isinstance(media, ReceiverMedia)
    assert media.receivers_set == [True]  # set once, at the start
    onset = media.speech_onsets[0]
    assert media.clears[0] - onset == pytest.approx(0.020, abs=1e-6)
    first = media.clears_during[0]
    assert isinstance(first, AudioIn) and first.received_at == media.clears[0]
    # and the whole call still works through the receiver: the turn is answered
    assert [t.text for t in _turns(events, "caller")] == ["I want sales"]
    assert [t.text for t in _turns(events, "agent")][-1] == "Okay."


PROMPT = Path("/usr/share/asterisk/sounds/en/demo-congrats.wav")  # 8 kHz speech, ~30 s


def _silero_run(wait_ms: float, calls: int, pcm: bytes) -> list[list[TurnEvent]]:
    """``calls`` sessions on one loop, each hearing the same recorded speech, with Silero."""
    settings = _settings(speculative_stt=False)
    settings.vad.engine = "silero"
    settings.vad.batch_wait_ms = wait_ms

    async def main() -> list[list[TurnEvent]]:
        bus = EventBus()
        queue = bus.subscribe()
        sessions = []
        for index in range(calls):
            media = FakeMedia([Silence(300), Recorded(pcm), Silence(1500)], sample_rate=8000)
            engines = Engines(
                ScriptedStt(["hello"] * 10, delay_s=0.05),
                ToneTts(sample_rate=8000, ms_per_char=20, delay_s=0.03),
                ScriptedAgent(ScriptedConversation([[AgentText("Hi.")]] * 10)),
                vad_factory(settings),
            )
            sessions.append(VoiceAgentSession(media, engines, settings, bus, f"call-{index}"))
        await asyncio.gather(*(s.run() for s in sessions))
        events = []
        while not queue.empty():
            events.append(queue.get_nowait())
        return [
            [e for e in _turns(events, "caller") if e.call_id == f"call-{index}"]
            for index in range(calls)
        ]

    return run_virtual(main)


def test_silero_windows_of_concurrent_calls_are_scored_in_shared_batches() -> None:
    require(PROMPT.is_file(), "Asterisk's recorded prompts (Debian asterisk-core-sounds-en-wav)")
    with wave.open(str(PROMPT)) as wav:
        assert wav.getframerate() == 8000
        pcm = wav.readframes(wav.getnframes())
    batch = shared_silero_stream(8000)._batch
    runs, windows = batch.runs, batch.windows_scored
    alone = _silero_run(0, 1, pcm)[0]
    per_call = batch.windows_scored - windows
    assert batch.runs - runs == per_call > 100  # one model run per window
    assert alone, "Silero heard no turn in the recorded prompt"
    runs, windows = batch.runs, batch.windows_scored
    together = _silero_run(5, 3, pcm)
    assert batch.windows_scored - windows == 3 * per_call
    assert batch.runs - runs <= per_call  # three calls' windows shared each run
    for turns in together:
        # the same turns, ended at most the batch's wait later
        assert len(turns) == len(alone)
        for got, want in zip(turns, alone, strict=True):
            assert got.ended_at - want.ended_at == pytest.approx(0.0, abs=0.006)
