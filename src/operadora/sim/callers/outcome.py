"""What became of a simulated call, judged from the engine's domain events and the caller's
own report, and whether that is what the persona expected."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from operadora import events as ev
from operadora.sim.callers.persona import CallerReport
from operadora.sim.callers.scenario import Expectation, Outcome

ACTION_OUTCOMES: dict[str, Outcome] = {
    "transfer": "transferred",
    "attended_transfer": "transferred",
    "queue": "queue",
    "callback": "callback",
    "hangup": "resolved",
}
DECISIVE_DISPOSITIONS: dict[str, Outcome] = {
    "transferred": "transferred",
    "callback": "callback",
    "failed": "failed",
}


@dataclass(slots=True)
class CallVerdict:
    outcome: Outcome
    target: str | None = None
    ok: bool | None = None  # None: the persona expected nothing
    why: str = ""
    v2v_ms: list[float] = field(default_factory=list)  # the engine's voice-to-voice latencies
    response_ms: list[float] = field(default_factory=list)  # as the caller heard it


def judge(
    events: Iterable[ev.DomainEvent],
    report: CallerReport | None,
    expect: Expectation | None = None,
) -> CallVerdict:
    evs = list(events)
    verdict = _outcome(evs, report)
    verdict.v2v_ms = [
        e.latency_ms
        for e in evs
        if isinstance(e, ev.TurnEvent) and e.speaker == "agent" and e.latency_ms is not None
    ]
    verdict.response_ms = list(report.response_ms) if report is not None else []
    if expect is not None:
        verdict.ok = verdict.outcome == expect.outcome and (
            expect.target is None or verdict.target == expect.target
        )
        if not verdict.ok:
            want = expect.outcome + (f" to {expect.target}" if expect.target else "")
            verdict.why = f"expected {want}"
        said = _agent_said(evs, report).lower()
        missing = [p for p in expect.agent_says if p.lower() not in said]
        if missing and verdict.ok:
            verdict.ok = False
            verdict.why = "the agent never said " + ", ".join(repr(p) for p in missing)
    return verdict


def _agent_said(evs: Sequence[ev.DomainEvent], report: CallerReport | None) -> str:
    """Everything the agent said: its own turns, else what the caller transcribed."""
    turns = [e.text for e in evs if isinstance(e, ev.TurnEvent) and e.speaker == "agent"]
    if not turns and report is not None:
        turns = [t.text for t in report.transcript if t.speaker == "agent"]
    return " ".join(turns)


def _outcome(evs: Sequence[ev.DomainEvent], report: CallerReport | None) -> CallVerdict:
    if report is not None and report.error is not None:
        return CallVerdict("failed", why=report.error)
    ended = next((e for e in reversed(evs) if isinstance(e, ev.CallEndedEvent)), None)
    if ended is not None and ended.disposition in DECISIVE_DISPOSITIONS:
        target = _last_target(evs)
        return CallVerdict(DECISIVE_DISPOSITIONS[ended.disposition], target)
    for event in reversed(evs):
        if isinstance(event, ev.TransferEvent) and event.outcome not in ("failed", "canceled"):
            return CallVerdict("queue" if event.kind == "queue" else "transferred", event.target)
    actions = [e for e in evs if isinstance(e, ev.ActionRequestedEvent)]
    for action in reversed(actions):
        outcome = ACTION_OUTCOMES.get(action.action)
        if outcome is not None and action.action != "hangup":
            return CallVerdict(outcome, action.target or None)
    if any(a.action == "hangup" for a in actions):
        return CallVerdict("resolved")
    if report is None:
        return CallVerdict("resolved" if ended is not None else "failed")
    if report.ended_by == "caller":
        cut_short = any(t.speaker == "caller" and t.interrupted for t in report.transcript)
        answered = bool(report.response_ms)
        return CallVerdict("abandoned" if cut_short or not answered else "resolved")
    return CallVerdict("resolved" if report.response_ms else "failed")


def _last_target(evs: Sequence[ev.DomainEvent]) -> str | None:
    for event in reversed(evs):
        if isinstance(event, ev.TransferEvent) and event.target:
            return event.target
        if isinstance(event, ev.ActionRequestedEvent) and event.target:
            return event.target
    return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q * 100.0))
