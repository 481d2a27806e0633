"""The whole engine's capacity model: cost curves, Whisper's queue, the prediction from light
loads. Synthetic figures chosen for the arithmetic, not recorded runs."""

from __future__ import annotations

import dataclasses
import math

import pytest

from operadora.capacity.engine import (
    CostCurve,
    EngineModel,
    LightLoad,
    SttSpin,
    fit_cost,
    parse_light_load,
    parse_stt_spin,
    predict,
)
from operadora.capacity.measure import (
    engine_check,
    light_loads,
    parse_key_values,
    stt_spin,
    to_measured,
)
from operadora.capacity.model import Machine, Measured, plan
from operadora.capacity.records import Spread

pytestmark = pytest.mark.unit


def load(
    calls: int,
    server: float,
    stt: float = 0.0,
    callers: float = 0.0,
    *,
    decode_ms: float = 1.0,
    turns: float = 0.2,
    decodes_per_turn: float = 1.0,
    p50: float = 300.0,
    p95: float = 400.0,
) -> LightLoad:
    return LightLoad(
        calls=calls,
        server_cpu_ms=server,
        stt_cpu_ms=stt,
        caller_cpu_ms=callers,
        turns=turns,
        decodes=turns * decodes_per_turn,
        decode_ms=decode_ms,
        decode_p95_ms=decode_ms * 1.3,
        v2v_p50_ms=p50,
        v2v_p95_ms=p95,
    )


def test_fit_cost_recovers_a_power_law_and_reads_a_rising_cost_as_flat() -> None:
    curve = fit_cost([(n, 90.0 * n**-0.25) for n in (1, 4, 8)])
    assert curve.alpha == pytest.approx(0.25) and curve.at_1 == pytest.approx(90.0)
    assert curve.per_call(36) == pytest.approx(90.0 * 36**-0.25)
    flat = fit_cost([(1, 50.0), (4, 55.0)])
    assert flat.alpha == 0.0 and flat.per_call(100) == pytest.approx(flat.per_call(1))
    steep = fit_cost([(1, 100.0), (10, 1.0)])  # alpha 2 would make total CPU fall with N
    assert steep.alpha == 0.9
    single = fit_cost([(4, 30.0)])
    assert single.alpha == 0.0 and single.at_1 == pytest.approx(30.0)
    assert fit_cost([(1, 0.0), (4, 0.0)]) == CostCurve(0.0, 0.0)


def test_light_load_line_round_trip_and_bad_lines() -> None:
    original = load(4, 62.6, 33.0, 10.0, decode_ms=87.0)
    key, value = original.line().split(": ", 1)
    parsed = parse_light_load(key, value)
    assert parsed is not None and parsed.calls == 4
    assert parsed.server_cpu_ms == pytest.approx(62.6) and parsed.decode_ms == pytest.approx(87)
    assert parse_light_load("light_load_x", value) is None
    assert parse_light_load("cores", value) is None
    assert parse_light_load(key, value.replace("decode 87.0", "decode nan")) is None
    assert parse_light_load(key, value.replace(" stt 33.00", "")) is None  # incomplete
    assert parse_light_load("light_load_0", value) is None


def test_the_light_load_line_carries_other_processes_slack_and_dropped_decodes() -> None:
    original = dataclasses.replace(
        load(8, 54.0, 31.0, 6.6, decode_ms=88.0),
        others_cores=0.21,
        slack_ms=Spread(5.0, 40.0, 120.0),
        cancelled=0.35,
        cancel_ms=Spread(20.0, 60.0, 150.0),
    )
    key, value = original.line().split(": ", 1)
    parsed = parse_light_load(key, value)
    assert parsed is not None
    assert parsed.others_cores == pytest.approx(0.21) and parsed.cancelled == pytest.approx(0.35)
    assert parsed.slack_ms == Spread(5.0, 40.0, 120.0)
    assert parsed.cancel_ms == Spread(20.0, 60.0, 150.0)
    # an older benchmark's line, without them: nothing hidden, nothing dropped
    older = value.split(" others ")[0]
    parsed_older = parse_light_load(key, older)
    assert parsed_older is not None and parsed_older.slack_ms == Spread()
    assert parsed_older.cancelled is None and parsed_older.others_cores == 0.0
    assert " cancelled " not in parsed_older.line()  # printed back without the drops
    assert parse_light_load(key, value.replace("others 0.21", "others -1")) is None


def queued(**changes: object) -> list[LightLoad]:
    """Light loads of an engine that Whisper's queue limits: 1.5 decodes per turn of 150 ms
    every 5 s, cheap CPU."""
    base = [
        load(n, 4.0, 2.0, decode_ms=150.0, turns=0.2, decodes_per_turn=1.5, p50=300, p95=400)
        for n in (1, 4, 8)
    ]
    return [dataclasses.replace(x, **changes) for x in base]  # type: ignore[arg-type]


