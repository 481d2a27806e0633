from __future__ import annotations

import pytest

from operadora import events as ev
from operadora.sim.callers.outcome import judge, percentile
from operadora.sim.callers.persona import CallerReport, TranscriptLine
from operadora.sim.callers.scenario import Expectation

pytestmark = pytest.mark.unit


def report(
    ended_by: str = "caller", interrupted: bool = False, answered: bool = True
) -> CallerReport:
    r = CallerReport(persona="p", started_at=0.0, ended_by=ended_by)  # type: ignore[arg-type]
    r.transcript.append(TranscriptLine("caller", "hello", 1.0, interrupted))
    if answered:
        r.response_ms.append(300.0)
    return r


def test_agent_actions_decide_the_outcome() -> None:
    events = [
        ev.TurnEvent("c", speaker="agent", text="Hi", latency_ms=None),
        ev.TurnEvent("c", speaker="agent", text="Sales, one moment", latency_ms=420.0),
        ev.ActionRequestedEvent("c", action="transfer", target="201"),
        ev.CallEndedEvent("c", disposition="resolved"),
    ]
    verdict = judge(events, report(), Expectation(outcome="transferred", target="201"))
    assert (verdict.outcome, verdict.target, verdict.ok) == ("transferred", "201", True)
    assert verdict.v2v_ms == [420.0] and verdict.response_ms == [300.0]
    wrong = judge(events, report(), Expectation(outcome="transferred", target="202"))
    assert wrong.ok is False and "202" in wrong.why


@pytest.mark.parametrize(
    ("action", "outcome"),
    [("queue", "queue"), ("callback", "callback"), ("attended_transfer", "transferred")],
)
def test_each_action(action: str, outcome: str) -> None:
    verdict = judge([ev.ActionRequestedEvent("c", action=action, target="x")], report())
    assert verdict.outcome == outcome and verdict.ok is None


def test_hangup_action_is_resolved_and_decisive_dispositions_win() -> None:
    assert judge([ev.ActionRequestedEvent("c", action="hangup")], report()).outcome == "resolved"
    failed = [
        ev.ActionRequestedEvent("c", action="hangup"),
        ev.CallEndedEvent("c", disposition="failed"),
    ]
    assert judge(failed, report()).outcome == "failed"
    transfer = [ev.TransferEvent("c", kind="queue", target="support-queue", state="done")]
    assert judge(transfer, report()).outcome == "queue"


def test_caller_hanging_up_mid_sentence_is_abandoned() -> None:
    assert judge([], report(interrupted=True)).outcome == "abandoned"
    assert judge([], report(answered=False)).outcome == "abandoned"
    assert judge([], report()).outcome == "resolved"
    assert judge([], report(ended_by="far_end", answered=False)).outcome == "failed"


def test_a_broken_caller_is_failed() -> None:
    broken = report()
    broken.error = "RuntimeError: boom"
    assert judge([ev.ActionRequestedEvent("c", action="hangup")], broken).outcome == "failed"


def test_agent_must_say_the_expected_phrases() -> None:
    expect = Expectation(outcome="resolved", agent_says=["Monday"])
    said = [
        ev.TurnEvent("c", speaker="agent", text="We open on monday."),
        ev.ActionRequestedEvent("c", action="hangup"),
    ]
    assert judge(said, report(), expect).ok is True
    unsaid = [
        ev.TurnEvent("c", speaker="agent", text="Sorry?"),
        ev.ActionRequestedEvent("c", action="hangup"),
    ]
    verdict = judge(unsaid, report(), expect)
    assert verdict.ok is False and "Monday" in verdict.why


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(list(map(float, range(101))), 0.95) == pytest.approx(95.0)
