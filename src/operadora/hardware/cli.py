"""Commands: ``operadora hardware``, ``operadora capacity``, ``operadora asterisk-config``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from operadora.capacity.host import host_facts
from operadora.capacity.machine import (
    MachineFlags,
    apply_flags,
    machine_from_flags,
    machine_from_host,
)
from operadora.capacity.measure import measure
from operadora.capacity.model import LlmPlacement, Machine, Plan, plan
from operadora.capacity.recommend import Recommendation, recommend
from operadora.config import Settings
from operadora.dialplan.render import AsteriskConfig, Target, render
from operadora.hardware.detect import detect_hardware
from operadora.hardware.models import HardwareReport

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (.toml or .yaml); env OPERADORA_CONFIG."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _settings(config: Path | None) -> Settings:
    from operadora.cli import settings_or_exit

    return settings_or_exit(config)


# --- hardware ---------------------------------------------------------------------------------


def hardware_tables(report: HardwareReport) -> list[Table]:
    summary = Table(title="Telephony hardware", show_header=False)
    limit = report.pipeline.max_concurrent_calls
    summary.add_row("hardware type", report.hardware_type)
    summary.add_row("gateway channels", f"{report.gateway_channels} ({report.gateway.detail})")
    summary.add_row("DAHDI channels", f"{report.dahdi_channels} ({report.dahdi.detail})")
    summary.add_row(
        "max concurrent calls", "not limited by hardware" if limit is None else str(limit)
    )
    summary.add_row("route preference", " > ".join(report.pipeline.route_preference))
    summary.add_row("codecs", ", ".join(report.pipeline.codecs))
    tables = [summary]
    if report.gateway.endpoints:
        eps = Table(title="FXO gateways (ARI PJSIP endpoints)")
        for col in ("server", "endpoint", "state", "active channels"):
            eps.add_column(col)
        for ep in report.gateway.endpoints:
            style = "green" if ep.online else "red"
            state = f"[{style}]{ep.state}[/{style}]"
            eps.add_row(ep.server, ep.resource, state, str(len(ep.channel_ids)))
        tables.append(eps)
    if report.gateway.probes:
        probes = Table(title="Configured gateway addresses")
        for col in ("address", "transport", "outcome", "detail", "rtt ms"):
            probes.add_column(col)
        for p in report.gateway.probes:
            rtt = "" if p.rtt_ms is None else f"{p.rtt_ms:.1f}"
            probes.add_row(f"{p.host}:{p.port}", p.transport, p.outcome, p.detail, rtt)
        tables.append(probes)
    if report.dahdi.cards:
        cards = Table(title="DAHDI cards")
        for col in ("card", "line", "spans", "FXO", "FXS", "voice ch.", "trunk ch.", "alarms"):
            cards.add_column(col)
        for c in report.dahdi.cards:
            cards.add_row(
                f"{c.model} ({c.manufacturer})",
                c.line_type,
                ",".join(map(str, c.spans)),
                str(c.fxo_ports),
                str(c.fxs_ports),
                str(c.voice_channels),
                str(c.trunk_channels),
                "; ".join(c.alarms) or "OK",
            )
        tables.append(cards)
    return tables


def hardware_command(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Detect FXO gateways (through ARI) and DAHDI cards, and the pipeline they imply."""
    settings = _settings(config)
    report = asyncio.run(detect_hardware(settings))
    if as_json:
        console.print_json(report.model_dump_json())
        return
    for table in hardware_tables(report):
        console.print(table)


# --- capacity ---------------------------------------------------------------------------------


def plan_tables(result: Plan, advice: Recommendation) -> list[Table]:
    m = result.machine
    head = Table(title=f"Machine ({m.source})", show_header=False)
    head.add_row("cores / RAM", f"{m.cores} cores, {m.ram_gb:g} GB")
    gpus = ", ".join(f"{g.name} ({g.memory_gb or '?'} GB)" for g in m.gpus) or "none"
    head.add_row("GPUs", gpus)
    head.add_row("LLM", m.llm)
    head.add_row("transcoding", "yes" if m.transcoding else "no")
    limits = Table(title="Maximum simultaneous calls per component")
    for col in ("component", "max calls", "source", "basis"):
        limits.add_column(col)
    for c in result.components:
        calls = "no limit" if c.max_calls is None else str(c.max_calls)
        style = "bold red" if c.name == result.bottleneck else ""
        limits.add_row(c.name, f"[{style}]{calls}[/{style}]" if style else calls, c.source, c.basis)
    limits.caption = f"maximum: {result.max_calls} calls, bottleneck: {result.bottleneck}"
    rec = Table(title=f"Recommendation for {advice.calls} calls ({advice.tier})", show_header=False)
    rec.add_row("Redis", advice.redis)
    rec.add_row("instances", f"{advice.instances}: {advice.backend}")
    rec.add_row("PBX", advice.pbx)
    rec.add_row("telephony", advice.telephony)
    rec.add_row("GPU", advice.gpu)
    for extra in advice.extras:
        rec.add_row("also", extra)
    for warning in advice.warnings:
        rec.add_row("[yellow]warning[/yellow]", warning)
    tables = [head, limits, rec]
    if result.measured is not None:
        meas = Table(title="Measured on this machine", show_header=False)
        ms = result.measured
        meas.add_row("media CPU ms per call-second", _fmt(ms.media_cpu_ms_per_call_s))
        meas.add_row("voice CPU ms per call-second", _fmt(ms.voice_cpu_ms_per_call_s))
        meas.add_row("media benchmark maximum", _fmt(ms.media_max_calls))
        if ms.media_check is not None:
            check = ms.media_check
            verdict = "within ±15 %" if check.within_15_pct else "[red]outside ±15 %[/red]"
            meas.add_row(
                "media prediction",
                f"{check.predicted} calls vs {check.measured} measured: "
                f"{check.error_pct:+.1f} % ({verdict}; {check.basis})",
            )
        for note in ms.notes:
            meas.add_row("[yellow]note[/yellow]", note)
        tables.append(meas)
    return tables