def test_the_end_of_turn_silence_hides_part_of_the_wait() -> None:
    plain = EngineModel.from_light(queued(), cores=2)
    hidden = EngineModel.from_light(queued(slack_ms=Spread(50.0, 120.0, 200.0)), cores=2)
    assert hidden.slack_ms == Spread(50.0, 120.0, 200.0)
    n = plain.predict().max_calls
    assert plain.predict().limit == "latency" and n > 1
    # the same queue, so the same waits: the answer comes up to the slack sooner
    assert hidden.v2v_p95_ms(n) < plain.v2v_p95_ms(n)
    assert plain.v2v_p95_ms(n) - hidden.v2v_p95_ms(n) <= 200.0
    assert hidden.predict().max_calls > n
    # nothing hidden at all: the older model's figure
    assert EngineModel.from_light(queued(slack_ms=Spread()), cores=2).predict() == plain.predict()


def test_dropped_speculative_decodes_still_waiting_are_never_decoded() -> None:
    plain = EngineModel.from_light(queued(), cores=2)  # an older benchmark: no drops measured
    assert plain.extras == pytest.approx(0.5) and not plain.drops
    early = EngineModel.from_light(queued(cancelled=1.0, cancel_ms=Spread(30, 60, 100)), 2)
    assert early.drops and early.cancelled == pytest.approx(1.0)
    assert early.cancel_ms.p50 == pytest.approx(60.0)
    # none dropped before it was done: all dropped after, at the earliest when their 150 ms
    # decode ended
    after = EngineModel.from_light(queued(cancelled=0.0), cores=2)
    assert after.drops
    n = plain.predict().max_calls
    # with a queue, the speculative decodes it skips lighten it: shorter waits, more calls;
    # the sooner they are dropped, the more are skipped
    assert early.v2v_p95_ms(n) < plain.v2v_p95_ms(n) and after.v2v_p95_ms(n) < plain.v2v_p95_ms(n)
    assert early.predict().max_calls >= after.predict().max_calls > n
    # dropped only long after (longer than any wait below the maximum): nothing skipped
    late = EngineModel.from_light(queued(cancelled=1.0, cancel_ms=Spread(9e3, 9e3, 9e3)), 2)
    assert late.predict().max_calls == n
    assert late.v2v_p95_ms(n) == pytest.approx(plain.v2v_p95_ms(n))
    # no wait at one call: nothing skipped, the light loads' own decodes
    assert early.v2v_p95_ms(1) == pytest.approx(plain.v2v_p95_ms(1))
    # the basis says it, once
    assert "dropped, 100 % after 60 ms" in early.predict().basis
    assert "dropped" not in plain.predict().basis
    assert early.predict().basis.count("hidden by the end of turn") == 1


def test_cpu_bound_engine_stops_where_the_cores_run_out() -> None:
    # 100 CPU ms per call-second, flat, nothing for Whisper to queue on: 2 cores carry 20,
    # and at 20 nothing is left for Whisper's decode: 19 hold
    loads = [load(1, 100.0, callers=0.0), load(4, 100.0, callers=0.0)]
    result = predict(loads, cores=2)
    assert result.max_calls == 19 and result.limit == "cpu"
    assert result.cpu_cores == pytest.approx(1.9)
    assert predict(loads, cores=4).max_calls == 39


def test_economy_of_scale_raises_the_prediction() -> None:
    flat = [load(1, 100.0), load(4, 100.0), load(8, 100.0)]
    falling = [load(n, 100.0 * n**-0.3) for n in (1, 4, 8)]
    assert predict(falling, cores=2).max_calls > 2 * predict(flat, cores=2).max_calls


def test_whisper_queue_limits_before_the_cpu() -> None:
    # cheap CPU; every 5 s each call asks 400 ms of Whisper: it is full at 12.5 calls, and the
    # closed loop's p95 passes 1 s (600 ms of budget for waiting) before that
    loads = [load(n, 2.0, 1.0, decode_ms=400.0, turns=0.2, p50=500.0, p95=600.0) for n in (1, 4)]
    model = EngineModel.from_light(loads, cores=2)
    result = model.predict()
    assert result.limit == "latency" and 4 <= result.max_calls < 12
    assert model.v2v_p95_ms(result.max_calls) <= 1000 < model.v2v_p95_ms(result.max_calls + 1)
    # decodes twice as fast: a larger maximum; the same inputs: the same figure every time
    faster = [load(n, 2.0, 1.0, decode_ms=200.0, turns=0.2, p50=500.0, p95=600.0) for n in (1, 4)]
    assert predict(faster, cores=2).max_calls > result.max_calls
    assert model.predict() == result


