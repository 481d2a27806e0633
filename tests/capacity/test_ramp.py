"""The whole-engine benchmark's arithmetic: the service criterion, the load search, costs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from operadora.capacity.model import Machine, Measured, cpu_component, plan
from operadora.capacity.ramp import (
    V2V_P95_LIMIT_MS,
    Step,
    cpu_ms_per_call_second,
    error_pct,
    fixed_and_marginal,
    largest_held,
    next_load,
    p95,
)

pytestmark = pytest.mark.unit


def test_p95_matches_numpy_and_empty_never_passes() -> None:
    values = [120.0, 390.0, 410.0, 250.0, 980.0, 300.0, 333.0]
    assert p95(values) == pytest.approx(float(np.percentile(values, 95)))
    assert p95([5.0]) == 5.0
    assert p95([]) == math.inf


def test_step_criterion() -> None:
    assert Step(4, V2V_P95_LIMIT_MS, 0, 90.0).ok
    assert not Step(4, V2V_P95_LIMIT_MS + 1, 0, 90.0).ok
    assert not Step(4, 300.0, 1, 90.0).ok  # a turn nobody answered
    assert not Step(4, p95([]), 0, 90.0).ok


def test_cpu_cost_per_call_second() -> None:
    assert cpu_ms_per_call_second(1.5, 15.0) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        cpu_ms_per_call_second(1.0, 0.0)


def simulate(true_max: int, first_guess: int, cap: int = 48) -> tuple[list[int], int]:
    """Drive the search against a machine that holds up to ``true_max`` calls."""
    results: dict[int, bool] = {}
    tried = []
    while (n := next_load(results, first_guess, cap)) is not None:
        assert n not in results and 1 <= n <= cap
        tried.append(n)
        results[n] = n <= true_max
        assert len(tried) < 20
    return tried, largest_held(results)


@pytest.mark.parametrize(
    ("true_max", "guess"), [(18, 20), (20, 20), (23, 20), (7, 20), (40, 10), (1, 5), (2, 2)]
)
def test_search_finds_the_largest_load_that_holds(true_max: int, guess: int) -> None:
    tried, found = simulate(true_max, guess)
    assert found == true_max
    assert tried[:2] == [1, guess]  # the cost at N=1 first, then the planner's guess


def test_search_ends_at_the_cap_and_when_one_call_breaks() -> None:
    tried, found = simulate(100, 20, cap=30)
    assert found == 30 and tried[-1] == 30
    assert simulate(0, 20) == ([1], 0)


def test_largest_held_ignores_a_lucky_load_above_a_broken_one() -> None:
    assert largest_held({1: True, 10: True, 15: False, 20: True}) == 10
    assert largest_held({1: False}) == 0
    assert largest_held({}) == 0


def test_error_pct() -> None:
    assert error_pct(20, 18) == pytest.approx(11.11, abs=0.01)
    assert error_pct(16, 20) == pytest.approx(-20.0)
    with pytest.raises(ValueError):
        error_pct(5, 0)


def test_planner_uses_the_measured_engine_cost() -> None:
    machine = Machine(cores=2, ram_gb=64, asterisk_on_host=False, llm="none")
    component, cost = cpu_component(machine, Measured(engine_cpu_ms_per_call_s=99.4))
    assert component.source == "measured" and component.max_calls == 20  # 2000 / 99.4
    assert cost == pytest.approx(0.0994)
    # the whole-path figure wins over media + voice parts, which it already includes
    both = Measured(
        engine_cpu_ms_per_call_s=100, media_cpu_ms_per_call_s=5, voice_cpu_ms_per_call_s=95
    )
    assert cpu_component(machine, both)[0].max_calls == 20
    # with Asterisk on the host its table cost (1/25 core per call) adds to it
    shared = plan(machine.model_copy(update={"asterisk_on_host": True}), both)
    assert next(c for c in shared.components if c.name == "cpu").max_calls == 14  # 2 / 0.14
    # or the telephony side's measured cost, when there is one (bench_capacity's callers)
    measured = both.model_copy(update={"telephony_cpu_ms_per_call_s": 25.0})
    on_host = machine.model_copy(update={"asterisk_on_host": True})
    line, _ = cpu_component(on_host, measured)
    assert line.max_calls == 16 and "telephony 25.0" in line.basis  # 2 / 0.125
    assert cpu_component(machine, measured)[0].max_calls == 20  # Asterisk elsewhere: not added


def test_fixed_and_marginal_cost_from_two_light_loads() -> None:
    # 1 call: 105 ms/s in all; 4 calls: 4 x 71.25 = 285 ms/s -> 60 per call + 45 once
    fixed, marginal = fixed_and_marginal(Step(1, 400, 0, 105.0), Step(4, 450, 0, 71.25))
    assert fixed == pytest.approx(45.0) and marginal == pytest.approx(60.0)
    # costs that do not fall with load (noise): all of it per call, nothing fixed
    assert fixed_and_marginal(Step(1, 0, 0, 50.0), Step(4, 0, 0, 55.0)) == (0.0, 50.0)
    assert fixed_and_marginal(Step(1, 0, 0, 50.0), Step(4, 0, 0, 10.0)) == (0.0, 50.0)
    with pytest.raises(ValueError):
        fixed_and_marginal(Step(4, 0, 0, 50.0), Step(4, 0, 0, 40.0))


def test_planner_takes_the_fixed_part_off_the_cores() -> None:
    machine = Machine(cores=2, ram_gb=64, asterisk_on_host=False, llm="none")
    costs = Measured(engine_cpu_ms_per_call_s=60.0, engine_fixed_cpu_ms_per_s=200.0)
    line, _ = cpu_component(machine, costs)
    assert line.max_calls == 30 and "200 CPU ms per second once" in line.basis  # 1.8 / 0.06
    # a fixed part belongs to a measured engine cost: alone it changes nothing
    table = cpu_component(machine, Measured(engine_fixed_cpu_ms_per_s=200.0))[0]
    assert table.source == "table" and table.max_calls == 4  # 2 cores / (1/2) AI on CPU


def test_search_steps_down_from_a_broken_guess_before_bisecting() -> None:
    # light loads held, the prediction (40) broke: 12 % below it next, not halfway to 8
    results = {1: True, 4: True, 8: True, 40: False}
    assert next_load(results, 40, 64) == 35
    results[35] = True
    assert next_load(results, 40, 64) == 37  # 12 % below 40 is not above 35: bisection
    # loads that hold climb by 15 %
    assert next_load({1: True, 4: True, 8: True, 40: True}, 40, 64) == 46
    tried, found = simulate(38, 35)
    assert found == 38 and len(tried) <= 7