def _fmt(value: float | int | None) -> str:
    return "not measured" if value is None else f"{value:g}"


async def _detected_machine(settings: Settings) -> Machine:
    facts, report = await asyncio.gather(
        host_facts(settings.hardware.nvidia_smi), detect_hardware(settings)
    )
    return machine_from_host(settings, facts, report, transcoding=False)


def capacity_command(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    cores: Annotated[int | None, typer.Option(help="Plan a machine with this many cores.")] = None,
    ram_gb: Annotated[float | None, typer.Option("--ram-gb", help="Its RAM in GB.")] = None,
    gpu: Annotated[str | None, typer.Option(help='GPU model, e.g. "RTX 4090", "A100".')] = None,
    gpus: Annotated[int, typer.Option(help="How many of that GPU.", min=1)] = 1,
    transcoding: Annotated[bool, typer.Option(help="Asterisk transcodes (g729/opus).")] = False,
    dahdi: Annotated[
        list[str] | None, typer.Option(help="DAHDI card (A200, A400, A104, A108[:ports]).")
    ] = None,
    gateway: Annotated[
        list[str] | None, typer.Option(help="FXO gateway (GXW4104, GXW4108, MTG1000[:ports]).")
    ] = None,
    trunk_channels: Annotated[
        int | None, typer.Option(help="SIP trunk channels bought from the carrier.", min=1)
    ] = None,
    llm: Annotated[
        LlmPlacement | None, typer.Option(help="Where the LLM runs (default from settings).")
    ] = None,
    asterisk_elsewhere: Annotated[
        bool, typer.Option(help="Asterisk runs on another machine (its CPU is not shared).")
    ] = False,
    calls: Annotated[
        int | None, typer.Option(help="Target simultaneous calls for the recommendation.", min=1)
    ] = None,
    do_measure: Annotated[
        bool, typer.Option("--measure", help="Run the media and voice benchmarks here.")
    ] = False,
    bench_dir: Annotated[Path, typer.Option(help="Where bench_media.py etc. live.")] = Path(
        "bench"
    ),
) -> None:
    """Maximum simultaneous calls per component, the bottleneck and what to build."""
    settings = _settings(config)
    flags = MachineFlags(
        cores=cores,
        ram_gb=ram_gb,
        gpu=gpu,
        gpus=gpus,
        transcoding=transcoding,
        dahdi=dahdi or (),
        gateways=gateway or (),
        trunk_channels=trunk_channels,
        llm=llm,
        asterisk_elsewhere=asterisk_elsewhere,
    )
    try:
        if flags.planned:
            machine = machine_from_flags(settings, flags)
        else:
            machine = apply_flags(settings, asyncio.run(_detected_machine(settings)), flags)
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    measured = None
    if do_measure:
        err_console.print(f"running benchmarks in {bench_dir} (quick mode)...")
        measured = asyncio.run(measure(bench_dir))
    result = plan(machine, measured)
    advice = recommend(calls or max(result.max_calls, 1), result)
    if as_json:
        console.print_json(
            json.dumps({"plan": result.model_dump(), "recommendation": advice.model_dump()})
        )
        return
    for table in plan_tables(result, advice):
        console.print(table)


# --- asterisk-config --------------------------------------------------------------------------


def write_config(config: AsteriskConfig, out: Path, force: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    existing = [out / name for name in config.files if (out / name).exists()]
    if existing and not force:
        names = ", ".join(p.name for p in existing)
        raise FileExistsError(f"{out} already has {names} (use --force to overwrite)")
    written = []
    for name, text in config.files.items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


def asterisk_config_command(
    config: ConfigOption = None,
    target: Annotated[
        Target, typer.Option(help="Plain Asterisk or FreePBX *_custom.conf.")
    ] = "asterisk",
    out: Annotated[Path | None, typer.Option(help="Write the files into this folder.")] = None,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Write passwords instead of placeholders.")
    ] = False,
    server: Annotated[
        str | None, typer.Option(help="Asterisk server name (default: first).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite files in --out.")] = False,
) -> None:
    """Render the Asterisk or FreePBX configuration Operadora needs, from the settings."""
    settings = _settings(config)
    try:
        rendered = render(settings, target, show_secrets, server)
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if out is None:
        for name, text in rendered.files.items():
            console.rule(name)
            console.print(text, markup=False, highlight=False, end="")
    else:
        try:
            written = write_config(rendered, out, force)
        except FileExistsError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        for path in written:
            err_console.print(f"wrote {path}")
        if show_secrets:
            err_console.print(
                "[yellow]note:[/yellow] these files hold passwords: let only root and the "
                "asterisk user read them"
            )
    for note in rendered.notes:
        err_console.print(f"[yellow]note:[/yellow] {note}")


def register(app: typer.Typer) -> None:
    app.command("hardware")(hardware_command)
    app.command("capacity")(capacity_command)
    app.command("asterisk-config")(asterisk_config_command)