def test_decodes_stretch_as_the_rest_of_the_engine_takes_the_cpu() -> None:
    # the rest of the engine (server minus Whisper) 30 ms per call-second, flat, callers 10
    loads = [load(n, 60.0, 30.0, 10.0) for n in (1, 4)]
    model = EngineModel.from_light(loads, cores=2)
    assert model.others(10) == pytest.approx(0.4)  # 10 x 40 ms
    light = model.others_light
    assert model.stretch(10) == pytest.approx((2 - light) / (2 - 0.4))
    assert model.stretch(50) == math.inf  # the rest takes both cores
    assert model.v2v_p95_ms(50) == math.inf


def test_a_single_call_that_breaks_predicts_nothing() -> None:
    loads = [load(n, 10.0, decode_ms=10.0, p50=1500.0, p95=2000.0) for n in (1, 4)]
    assert predict(loads, cores=2).max_calls == 0


def test_two_different_loads_are_needed() -> None:
    with pytest.raises(ValueError):
        EngineModel.from_light([load(1, 90.0), load(1, 91.0)], cores=2)
    with pytest.raises(ValueError):
        EngineModel.from_light([load(1, 90.0), load(4, 60.0)], cores=0)


LIGHT = [
    load(1, 90.0, 32.0, 22.0, decode_ms=80.0, turns=0.15, decodes_per_turn=1.4, p50=255),
    load(4, 63.0, 33.0, 10.5, decode_ms=87.0, turns=0.15, decodes_per_turn=1.4, p50=258),
    load(8, 54.0, 31.0, 6.6, decode_ms=88.0, turns=0.15, decodes_per_turn=1.4, p50=259),
]


def bench_output(measured_max: int, printed_prediction: int) -> str:
    return "\n".join(
        [
            "N=   1  cpu    90.0 ms/call-s  v2v p95     380 ms  lost   0  ok",
            *(x.line() for x in LIGHT),
            "cpu_ms_per_call_second_at_1: 90.0",
            "cpu_ms_per_call_second: 54.0",
            "fixed_cpu_ms_per_second: 36.0",
            "caller_cpu_ms_per_call_second: 6.0",
            "caller_fixed_cpu_ms_per_second: 16.0",
            "cores: 2",
            f"predicted_max_calls: {printed_prediction}",
            f"measured_max_calls: {measured_max}",
        ]
    )


def test_engine_check_predicts_from_the_light_loads_not_the_maximum() -> None:
    expected = predict(LIGHT, cores=2).max_calls
    assert expected > 0
    values = parse_key_values(bench_output(measured_max=40, printed_prediction=999))
    assert [x.calls for x in light_loads(values)] == [1, 4, 8]
    check = engine_check(values)
    assert check is not None and check.predicted == expected  # not the printed 999
    assert check.error_pct == pytest.approx(round((expected - 40) / 40 * 100, 1))
    assert "from light loads N=1,4,8" in check.basis
    other = engine_check(parse_key_values(bench_output(measured_max=20, printed_prediction=1)))
    assert other is not None and other.predicted == expected  # the maximum never feeds it
    assert other.within_15_pct == (abs(expected - 20) / 20 <= 0.15)


def test_engine_check_says_when_other_processes_disturbed_the_run() -> None:
    quiet = engine_check(parse_key_values(bench_output(40, 0)))
    assert quiet is not None and "disturbed" not in quiet.basis
    text = bench_output(40, 0).replace(
        LIGHT[1].line(), dataclasses.replace(LIGHT[1], others_cores=0.45).line()
    )
    noisy = engine_check(parse_key_values(text + "\nother_processes_cores_max: 0.55"))
    assert noisy is not None
    assert "other processes took 0.45 cores during light load N=4" in noisy.basis
    assert "up to 0.55 cores during the search" in noisy.basis
    assert noisy.predicted == quiet.predicted  # said, not used: the bench measures again


def test_plan_gets_an_engine_component_with_asterisk_in_the_callers_place() -> None:
    measured = to_measured({}, parse_key_values(bench_output(40, 0)), [])
    assert len(measured.engine_light_loads) == 3
    elsewhere = Machine(cores=2, ram_gb=64, asterisk_on_host=False, llm="none")
    alone = next(c for c in plan(elsewhere, measured).components if c.name == "engine")
    on_host = plan(elsewhere.model_copy(update={"asterisk_on_host": True}), measured)
    shared = next(c for c in on_host.components if c.name == "engine")
    assert alone.source == "measured" and alone.max_calls is not None
    assert shared.max_calls is not None and 0 < shared.max_calls < alone.max_calls
    assert "telephony 40 CPU ms" in shared.basis  # Asterisk's 1/25 core per call
    assert not any(c.name == "engine" for c in plan(elsewhere, Measured()).components)


