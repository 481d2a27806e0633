from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from operadora.sim.callers.voices import CALLER_VOICES, CallerVoice
from operadora.voice.engines import TextToSpeech

pytestmark = pytest.mark.unit


class NamedVoice:
    name = "named"

    def __init__(self, voice: str | None, made: list[str | None], rate: int = 22050) -> None:
        self.voice = voice
        self._rate = rate
        made.append(voice)

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        yield f"{self.voice}:{language}:{text}".encode()


async def speak(tts: CallerVoice, text: str, language: str) -> bytes:
    return b"".join([chunk async for chunk in tts.synthesize(text, language)])


async def test_each_language_gets_its_caller_voice_made_once() -> None:
    made: list[str | None] = []

    def factory(voice: str | None) -> TextToSpeech:
        return NamedVoice(voice, made)

    tts = CallerVoice(factory)
    assert await speak(tts, "hola", "es") == f"{CALLER_VOICES['es']}:es:hola".encode()
    assert await speak(tts, "hi", "en") == f"{CALLER_VOICES['en']}:en:hi".encode()
    await speak(tts, "again", "en")
    assert made.count(CALLER_VOICES["en"]) == 2  # one to learn the rate, one cached for speech
    assert made.count(CALLER_VOICES["es"]) == 1
    assert CALLER_VOICES["en"] != "en-us" and CALLER_VOICES["es"] != "es"  # not the agent's


async def test_a_persona_voice_overrides_the_language_default() -> None:
    made: list[str | None] = []
    tts = CallerVoice(lambda v: NamedVoice(v, made), voice="en-us+f3")
    assert await speak(tts, "hi", "es") == b"en-us+f3:es:hi"
    assert set(made) == {"en-us+f3"}


async def test_voices_must_agree_on_the_sample_rate() -> None:
    made: list[str | None] = []
    tts = CallerVoice(lambda v: NamedVoice(v, made, 22050 if v == CALLER_VOICES["en"] else 16000))
    with pytest.raises(ValueError, match="sample rate"):
        await speak(tts, "hola", "es")
