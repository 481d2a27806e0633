"""Domain events counted into the Prometheus metrics (no I/O)."""

import pytest
from prometheus_client import REGISTRY

from operadora import events as ev
from operadora.metrics import MetricsRecorder, stage_seconds

pytestmark = pytest.mark.unit


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_stage_names_and_units() -> None:
    assert stage_seconds("stt_ms", 120) == ("stt", 0.12)
    assert stage_seconds("tts_s", 0.3) == ("tts", 0.3)
    assert stage_seconds("llm", 250) == ("llm", 0.25)


def test_events_become_metrics() -> None:
    metrics = MetricsRecorder(ev.EventBus())
    active = value("operadora_active_calls")
    transferred = value("operadora_calls_total", outcome="transferred")
    v2v = value("operadora_voice_to_voice_seconds_count")
    llm = value("operadora_stage_seconds_sum", stage="llm")
    attended = value("operadora_transfers_total", kind="attended", outcome="completed")
    recs = value("operadora_recordings_total", reason="negative-sentiment")

    metrics.observe(ev.CallArrivedEvent("m"))
    metrics.observe(ev.CallArrivedEvent("m"))  # duplicated: counted live once
    assert value("operadora_active_calls") == active + 1
    metrics.observe(
        ev.TurnEvent(
            "m",
            speaker="agent",
            started_at=1.0,
            ended_at=3.0,
            latency_ms=700.0,
            timings={"llm_ms": 400.0},
        )
    )
    metrics.observe(ev.TransferEvent("m", kind="attended", state="ringing"))
    metrics.observe(ev.TransferEvent("m", kind="attended", state="done", outcome="completed"))
    metrics.observe(ev.RecordingEvent("m", state="started", reason="negative-sentiment"))
    metrics.observe(ev.CallEndedEvent("m", disposition="transferred"))
    metrics.observe(ev.CallEndedEvent("m", disposition="transferred"))
    assert value("operadora_active_calls") == active
    assert value("operadora_calls_total", outcome="transferred") == transferred + 1
    assert value("operadora_voice_to_voice_seconds_count") == v2v + 1
    assert value("operadora_stage_seconds_sum", stage="llm") == pytest.approx(llm + 0.4)
    assert value("operadora_transfers_total", kind="attended", outcome="completed") == (
        attended + 1
    )
    assert value("operadora_recordings_total", reason="negative-sentiment") == recs + 1
