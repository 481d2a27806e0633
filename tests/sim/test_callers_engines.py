"""A persona with the real offline engines: espeak-ng speaks, Whisper tiny.en listens."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from operadora.sim.callers.audio import CallerAudio, resample, rms_dbfs
from operadora.sim.callers.persona import PersonaRun
from operadora.sim.callers.scenario import parse_persona
from operadora.sim.callers.voices import CallerVoice, espeak_factory

pytestmark = pytest.mark.engines

RATE = 8000
FRAME = RATE // 50 * 2


class SpeakingAgentLine:
    """A far end that says one sentence (espeak-ng, agent voice) on a phone line, then waits."""

    def __init__(self, audio: CallerAudio, pcm: bytes) -> None:
        self.audio = audio
        self.out = bytearray(pcm)
        self.sent = bytearray()
        self.ended = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self.ended.is_set():
            frame = self.audio.next_frame()
            if frame:
                self.sent += frame
            chunk = bytes(self.out[:FRAME]).ljust(FRAME, b"\0")
            del self.out[:FRAME]
            self.audio.hear(chunk)
            await asyncio.sleep(0.02)

    async def send_dtmf(self, digit: str, duration_ms: int) -> None: ...

    async def hangup(self) -> None:
        self.ended.set()

    async def wait_ended(self) -> None:
        await self.ended.wait()

    async def close(self) -> None:
        self.ended.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_persona_hears_a_phrase_through_whisper_and_answers_with_espeak() -> None:
    from operadora.voice.stt.whisper import WhisperStt, bundled_tiny_en
    from operadora.voice.tts.espeak import EspeakTts

    agent_voice = EspeakTts("en-us", 160)
    said = b"".join(
        [c async for c in agent_voice.synthesize("We are open Monday to Friday.", "en")]
    )
    audio = CallerAudio(RATE)
    line = SpeakingAgentLine(audio, resample(said, agent_voice.sample_rate, RATE))
    stt = WhisperStt(bundled_tiny_en())
    persona = parse_persona(
        {
            "name": "t",
            "caller_id": "1",
            "steps": [
                {"listen": {"phrase": "monday", "timeout_s": 15}},
                {"say": "Thank you."},
                {"hangup": {}},
            ],
        }
    )
    report = await asyncio.wait_for(
        PersonaRun(persona, audio, line, CallerVoice(espeak_factory()), stt).run(), 60
    )
    await line.close()
    assert report.listen_timeouts == 0 and report.error is None
    heard = report.transcript[0]
    assert heard.speaker == "agent" and "monday" in heard.text.lower()
    assert report.transcript[1].text == "Thank you."
    frames = [bytes(line.sent[i : i + FRAME]) for i in range(0, len(line.sent), FRAME)]
    voiced = sum(1 for f in frames if rms_dbfs(f) > -40)
    assert voiced >= 20  # "Thank you." (over 0.4 s of voice) went out on the line
