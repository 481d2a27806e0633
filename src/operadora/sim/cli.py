"""``operadora sim``: run the ARI-compatible PBX simulator standalone."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from operadora.config import ConfigError, SimSettings


def register(app: typer.Typer) -> None:
    app.command("sim")(sim_command)


def sim_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file (.toml or .yaml); env OPERADORA_CONFIG."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (sim.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (sim.port); 0 picks a free one.")] = None,
    username: Annotated[str | None, typer.Option(help="ARI user name (sim.username).")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="ARI password (sim.password, env OPERADORA_SIM__PASSWORD)."),
    ] = None,
    generate_password: Annotated[
        bool, typer.Option("--generate-password", help="Make up a password and print it.")
    ] = False,
    dialplan: Annotated[
        Path | None, typer.Option(help="extensions.conf to run (sim.dialplan_file).")
    ] = None,
    sip_port: Annotated[
        int | None,
        typer.Option(help="UDP port for SIP calls, e.g. from sipp (sim.sip_port); 0 = any."),
    ] = None,
) -> None:
    """Run the PBX simulator (ARI REST + events WebSocket) until interrupted."""
    from rich.console import Console

    from operadora.cli import settings_or_exit, setup_logging

    console = Console()
    settings = settings_or_exit(config)
    setup_logging(settings)
    updates: dict[str, object] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    if username is not None:
        updates["username"] = username
    if dialplan is not None:
        updates["dialplan_file"] = dialplan
    if sip_port is not None:
        updates["sip_port"] = sip_port
    generated = None
    if password is not None:
        updates["password"] = SecretStr(password)
    elif generate_password:
        generated = secrets.token_urlsafe(18)
        updates["password"] = SecretStr(generated)
    merged = settings.sim.model_copy(update=updates)
    try:
        asyncio.run(_serve(merged, console, generated))
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc} (or pass --password / --generate-password)")
        raise typer.Exit(2) from None


async def _serve(settings: SimSettings, console: object, generated: str | None) -> None:
    from rich.console import Console

    from operadora.sim.server import start_simulator

    assert isinstance(console, Console)
    sim = await start_simulator(settings)
    console.print(f"[green]PBX simulator[/green] ARI at [bold]{sim.ari_url}[/bold]")
    console.print(
        f"events: ws://{sim.host}:{sim.port}/ari/events?app=<app>&subscribeAll=true"
        f"  user: [bold]{sim.username}[/bold]"
    )
    if sim.sip_port is not None:
        console.print(f"SIP (UDP): sip:{sim.host}:{sim.sip_port}")
    if generated is not None:
        console.print(f"password: [bold]{generated}[/bold]")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.close()
        console.print("simulator stopped")
