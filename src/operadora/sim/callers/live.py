"""What ``operadora demo`` shows: a live board of calls and a summary once they are over."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from operadora import events as ev
from operadora.sim.callers.outcome import CallVerdict, percentile
from operadora.sim.callers.persona import CallerReport
from operadora.sim.callers.scenario import Persona

FEED_LINES = 12
SPEAKER_STYLE = {"caller": "cyan", "agent": "magenta", "system": "yellow"}
LANG_FLAG = {"en": "EN", "es": "ES"}


@dataclass(slots=True)
class CallView:
    index: int
    persona: Persona
    call_id: str = ""
    state: str = "waiting"  # waiting | dialing | talking | ended
    detail: str = ""
    speaking: str = ""  # caller | agent | ""
    transcript: list[tuple[str, str]] = field(default_factory=list)
    events: list[ev.DomainEvent] = field(default_factory=list)
    report: CallerReport | None = None
    verdict: CallVerdict | None = None
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def label(self) -> str:
        return self.persona.title or self.persona.name

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.monotonic()) - self.started_at


class DemoBoard:
    """The rich renderable behind the demo's ``Live`` display."""

    def __init__(self, header: list[tuple[str, str]]) -> None:
        self.header = header
        self.calls: list[CallView] = []
        self.feed: deque[Text] = deque(maxlen=FEED_LINES)

    def say(self, call: CallView, speaker: str, text: str) -> None:
        call.transcript.append((speaker, text))
        line = Text()
        line.append(f"#{call.index + 1} ", style="bold")
        line.append(f"{speaker:>6}: ", style=SPEAKER_STYLE.get(speaker, ""))
        line.append(text)
        self.feed.append(line)

    def note(self, call: CallView, text: str) -> None:
        line = Text()
        line.append(f"#{call.index + 1} ", style="bold")
        line.append(text, style="yellow")
        self.feed.append(line)

    def __rich__(self) -> RenderableType:
        return Group(self._header(), self._table(), self._feed())

    def _header(self) -> RenderableType:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for name, value in self.header:
            grid.add_row(name, value)
        return Panel(grid, title="Operadora demo", border_style="blue")

    def _table(self) -> RenderableType:
        table = Table(expand=True, show_lines=False)
        table.add_column("#", justify="right", width=3)
        table.add_column("caller", ratio=3)
        table.add_column("lang", width=4)
        table.add_column("state", ratio=2)
        table.add_column("speaking", width=9)
        table.add_column("last line", ratio=5, overflow="ellipsis", no_wrap=True)
        for call in self.calls:
            table.add_row(
                str(call.index + 1),
                f"{call.label}\n[dim]{call.persona.caller_id}[/dim]",
                LANG_FLAG.get(call.persona.language, call.persona.language),
                _state_text(call),
                _speaking_text(call.speaking),
                _last_line(call),
            )
        return table

    def _feed(self) -> RenderableType:
        body: RenderableType = Group(*self.feed) if self.feed else Text("(waiting for speech)")
        return Panel(body, title="transcript", border_style="dim")


def _state_text(call: CallView) -> Text:
    if call.state == "ended" and call.verdict is not None:
        mark = {True: ("✔", "green"), False: ("✘", "red"), None: ("•", "white")}[call.verdict.ok]
        text = Text(f"{mark[0]} {call.verdict.outcome}", style=mark[1])
        if call.verdict.target:
            text.append(f" → {call.verdict.target}")
        if call.verdict.ok is False and call.verdict.why:
            text.append(f"\n{call.verdict.why}", style="dim")
        return text
    style = {"waiting": "dim", "dialing": "yellow", "talking": "green"}.get(call.state, "")
    text = Text(call.state, style=style)
    if call.detail and call.state == "talking":
        text.append(f" ({call.detail})", style="dim")
    return text


def _speaking_text(speaker: str) -> Text:
    if not speaker:
        return Text("")
    return Text(f"🗣 {speaker}", style=SPEAKER_STYLE.get(speaker, ""))


def _last_line(call: CallView) -> Text:
    if not call.transcript:
        return Text("")
    speaker, text = call.transcript[-1]
    return Text(f"{speaker}: {text}", style=SPEAKER_STYLE.get(speaker, ""))


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def summary_table(calls: list[CallView], compact: bool = False) -> Table:
    """One row per call; ``compact`` (narrow terminals) leaves the per-call figures out."""
    table = Table(title="Calls", show_lines=True, expand=True)
    table.add_column("#", justify="right", width=3)
    table.add_column("caller", ratio=2, min_width=12 if compact else 14)
    table.add_column("outcome", ratio=2, min_width=13)
    table.add_column("transcript", ratio=6)
    if not compact:
        table.add_column("v2v p50", justify="right", width=9)
        table.add_column("heard p50", justify="right", width=9)
        table.add_column("time", justify="right", width=6)
    for call in calls:
        verdict = call.verdict
        transcript = Text()
        for n, (speaker, text) in enumerate(call.transcript):
            if n:
                transcript.append("\n")
            transcript.append(f"{speaker}: ", style=SPEAKER_STYLE.get(speaker, ""))
            transcript.append(text)
        who = call.persona.name if compact else f"{call.label}\n[dim]{call.persona.name}[/dim]"
        row: list[RenderableType] = [
            str(call.index + 1),
            f"{who} ({call.persona.language})",
            _state_text(call) if verdict is not None else Text(call.state),
            transcript,
        ]
        if not compact:
            duration = call.duration_s
            row += [
                _ms(percentile(verdict.v2v_ms, 0.5)) if verdict else "—",
                _ms(percentile(verdict.response_ms, 0.5)) if verdict else "—",
                "—" if duration is None else f"{duration:.0f} s",
            ]
        table.add_row(*row)
    return table


def latency_summary(calls: list[CallView]) -> Table:
    v2v = [ms for c in calls if c.verdict for ms in c.verdict.v2v_ms]
    heard = [ms for c in calls if c.verdict for ms in c.verdict.response_ms]
    table = Table(title="Latency over all calls", expand=False)
    table.add_column("measure")
    table.add_column("turns", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("max", justify="right")
    for name, values in (
        ("voice-to-voice (engine: caller's last word → first reply frame)", v2v),
        ("response as the caller heard it (caller stops → agent voice)", heard),
    ):
        table.add_row(
            name,
            str(len(values)),
            _ms(percentile(values, 0.5)),
            _ms(percentile(values, 0.95)),
            _ms(max(values) if values else None),
        )
    return table