SPIN = SttSpin(decode_ms=80.0, busy_cpu_ms=160.0, gap10_cpu_ms=172.0, gap100_cpu_ms=200.0)


def test_stt_spin_line_round_trip_and_what_a_gap_costs() -> None:
    assert parse_stt_spin(SPIN.line()) == SPIN
    assert SPIN.spin_ms == 40.0
    assert SPIN.spin_cores == pytest.approx(1.2)  # 12 ms of CPU in the first 10 ms
    assert SPIN.after_gap_ms(0.0) == 0.0
    assert SPIN.after_gap_ms(0.010) == pytest.approx(12.0)
    assert SPIN.after_gap_ms(0.5) == 40.0  # it stops: a long gap costs the whole spin
    # gap10 no dearer than back to back: the spin at least spreads over the 100 ms
    flat = SttSpin(80.0, 160.0, 160.0, 180.0)
    assert flat.spin_cores == pytest.approx(0.2)
    for bad in ("", "decode 80 busy_cpu 160", "decode x busy_cpu 1 gap10_cpu 1 gap100_cpu 1"):
        assert parse_stt_spin(bad) is None
    assert parse_stt_spin("decode 80 busy_cpu 0 gap10_cpu 1 gap100_cpu 1") is None
    assert parse_stt_spin("decode 80 busy_cpu 1 gap10_cpu -1 gap100_cpu 1") is None


def spinning_loads(decode_cpu: float, spin: float, rest: float = 2.0) -> list[LightLoad]:
    """Light loads whose Whisper threads cost ``decode_cpu`` per decode plus ``spin`` after it
    (every light-load decode is followed by a long gap); the rest of the engine ``rest``."""
    whisper = 0.2 * (decode_cpu + spin)  # 0.2 decodes per call-second
    return [load(n, rest + whisper, whisper, 1.0, decode_ms=80.0, turns=0.2) for n in (1, 4, 8)]


def test_whisper_cpu_follows_the_queue_not_the_light_loads_curve() -> None:
    loads = spinning_loads(160.0, 40.0)
    curve = EngineModel.from_light(loads, cores=4)
    queued = EngineModel.from_light(loads, cores=4, spin=SPIN)
    assert queued.decode_cpu_ms == pytest.approx(160.0)  # the light loads' 200 less the spin
    # at one call every decode has a long gap after it: the light loads' own cost
    assert queued.whisper_cores(1) * 1000 == pytest.approx(0.2 * 200.0, rel=0.05)
    assert curve.whisper_cores(1) * 1000 == pytest.approx(0.2 * 200.0, rel=0.01)
    # with Whisper near full the decodes run back to back: each costs 160, not 200
    busy = 50  # 50 calls x 0.2 turns x 80 ms: Whisper 80 % busy
    per_call = queued.whisper_cores(busy) * 1000 / busy
    assert 0.2 * 160.0 <= per_call < 0.2 * 185.0
    assert curve.whisper_cores(busy) * 1000 / busy == pytest.approx(0.2 * 200.0, rel=0.01)
    assert "160 CPU ms per decode run, and up to 40 spinning" in queued.predict().basis


def test_a_spin_that_stops_at_full_load_raises_a_cpu_bound_prediction() -> None:
    # Whisper dear enough that the light loads' curve runs out of cores first
    loads = spinning_loads(300.0, 200.0, rest=20.0)
    spin = SttSpin(80.0, 300.0, 350.0, 500.0)
    plain = predict(loads, cores=2)
    queued = predict(loads, cores=2, spin=spin)
    assert plain.limit == "cpu"
    assert queued.max_calls > plain.max_calls
    assert predict(loads, cores=2, spin=spin) == queued  # the same figure every time


def test_the_bench_stt_spin_line_reaches_the_check_and_the_plan() -> None:
    text = bench_output(40, 0) + f"\nstt_spin: {SPIN.line()}"
    values = parse_key_values(text)
    assert stt_spin(values) == SPIN
    assert stt_spin(parse_key_values(bench_output(40, 0))) is None  # an older bench
    check = engine_check(values)
    assert check is not None and "spinning in each idle gap" in check.basis
    measured = to_measured({}, values, [])
    assert measured.engine_stt_spin == SPIN
    machine = Machine(cores=2, ram_gb=64, asterisk_on_host=False, llm="none")
    engine = next(c for c in plan(machine, measured).components if c.name == "engine")
    assert "spinning in each idle gap" in engine.basis
