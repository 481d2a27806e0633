"""Commands of the AudioSocket media server: ``operadora media serve`` and ``media probe``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from operadora.audiosocket.pacing import MediaStats

console = Console()

media_app = typer.Typer(help="The AudioSocket media server.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (.toml or .yaml); env OPERADORA_CONFIG."),
]


def _status_table(rows: list[tuple[str, int, int, MediaStats]]) -> Table:
    table = Table(title="AudioSocket media server")
    for name in ("worker", "calls", "connections", "frames in", "frames out", "agent audio"):
        table.add_column(name, justify="right")
    for name in ("late", "skipped", "dropped", "pacing p99 ms"):
        table.add_column(name, justify="right")
    for name, sessions, connections, stats in rows:
        table.add_row(
            name,
            str(sessions),
            str(connections),
            str(stats.frames_in),
            str(stats.frames_out),
            str(stats.audio_frames_out),
            str(stats.late_frames),
            str(stats.skipped_frames),
            str(stats.dropped_frames),
            f"{stats.pacing_percentile_ms(99):.1f}",
        )
    return table


@media_app.command("serve")
def serve(
    echo: Annotated[bool, typer.Option(help="Play each caller's audio back to them.")] = False,
    host: Annotated[str | None, typer.Option(help="Override media.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override media.port.")] = None,
    workers: Annotated[int | None, typer.Option(help="Override media.workers.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the AudioSocket server (callers hear silence, or themselves with --echo)."""
    from operadora.audiosocket.native import native_available
    from operadora.audiosocket.workers import WorkerPool, stats_from_dict
    from operadora.cli import settings_or_exit, setup_logging

    settings = settings_or_exit(config)
    setup_logging(settings)
    update: dict[str, Any] = {}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    if workers is not None:
        update["workers"] = workers
    media = settings.media.model_copy(update=update)
    media = type(media).model_validate(media.model_dump())
    engine = media.engine
    if engine == "auto":
        engine = "native" if native_available() else "asyncio"
    pool = WorkerPool(media, "echo" if echo else "listen")
    pool.start()
    console.print(
        f"[green]AudioSocket server[/green] on {media.host}:{pool.port} with "
        f"{media.workers} worker(s), {engine} engine, handler {'echo' if echo else 'listen'}; "
        f"Ctrl-C stops it"
    )
    try:
        with Live(_status_table([]), console=console, refresh_per_second=1) as live:
            while pool.alive():
                time.sleep(1.0)
                pool.poll()
                rows = []
                for index, snap in sorted(pool.snapshots.items()):
                    stats = stats_from_dict(snap["stats"])
                    rows.append((str(index), snap["sessions"], snap["connections"], stats))
                live.update(_status_table(rows))
    except KeyboardInterrupt:
        pool.stop()
        return
    pool.stop()
    console.print("[red]error:[/red] the media server stopped (see the log above)")
    raise typer.Exit(1)


def _tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440.0 * t) * 6000).astype("<i2").tobytes()


async def _probe(host: str, port: int, seconds: float, rate: int, dtmf: str) -> dict[str, Any]:
    from operadora.audiosocket.peer import AsteriskPeer

    call_uuid = uuid.uuid4()
    peer = await AsteriskPeer.connect(host, port, call_uuid)
    started = time.monotonic()
    await peer.stream_audio(_tone(seconds, rate), rate)
    for digit in dtmf:
        peer.send_dtmf(digit)
    await peer.writer.drain()
    closed_by_server = await peer.wait_closed(0.5)
    await peer.close()
    kinds = Counter(type(r.frame).__name__ for r in peer.received)
    times = [r.at for r in peer.received if type(r.frame).__name__ == "AudioFrame"]
    gaps = np.diff(np.array(times)) * 1000 if len(times) > 1 else np.zeros(0)
    return {
        "uuid": str(call_uuid),
        "sent_s": time.monotonic() - started,
        "kinds": dict(kinds),
        "rates": sorted({f.sample_rate for f in peer.audio()}),
        "gaps": gaps,
        "server_closed": closed_by_server,
        "error": str(peer.error) if peer.error else None,
    }


@media_app.command("probe")
def probe(
    address: Annotated[str, typer.Argument(help="HOST:PORT of an AudioSocket server.")],
    seconds: Annotated[float, typer.Option(help="Seconds of 440 Hz tone to send.")] = 2.0,
    rate: Annotated[int, typer.Option(help="8000 (kind 0x10) or 16000 (kind 0x12).")] = 8000,
    dtmf: Annotated[str, typer.Option(help="DTMF digits to send after the audio.")] = "",
) -> None:
    """Connect as Asterisk would, send a tone (and DTMF), and show what the server sent back."""
    host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit() or rate not in (8000, 16000):
        console.print("[red]error:[/red] give HOST:PORT and --rate 8000 or 16000")
        raise typer.Exit(2)
    try:
        result = asyncio.run(_probe(host, int(port_text), seconds, rate, dtmf))
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot reach {address}: {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"AudioSocket probe of {address} (call {result['uuid']})")
    table.add_column("what")
    table.add_column("value", justify="right")
    for kind, count in sorted(result["kinds"].items()):
        table.add_row(f"{kind} received", str(count))
    table.add_row("audio rates", ", ".join(str(r) for r in result["rates"]) or "-")
    gaps = result["gaps"]
    if gaps.size:
        table.add_row("frame gap median ms", f"{np.median(gaps):.2f}")
        table.add_row("frame gap p99 ms", f"{np.percentile(gaps, 99):.2f}")
        table.add_row("frame gap max ms", f"{gaps.max():.2f}")
    table.add_row("server closed the call", "yes" if result["server_closed"] else "no")
    table.add_row("protocol error", result["error"] or "none")
    console.print(table)
    if result["error"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(media_app, name="media")
