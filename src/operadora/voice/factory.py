"""Builds the engines a configuration names; models load once per process and serve every call."""

from __future__ import annotations

import logging
from pathlib import Path

from operadora.config import AgentSettings, SttSettings, TtsSettings, VoiceSettings
from operadora.events import EventBus
from operadora.media import MediaSession, SessionHandler
from operadora.runtime import blas_on_one_thread, freeze_heap
from operadora.voice.agent.llm import LlmAgent, OpenAiChatClient, system_prompt_from_script
from operadora.voice.agent.script import load_script
from operadora.voice.engines import STT_RATE, Agent, SpeechToText, TextToSpeech
from operadora.voice.errors import ProviderError
from operadora.voice.listening import VoiceActivity
from operadora.voice.session import Engines, VadFactory, VoiceAgentSession

log = logging.getLogger(__name__)

WHISPER_BASE = "whisper-base"


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else None


def installed_model(models_dir: Path, name: str) -> Path | None:
    path = models_dir.expanduser() / name
    return path if (path / "model.bin").is_file() else None


def stt_model_path(settings: SttSettings, models_dir: Path, language: str) -> Path:
    """The Whisper model to load: the configured one, else multilingual base for non-English
    languages when it is installed, else the bundled tiny.en."""
    from operadora.voice.stt.whisper import bundled_tiny_en

    if settings.model_path is not None:
        return settings.model_path.expanduser()
    if language != "en":
        base = installed_model(models_dir, WHISPER_BASE)
        if base is None:
            raise ProviderError(
                "whisper",
                f"language {language!r} needs a multilingual model: run "
                f"'operadora models install {WHISPER_BASE}' or set voice.stt.model_path",
            )
        return base
    return bundled_tiny_en()


def build_stt(settings: SttSettings, models_dir: Path, language: str) -> SpeechToText:
    if settings.engine == "openai":
        if not settings.base_url:
            raise ProviderError("openai-stt", "voice.stt.base_url is required")
        from operadora.voice.stt.openai import OpenAiStt

        return OpenAiStt(
            settings.base_url,
            api_key=_secret(settings.api_key),
            model=settings.model,
            timeout_s=settings.timeout_s,
        )
    if settings.engine == "fake":
        from operadora.voice.stt.fake import ScriptedStt

        return ScriptedStt()
    from operadora.voice.stt.whisper import WhisperStt

    return WhisperStt(
        stt_model_path(settings, models_dir, language),
        device=settings.device,
        compute_type=settings.compute_type,
        beam_size=settings.beam_size,
        cpu_threads=settings.cpu_threads,
    )


def build_tts(settings: TtsSettings) -> TextToSpeech:
    if settings.engine == "piper":
        if settings.model_path is None:
            raise ProviderError("piper", "voice.tts.model_path must name a Piper .onnx voice")
        from operadora.voice.tts.piper import PiperTts

        return PiperTts(settings.model_path.expanduser())
    if settings.engine == "http":
        if not settings.base_url:
            raise ProviderError("http-tts", "voice.tts.base_url is required")
        from operadora.voice.tts.http import HttpTts

        return HttpTts(
            settings.base_url,
            api_key=_secret(settings.api_key),
            model=settings.model,
            voice=settings.voice,
            timeout_s=settings.timeout_s,
        )
    if settings.engine == "fake":
        from operadora.voice.tts.fake import ToneTts

        return ToneTts()
    from operadora.voice.tts.espeak import EspeakTts

    return EspeakTts(settings.voice, settings.rate_wpm)


def build_agent(settings: AgentSettings, language: str) -> Agent:
    script = load_script(settings.script, language)
    if settings.engine == "llm":
        if not settings.base_url:
            raise ProviderError("llm", "voice.agent.base_url is required for the LLM agent")
        client = OpenAiChatClient(
            settings.base_url,
            api_key=_secret(settings.api_key),
            model=settings.model,
            temperature=settings.temperature,
            timeout_s=settings.timeout_s,
        )
        return LlmAgent(
            client,
            system_prompt=settings.system_prompt or system_prompt_from_script(script),
            greeting=script.greeting,
            transfer_phrase=script.transfer_phrase,
        )
    from operadora.voice.agent.embeddings import MiniLmEncoder
    from operadora.voice.agent.scripted import ScriptedAgent

    return ScriptedAgent(script, MiniLmEncoder(), settings.intent_threshold)


def vad_factory(settings: VoiceSettings) -> VadFactory:
    from operadora.audio.vad import make_vad
    from operadora.audio.vad_batch import shared_silero_stream

    def make(sample_rate: int) -> VoiceActivity:
        # One Silero model per process: a per-call model costs ~90 ms on the event loop.
        if settings.vad.engine == "silero":
            return shared_silero_stream(sample_rate)
        return make_vad(settings.vad, sample_rate)

    return make


async def warm_up(engines: Engines) -> None:
    """Run each engine once so the first caller does not pay for lazy initialisation."""
    import numpy as np

    await engines.stt.transcribe(np.zeros(STT_RATE // 2, dtype=np.float32), None)
    async for _ in engines.tts.synthesize("Hello.", None):
        pass
    vad = engines.vad(STT_RATE)
    vad.speech_probability(np.zeros(vad.window_samples, np.float32))


def agent_handler(
    engines: Engines,
    settings: VoiceSettings,
    bus: EventBus,
    *,
    language: str | None = None,
    greet: bool = True,
) -> SessionHandler:
    """A media-server handler that runs the voice agent on every connection; the call id is
    the AudioSocket UUID."""

    async def handler(media: MediaSession) -> None:
        session = VoiceAgentSession(
            media, engines, settings, bus, str(media.call_uuid), language=language, greet=greet
        )
        await session.run()

    return handler


def build_engines(settings: VoiceSettings, language: str | None = None) -> Engines:
    language = language or settings.stt.language or settings.agent.language
    engines = Engines(
        stt=build_stt(settings.stt, settings.models_dir, language),
        tts=build_tts(settings.tts),
        agent=build_agent(settings.agent, language),
        vad=vad_factory(settings),
    )
    blas_on_one_thread()  # no BLAS worker spinning between the calls' small products
    freeze_heap()  # what is loaded now lives as long as the process
    return engines
