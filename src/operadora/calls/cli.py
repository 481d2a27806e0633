"""``operadora serve``: run the engine against the Asterisk servers in the settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from operadora.config import ConfigError, Settings

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger(__name__)


def check_serve_settings(settings: Settings) -> None:
    """Refuse to start on settings that cannot work (one message naming the setting)."""
    if not settings.asterisk.servers:
        raise ConfigError("setting asterisk.servers (OPERADORA_ASTERISK__SERVERS) is empty")
    names = [server.name for server in settings.asterisk.servers]
    if len(set(names)) != len(names):
        raise ConfigError(f"setting asterisk.servers: names must be unique, got {names}")
    for server in settings.asterisk.servers:
        if server.password is None or not server.password.get_secret_value():
            raise ConfigError(
                f"no ARI password for Asterisk server {server.name!r}: set ARI_PASSWORD, "
                "OPERADORA_ASTERISK__SERVERS (a JSON list of servers) or asterisk.servers in "
                "the config file"
            )


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def media_reachability_warning(settings: Settings) -> str | None:
    """A media server on loopback cannot be reached by an Asterisk on another machine."""
    media_host = settings.asterisk.media_address.rpartition(":")[0].strip("[]")
    if settings.media.host in LOOPBACK and media_host not in LOOPBACK:
        return (
            f"the media server listens on {settings.media.host} but Asterisk is told to "
            f"connect to {settings.asterisk.media_address}; set media.host "
            "(OPERADORA_MEDIA__HOST or AI_BACKEND_HOST) to an address Asterisk can reach"
        )
    return None


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM)."""
    from operadora.engine import Engine

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    engine = Engine(settings, with_store=True, with_api=True)
    await engine.start()
    status = engine.status()
    console.print(
        f"[green]media server[/green] AudioSocket on "
        f"{settings.media.host}:{status.media_port}; Asterisk reaches it at "
        f"{settings.asterisk.media_address} ({settings.asterisk.media_format})"
    )
    if (warning := media_reachability_warning(settings)) is not None:
        err_console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(
        f"[green]API and dashboard[/green] http://{settings.api.host}:{settings.api.port}/"
    )
    for server in settings.asterisk.servers:
        console.print(
            f"[green]ARI[/green] {server.name}: {server.url} as {server.username!r}, "
            f"app {server.app!r}"
        )
    try:
        await _report_connections(engine, stop)
    finally:
        console.print("stopping: hanging up live calls")
        await engine.stop()


async def _report_connections(engine: object, stop: asyncio.Event) -> None:
    from operadora.engine import Engine

    assert isinstance(engine, Engine)
    shown: dict[str, bool] = {}
    while not stop.is_set():
        for name, connected in engine.status().servers.items():
            if shown.get(name) != connected and connected:
                console.print(f"[green]connected[/green] to {name}: waiting for calls")
            shown[name] = connected
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        config: Annotated[
            Path | None,
            typer.Option(
                "--config", "-c", help="Config file (.toml or .yaml); env OPERADORA_CONFIG."
            ),
        ] = None,
    ) -> None:
        """Run the engine against the Asterisk servers in the settings (ARI + AudioSocket)."""
        from operadora.cli import settings_or_exit, setup_logging

        settings = settings_or_exit(config)
        setup_logging(settings)
        try:
            check_serve_settings(settings)
        except ConfigError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        from operadora.engine import EngineStartError

        runner = _runner(settings)
        try:
            runner(serve(settings))
        except (OSError, ImportError, ConfigError, EngineStartError) as exc:  # port taken, ...
            err_console.print(f"[red]error:[/red] cannot start the engine: {exc}")
            raise typer.Exit(1) from None


def _runner(settings: Settings) -> Callable[[Coroutine[Any, Any, None]], None]:
    if settings.media.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.run
    return asyncio.run
