"""The ``operadora`` command line.

Each component registers its own commands from its ``cli.py`` module (``register(app)``);
this file only assembles them and holds the commands that belong to no component.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from operadora import __version__
from operadora.config import ConfigError, Settings, load_settings, masked

app = typer.Typer(
    name="operadora",
    help="Operadora: an open-source AI call-center engine for Asterisk.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (.toml or .yaml); env OPERADORA_CONFIG."),
]


def settings_or_exit(config: Path | None = None) -> Settings:
    """Load the settings or exit with the message that names the bad setting."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def version() -> None:
    """Print Operadora's version."""
    console.print(__version__)


config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration, secrets masked."""
    settings = settings_or_exit(config)
    console.print_json(json.dumps(masked(settings)))


def _register_components() -> None:
    # Each component adds its commands; the import list is the whole CLI.
    from operadora.api import cli as api_cli
    from operadora.audiosocket import cli as audiosocket_cli
    from operadora.calls import cli as calls_cli
    from operadora.hardware import cli as hardware_cli
    from operadora.sim import cli as sim_cli
    from operadora.sim.callers import cli as demo_cli
    from operadora.store import cli as store_cli
    from operadora.voice import cli as voice_cli

    for module in (
        audiosocket_cli,
        store_cli,
        api_cli,
        hardware_cli,
        calls_cli,
        voice_cli,
        demo_cli,
        sim_cli,
    ):
        module.register(app)


_register_components()


def main() -> None:
    app()
