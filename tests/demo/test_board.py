from __future__ import annotations

import pytest
from rich.console import Console

from operadora.sim.callers.live import CallView, DemoBoard, latency_summary, summary_table
from operadora.sim.callers.outcome import CallVerdict
from operadora.sim.callers.scenario import shipped_personas

pytestmark = pytest.mark.unit


def render(renderable: object) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def calls() -> list[CallView]:
    by_name = {p.name: p for p in shipped_personas()}
    done = CallView(0, by_name["sales-es"], state="ended", started_at=1.0, ended_at=14.0)
    done.verdict = CallVerdict("transferred", "201", ok=True, v2v_ms=[300.0, 500.0])
    done.transcript = [("agent", "Gracias por llamar"), ("caller", "Quiero hablar con ventas.")]
    wrong = CallView(1, by_name["callback-en"], state="ended", started_at=2.0, ended_at=9.0)
    wrong.verdict = CallVerdict("resolved", ok=False, why="expected callback", response_ms=[650.0])
    live = CallView(2, by_name["human-en"], state="talking", detail="listening", speaking="agent")
    return [done, wrong, live]


def test_live_board_shows_each_call_and_the_feed() -> None:
    board = DemoBoard([("PBX simulator", "http://127.0.0.1:1/ari"), ("ARI password", "pw")])
    board.calls = calls()
    board.say(board.calls[2], "agent", "Of course, please hold.")
    board.note(board.calls[2], "agent asks call control: attended_transfer → 100")
    text = render(board)
    assert "ARI password" in text and "pw" in text
    assert "✔ transferred → 201" in text
    assert "✘ resolved" in text and "expected callback" in text
    assert "talking (listening)" in text and "🗣 agent" in text
    assert "#3  agent: Of course, please hold." in text
    assert "attended_transfer → 100" in text
    assert '"Carlos Ruiz" <+34910000001>' in text


def test_summary_and_latency_tables() -> None:
    text = render(summary_table(calls()))
    assert "Quiero hablar con ventas." in text
    assert "400 ms" in text  # p50 of 300 and 500
    assert "13 s" in text
    latency = render(latency_summary(calls()))
    assert "voice-to-voice" in latency and "650 ms" in latency


def test_compact_summary_for_narrow_terminals() -> None:
    text = render(summary_table(calls(), compact=True))
    assert "v2v p50" not in text and "sales-es (es)" in text
    assert "Quiero hablar con ventas." in text
