from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from operadora.sim.callers.arrivals import ArrivalSettings, arrival_offsets, arrivals
from operadora.sim.callers.scenario import (
    CallerId,
    DtmfStep,
    HangupStep,
    ListenStep,
    SayStep,
    ScenarioError,
    WaitStep,
    load_persona,
    load_personas,
    parse_persona,
    shipped_personas,
)

pytestmark = pytest.mark.unit

PERSONA = """
name: test-caller
language: es
caller_id: '"Ana Pérez" <+34600111222>'
did: "+34910000100"
expect: {outcome: transferred, target: sales}
steps:
  - listen: {}
  - say: "Hola"
  - say: {text: "Adiós", hangup_after_ms: 300}
  - listen: {phrase: "ventas", timeout_s: 4}
  - listen: "horario"
  - dtmf: "12#"
  - dtmf: {digits: "9", gap_ms: 0}
  - wait: 1.5
  - hangup: {}
  - hangup:
"""


def test_yaml_persona_parses_every_step_kind(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PERSONA, encoding="utf-8")
    persona = load_persona(path)
    assert persona.language == "es"
    assert persona.caller_id == CallerId(name="Ana Pérez", number="+34600111222")
    assert persona.expect is not None and persona.expect.target == "sales"
    assert persona.steps == (
        ListenStep(),
        SayStep(text="Hola"),
        SayStep(text="Adiós", hangup_after_ms=300),
        ListenStep(phrase="ventas", timeout_s=4),
        ListenStep(phrase="horario"),
        DtmfStep(digits="12#"),
        DtmfStep(digits="9", gap_ms=0),
        WaitStep(seconds=1.5),
        HangupStep(),
        HangupStep(),
    )


@pytest.mark.parametrize(
    ("raw", "number", "name"),
    [("5551000", "5551000", ""), ("Alice <5551000>", "5551000", "Alice"), ("<+1555>", "+1555", "")],
)
def test_caller_id_forms(raw: str, number: str, name: str) -> None:
    caller = CallerId.parse(raw)
    assert (caller.number, caller.name) == (number, name)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"sing": "la"}], "step 1"),
        ([{"say": "hi"}, {"dtmf": "x"}], "step 2"),
        ([{"wait": -1}], "step 1"),
        ([{"say": "hi", "dtmf": "1"}], "step 1"),
        ([{"hangup": "now"}], "takes no value"),
        ([{"listen": {"phrase": "x", "bogus": 1}}], "step 1"),
        ([], "steps"),
    ],
)
def test_bad_steps_name_the_step(steps: list[object], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_persona({"name": "x", "caller_id": "1", "steps": steps}, "bad.yaml")
    assert "bad.yaml" in str(info.value)
    assert message in str(info.value)


def test_bad_yaml_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken\.yaml"):
        load_persona(path)


def test_shipped_personas_cover_the_demo_stories() -> None:
    personas = shipped_personas()
    names = {p.name for p in personas}
    assert {"opening-hours-en", "sales-es", "human-en", "callback-es"} <= names
    assert {"hangup-mid-sentence-en", "hangup-mid-sentence-es"} <= names
    assert {p.language for p in personas} == {"en", "es"}
    for persona in personas:
        assert persona.expect is not None, persona.name
    mid = next(p for p in personas if p.name == "hangup-mid-sentence-en")
    assert any(isinstance(s, SayStep) and s.hangup_after_ms for s in mid.steps)


def test_load_personas_from_a_folder(tmp_path: Path) -> None:
    for n in (1, 2):
        (tmp_path / f"p{n}.yaml").write_text(
            f"name: p{n}\ncaller_id: '{n}'\nsteps: [{{hangup: {{}}}}]\n", encoding="utf-8"
        )
    assert [p.name for p in load_personas([tmp_path])] == ["p1", "p2"]


def test_uniform_arrivals_are_evenly_spaced() -> None:
    offsets = arrival_offsets(5, ArrivalSettings(rate_per_s=2.0, start_s=1.0))
    assert offsets == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])


def test_poisson_arrivals_are_seeded_and_average_the_rate() -> None:
    settings = ArrivalSettings(rate_per_s=4.0, process="poisson", seed=7)
    offsets = arrival_offsets(4000, settings)
    assert offsets == arrival_offsets(4000, settings)
    assert offsets != arrival_offsets(4000, settings.model_copy(update={"seed": 8}))
    assert all(b >= a for a, b in itertools.pairwise(offsets))
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert len({round(g, 6) for g in gaps}) > 1000
    assert sum(gaps) / len(gaps) == pytest.approx(0.25, rel=0.08)


async def test_arrivals_sleep_until_each_call_on_a_simulated_clock() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    got = [
        (arrival.index, arrival.offset_s, item, now[0])
        async for arrival, item in arrivals(
            ["a", "b"], 3, ArrivalSettings(rate_per_s=0.5), clock=lambda: now[0], sleep=sleep
        )
    ]
    assert got == [(0, 0.0, "a", 100.0), (1, 2.0, "b", 102.0), (2, 4.0, "a", 104.0)]
    assert slept == [2.0, 2.0]
