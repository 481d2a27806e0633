"""Personas against a scripted fake agent on an in-memory line, in real (short) time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from operadora.sim.callers.audio import CallerAudio, resample, rms_dbfs
from operadora.sim.callers.persona import CallerEvent, PersonaRun
from operadora.sim.callers.scenario import parse_persona
from operadora.voice.engines import Float32Audio, Transcript

pytestmark = pytest.mark.unit

RATE = 8000
FRAME = RATE // 50 * 2


def tone(seconds: float, rate: int, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2").tobytes()


class ToneTTS:
    """0.1 s of tone per word, at 16 kHz (so the persona must resample to the line)."""

    name = "tone"

    def __init__(self) -> None:
        self.texts: list[tuple[str, str | None]] = []

    @property
    def sample_rate(self) -> int:
        return 16000

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        self.texts.append((text, language))
        for _ in text.split():
            yield tone(0.1, 16000)


class ScriptedSTT:
    name = "scripted"

    def __init__(self, texts: list[str]) -> None:
        self.texts = list(texts)
        self.durations: list[float] = []

    async def transcribe(self, audio: Float32Audio, language: str | None = None) -> Transcript:
        self.durations.append(len(audio) / 16000)
        return Transcript(self.texts.pop(0) if self.texts else "", language)


class FakeAgentLine:
    """A line whose far end greets, then answers each caller utterance with a tone reply."""

    def __init__(self, audio: CallerAudio, greet_s: float = 0.2, reply_s: float = 0.2) -> None:
        self.audio = audio
        self.greet_s = greet_s
        self.reply_s = reply_s
        self.ended = asyncio.Event()
        self.dtmf: list[tuple[str, int]] = []
        self.hung_up = False
        self.caller_utterances = 0
        self.caller_audio = bytearray()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        out = bytearray(tone(self.greet_s, RATE, 300))
        voiced = False
        quiet = 0
        while not self.ended.is_set():
            frame = self.audio.next_frame()
            if frame is not None:
                self.caller_audio += frame
                if rms_dbfs(frame) > -40:
                    voiced, quiet = True, 0
                elif voiced:
                    quiet += 1
                    if quiet == 5:  # 100 ms of silence: the caller's turn ended
                        voiced = False
                        self.caller_utterances += 1
                        out += tone(self.reply_s, RATE, 500)
            if out:
                self.audio.hear(bytes(out[:FRAME]))
                del out[:FRAME]
            else:
                self.audio.hear(bytes(FRAME))
            await asyncio.sleep(0.02)

    async def send_dtmf(self, digit: str, duration_ms: int) -> None:
        self.dtmf.append((digit, duration_ms))

    async def hangup(self) -> None:
        self.hung_up = True
        self.ended.set()

    async def wait_ended(self) -> None:
        await self.ended.wait()

    async def far_end_hangs_up(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        self.ended.set()

    async def close(self) -> None:
        self.ended.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def persona(steps: list[object], language: str = "en") -> object:
    return parse_persona(
        {"name": "t", "caller_id": "Tess <100>", "language": language, "steps": steps}
    )


async def test_persona_converses_presses_keys_and_hangs_up() -> None:
    audio = CallerAudio(RATE)
    line = FakeAgentLine(audio)
    tts = ToneTTS()
    stt = ScriptedSTT(["Welcome to Acme.", "We open at nine."])
    events: list[CallerEvent] = []
    p = persona(
        [
            {"listen": {"silence_ms": 150, "timeout_s": 3}},
            {"dtmf": {"digits": "1#", "gap_ms": 0}},
            {"say": "When do you open"},
            {"listen": {"silence_ms": 150, "timeout_s": 3}},
            {"hangup": {}},
        ],
        language="es",
    )
    run = PersonaRun(p, audio, line, tts, stt, on_event=events.append)  # type: ignore[arg-type]
    report = await asyncio.wait_for(run.run(), 10)
    await line.close()

    assert report.ended_by == "caller" and line.hung_up
    assert report.steps_done == 5
    assert report.digits_sent == "1#" and line.dtmf == [("1", 100), ("#", 100)]
    assert tts.texts == [("When do you open", "es")]
    assert [(t.speaker, t.text) for t in report.transcript] == [
        ("agent", "Welcome to Acme."),
        ("caller", "When do you open"),
        ("agent", "We open at nine."),
    ]
    assert line.caller_utterances == 1
    # 4 words x 0.1 s, resampled 16 kHz -> 8 kHz, went out on the line
    voiced = sum(
        1
        for i in range(0, len(line.caller_audio), FRAME)
        if rms_dbfs(bytes(line.caller_audio[i : i + FRAME])) > -40
    )
    assert voiced == pytest.approx(20, abs=1)
    assert stt.durations[0] == pytest.approx(0.2, abs=0.03)
    # the caller measured how long the agent took to answer (reply after 100 ms of silence)
    assert len(report.response_ms) == 1
    assert 60 <= report.response_ms[0] <= 600
    kinds = [e.kind for e in events]
    assert kinds.count("heard") == 2 and kinds.count("said") == 1 and kinds[-1] == "ended"


async def test_listen_for_a_phrase_waits_through_other_turns() -> None:
    audio = CallerAudio(RATE)
    line = FakeAgentLine(audio)
    stt = ScriptedSTT(["Hello.", "Our hours are nine to five."])
    p = persona(
        [
            {"listen": {"silence_ms": 120, "timeout_s": 3}},
            {"say": "hours"},
            {"listen": {"phrase": "NINE TO FIVE", "silence_ms": 120, "timeout_s": 3}},
        ]
    )
    report = await asyncio.wait_for(PersonaRun(p, audio, line, ToneTTS(), stt).run(), 10)  # type: ignore[arg-type]
    await line.close()
    assert report.listen_timeouts == 0
    assert report.transcript[-1].text == "Our hours are nine to five."
    assert report.ended_by == "caller"  # the script ended, so the caller hung up


async def test_listen_times_out_when_the_agent_never_speaks() -> None:
    audio = CallerAudio(RATE)
    line = FakeAgentLine(audio, greet_s=0)
    p = persona([{"listen": {"timeout_s": 0.3}}, {"hangup": {}}])
    report = await asyncio.wait_for(PersonaRun(p, audio, line, ToneTTS()).run(), 5)  # type: ignore[arg-type]
    await line.close()
    assert report.listen_timeouts == 1
    assert report.steps_done == 2
    assert report.transcript == []


async def test_hangup_mid_sentence_cuts_the_audio() -> None:
    audio = CallerAudio(RATE)
    line = FakeAgentLine(audio, greet_s=0)
    words = "one two three four five six seven eight nine ten"
    p = persona([{"say": {"text": words, "hangup_after_ms": 300}}])
    report = await asyncio.wait_for(PersonaRun(p, audio, line, ToneTTS()).run(), 5)  # type: ignore[arg-type]
    await line.close()
    assert line.hung_up and report.ended_by == "caller"
    sent_s = len(line.caller_audio) / 2 / RATE
    assert 0.2 <= sent_s <= 0.6  # not the whole second of speech
    said = report.transcript[0]
    assert said.interrupted and said.text.endswith("—")
    assert said.text.startswith("one two") and "ten" not in said.text


async def test_far_end_hangup_stops_the_script() -> None:
    audio = CallerAudio(RATE)
    line = FakeAgentLine(audio, greet_s=0)
    p = persona([{"wait": 5}, {"say": "never said"}])
    hang = asyncio.create_task(line.far_end_hangs_up(0.1))
    tts = ToneTTS()
    report = await asyncio.wait_for(PersonaRun(p, audio, line, tts).run(), 3)  # type: ignore[arg-type]
    await hang
    await line.close()
    assert report.ended_by == "far_end"
    assert report.steps_done == 0
    assert tts.texts == [] and not line.hung_up


async def test_a_broken_tts_ends_the_caller_with_an_error() -> None:
    class BrokenTTS(ToneTTS):
        async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
            raise RuntimeError("no voice")
            yield b""

    audio = CallerAudio(RATE)
    line = FakeAgentLine(audio, greet_s=0)
    report = await asyncio.wait_for(
        PersonaRun(persona([{"say": "hi"}]), audio, line, BrokenTTS()).run(),
        3,  # type: ignore[arg-type]
    )
    await line.close()
    assert report.ended_by == "error" and report.error == "RuntimeError: no voice"
    assert line.hung_up


def test_caller_audio_frames_speech_then_silence_or_nothing() -> None:
    audio = CallerAudio(RATE)
    audio.speak(b"\x01\x00" * 250)  # 250 samples: one full frame + a padded one
    first, second, third = audio.next_frame(), audio.next_frame(), audio.next_frame()
    assert first == b"\x01\x00" * 160
    assert second == b"\x01\x00" * 90 + bytes(140)
    assert third == bytes(FRAME)
    assert audio.speech_ended_at is not None
    quiet = CallerAudio(RATE, send_silence=False)
    assert quiet.next_frame() is None


async def test_tracker_ends_a_turn_on_the_clock_when_frames_stop() -> None:
    audio = CallerAudio(RATE)
    audio.hear(tone(0.04, RATE)[:FRAME])
    audio.hear(tone(0.04, RATE)[FRAME:])
    # no more frames at all (silence suppression): the turn still ends
    utterance = await asyncio.wait_for(audio.tracker.wait_turn_end(0.1, 2.0), 1)
    assert utterance is not None and utterance.duration_s == pytest.approx(0.04)
    assert await audio.tracker.wait_turn_end(0.1, 0.05) is None


def test_resample_keeps_duration() -> None:
    pcm = tone(0.5, 16000)
    assert len(resample(pcm, 16000, 8000)) == pytest.approx(len(pcm) // 2, abs=4)
    assert resample(pcm, 8000, 8000) is pcm
