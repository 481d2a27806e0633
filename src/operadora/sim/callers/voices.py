"""The voices simulated callers speak with: the voice engineer's TTS engines, with a caller
voice per language that differs from the agent's, so a listener can tell them apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from operadora.voice.engines import TextToSpeech

# espeak-ng voices for callers; the agent speaks the plain language voices ("en-us", "es")
CALLER_VOICES = {"en": "en-us+m3", "es": "es-419"}

TtsFactory = Callable[[str | None], TextToSpeech]


def espeak_factory(rate_wpm: int = 150) -> TtsFactory:
    def make(voice: str | None) -> TextToSpeech:
        from operadora.voice.tts.espeak import EspeakTts

        return EspeakTts(voice, rate_wpm)

    return make


class CallerVoice:
    """A :class:`TextToSpeech` that speaks each language in its caller voice, or in ``voice``."""

    name = "caller-voice"

    def __init__(self, factory: TtsFactory, voice: str | None = None) -> None:
        self._factory = factory
        self._voice = voice
        self._engines: dict[str | None, TextToSpeech] = {}
        self._rate = factory(voice or CALLER_VOICES["en"]).sample_rate

    @property
    def sample_rate(self) -> int:
        return self._rate

    def _engine(self, language: str | None) -> TextToSpeech:
        voice = self._voice or CALLER_VOICES.get((language or "en")[:2])
        engine = self._engines.get(voice)
        if engine is None:
            engine = self._engines[voice] = self._factory(voice)
        return engine

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        engine = self._engine(language)
        if engine.sample_rate != self._rate:
            raise ValueError(f"caller voices disagree on the sample rate ({engine.sample_rate})")
        async for chunk in engine.synthesize(text, language):
            yield chunk
