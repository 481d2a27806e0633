"""``operadora demo``: simulated callers against a local call center, shown live."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    from operadora.cli import ConfigOption, console, err_console, settings_or_exit

    @app.command("demo")
    def demo(
        calls: Annotated[int, typer.Option("--calls", "-n", min=1, help="calls to place")] = 5,
        language: Annotated[str, typer.Option("--language", "-l", help="en, es or both")] = "both",
        keep_running: Annotated[
            bool, typer.Option("--keep-running", help="keep the dashboard up afterwards")
        ] = False,
        rate: Annotated[
            float, typer.Option("--rate", min=0.01, help="calls per second (arrival rate)")
        ] = 0.2,
        poisson: Annotated[
            bool, typer.Option("--poisson", help="random (Poisson) arrivals at that rate")
        ] = False,
        seed: Annotated[int | None, typer.Option("--seed", help="seed for --poisson")] = None,
        persona: Annotated[
            list[str] | None,
            typer.Option("--persona", "-p", help="a persona by name (repeat; see --list)"),
        ] = None,
        scenarios: Annotated[
            list[Path] | None,
            typer.Option("--scenarios", help="more persona YAML files or folders"),
        ] = None,
        caller_stt: Annotated[
            bool, typer.Option("--caller-stt", help="callers also transcribe what they hear")
        ] = False,
        live: Annotated[bool, typer.Option("--live/--no-live", help="live display")] = True,
        direct: Annotated[
            bool,
            typer.Option("--direct", help="skip the PBX simulator: AudioSocket straight in"),
        ] = False,
        directory: Annotated[
            Path | None,
            typer.Option("--directory", help="YAML: who answers, is busy or ignores (extensions)"),
        ] = None,
        chaos: Annotated[
            bool,
            typer.Option("--chaos", help="drop the engine's events WebSocket, duplicate events"),
        ] = False,
        strict: Annotated[
            bool, typer.Option("--strict", help="exit 1 unless every call ends as expected")
        ] = False,
        list_personas: Annotated[
            bool, typer.Option("--list", help="list the personas and exit")
        ] = False,
        config: ConfigOption = None,
    ) -> None:
        """Run a small call center here, offline: simulated callers in English and Spanish
        talk to the AI agent while you watch; ends with outcomes, transcripts and latency."""
        import logging

        from operadora.demo import DemoError, DemoOptions, run_demo
        from operadora.sim.callers.extensions import load_directory
        from operadora.sim.callers.scenario import ScenarioError, load_personas, shipped_personas

        if language not in ("en", "es", "both"):
            err_console.print("[red]error:[/red] --language must be en, es or both")
            raise typer.Exit(2)
        try:
            personas = shipped_personas() + load_personas(scenarios or [])
            who_answers = load_directory(directory) if directory is not None else None
        except ScenarioError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        if list_personas:
            for p in personas:
                console.print(f"[bold]{p.name}[/bold] ({p.language}) {p.title}")
            return
        settings = settings_or_exit(config)
        from rich.logging import RichHandler

        # log lines print above the live board instead of tearing through it
        logging.basicConfig(
            level=logging.WARNING,
            format="%(name)s: %(message)s",
            handlers=[RichHandler(console=console, show_path=False)],
            force=True,
        )
        options = DemoOptions(
            calls=calls,
            language=language,  # type: ignore[arg-type]
            keep_running=keep_running,
            rate_per_s=rate,
            arrivals="poisson" if poisson else "uniform",
            seed=seed,
            personas=tuple(persona or ()),
            scenario_paths=tuple(scenarios or ()),
            live=live,
            caller_stt=caller_stt,
            route="direct" if direct else "sim",
            directory=who_answers,
            chaos=chaos,
        )
        try:
            result = asyncio.run(run_demo(settings, options, console))
        except DemoError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        failed = [c for c in result.calls if c.verdict is None or c.verdict.outcome == "failed"]
        if failed or (strict and result.passed < len(result.calls)):
            raise typer.Exit(1)
