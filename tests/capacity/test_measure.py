"""--measure: benchmark output parsing, and running benchmark scripts as subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from operadora.capacity.measure import (
    engine_check,
    measure,
    media_check,
    media_steps,
    number,
    parse_key_values,
    run_benchmark,
    to_measured,
)

pytestmark = pytest.mark.integration

ARGPARSE_BENCH = """
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--quick", action="store_true")
a = p.parse_args()
print("warming up...")
print("calls_per_core: 400" if a.quick and os.environ.get("OPERADORA_BENCH_QUICK") else "bad: 1")
print("cpu_ms_per_call_second: 2.5 ms")
"""

NO_QUICK_FLAG_BENCH = """
import argparse, os
argparse.ArgumentParser().parse_args()
assert os.environ["OPERADORA_BENCH_QUICK"] == "1"
print("v2v_p50_ms: 420")
print("cpu_ms_per_call_second = 37.5")
"""


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_parse_key_values_last_line_wins_and_numbers_are_read() -> None:
    values = parse_key_values("x: 1\nsome log line\n  cpu_ms_per_call_second: 12.5 ms\nx=2\n")
    assert values == {"x": "2", "cpu_ms_per_call_second": "12.5 ms"}
    assert number(values, "missing", "cpu_ms_per_call_second") == 12.5
    assert number({"a": "n/a"}, "a") is None
    assert number({"a": "0"}, "a") is None


def test_to_measured_prefers_cpu_ms_then_calls_per_core() -> None:
    m = to_measured({"calls_per_core": "500"}, {"cpu_ms_per_call_second": "40"}, [])
    assert m.media_cpu_ms_per_call_s == 2.0 and m.engine_cpu_ms_per_call_s == 40.0
    assert m.voice_cpu_ms_per_call_s is None and m.engine_check is None
    empty = to_measured({"max_concurrent_calls": "12"}, {}, [])
    assert empty.media_max_calls == 12 and empty.media_check is None
    assert len(empty.notes) == 2 and "bench_capacity" in empty.notes[1]


# bench_capacity.py's final lines (figures chosen for the arithmetic, not a recorded run)
CAPACITY_OUTPUT = """
N=   1  cpu   105.4 ms/call-s  v2v p95     381 ms  lost   0  ok
cpu_ms_per_call_second_at_1: 105.4
cpu_ms_per_call_second: 60.0
fixed_cpu_ms_per_second: 45.4
caller_cpu_ms_per_call_second: 20.0
caller_fixed_cpu_ms_per_second: 4.6
cores: 2
predicted_max_calls: 99
measured_max_calls: 22
prediction_error_pct: +350.0
"""


def test_engine_check_predicts_from_the_costs_not_the_measured_maximum() -> None:
    values = parse_key_values(CAPACITY_OUTPUT)
    check = engine_check(values)
    assert check is not None
    # the planner's cpu component: floor((2000 - 45.4 - 4.6) / (60 + 20)); the printed 99 and
    # the measured maximum are not read into it
    assert check.predicted == 24
    assert check.measured == 22 and check.error_pct == pytest.approx(9.1)
    assert check.within_15_pct and "50 fixed) / (60 engine + 20 caller)" in check.basis
    no_fixed = {k: v for k, v in values.items() if "fixed" not in k}
    plain = engine_check(no_fixed)
    assert plain is not None and plain.predicted == 25  # 2000 / 80
    far = engine_check({**values, "measured_max_calls": "12"})
    assert far is not None and far.error_pct == pytest.approx(100.0) and not far.within_15_pct
    assert engine_check({**values, "measured_max_calls": "0"}) is None
    assert engine_check({"measured_max_calls": "18"}) is None
    no_callers = {k: v for k, v in values.items() if k != "caller_cpu_ms_per_call_second"}
    assert engine_check(no_callers) is None


def test_to_measured_carries_the_engine_figures_and_says_the_verdict() -> None:
    m = to_measured({}, parse_key_values(CAPACITY_OUTPUT), [])
    assert m.engine_cpu_ms_per_call_s == 60.0 and m.engine_max_calls == 22
    assert m.engine_fixed_cpu_ms_per_s == 45.4
    # the bench's callers are not Asterisk: the real plan keeps Asterisk's table figure
    assert m.telephony_cpu_ms_per_call_s is None
    assert m.engine_check is not None and m.engine_check.predicted == 24
    assert any("predicted 24 calls vs 22 measured, +9.1 % (within" in n for n in m.notes)
    broke = to_measured({}, {"cpu_ms_per_call_second": "99", "measured_max_calls": "0"}, [])
    assert broke.engine_check is None
    assert any("one call already broke" in n for n in broke.notes)


def step_line(n: int, cpu: float, p99: float, ok: bool) -> str:
    """A load-step line in bench_media's report() format."""
    return (
        f"N={n:5d}  cpu {cpu:6.3f} ms/call-s  pacing p99 {p99:6.2f} ms (max {p99 * 2:6.1f}, "
        f"server-side p99 {p99:5.1f})  missing 0  late 0  server-lost 0 (skipped 0)  "
        f"connected {n}  vad 31.2 win/call-s  {'ok' if ok else 'BROKEN'}"
    )


MEDIA_OUTPUT = "\n".join(
    [
        "bench-media: vad=batch workers=1 uvloop=True generators=2 priority=10 cores=2 "
        "load=1.20 quick=True",
        step_line(50, 2.0, 0.4, True),
        step_line(100, 2.1, 0.9, True),
        step_line(200, 2.4, 25.0, False),
        step_line(150, 2.3, 3.0, True),
        "calls_per_core: 434",
        "cpu_ms_per_call_second: 2.300",
        "pacing_p99_ms: 3.00",
        "max_concurrent_calls: 150",
    ]
)


def test_pacing_broken_at_the_smallest_load_is_said() -> None:
    text = "\n".join([step_line(50, 6.0, 19.7, False), "max_concurrent_calls: 0"])
    measured = to_measured(parse_key_values(text), {}, [], text)
    assert measured.media_max_calls == 0 and measured.media_check is None
    assert any("broke already at its smallest load (N=50)" in n for n in measured.notes)


def test_media_steps_and_the_prediction_check() -> None:
    steps, workers = media_steps(MEDIA_OUTPUT)
    assert workers == 1
    assert [(s.calls, s.cpu_ms_per_call_s, s.ok) for s in steps] == [
        (50, 2.0, True),
        (100, 2.1, True),
        (200, 2.4, False),
        (150, 2.3, True),
    ]
    check = media_check(steps, 150, workers)
    assert check is not None
    assert check.predicted == 500  # 1 core x 1000 / 2.0 ms at N=50
    assert check.error_pct == pytest.approx(233.3) and not check.within_15_pct
    close = media_check(steps, 470, workers)
    assert close is not None and close.within_15_pct
    measured = to_measured(parse_key_values(MEDIA_OUTPUT), {}, [], MEDIA_OUTPUT)
    assert measured.media_max_calls == 150 and measured.media_cpu_ms_per_call_s == 2.3
    assert measured.media_check is not None and measured.media_check.predicted == 500


async def test_runs_with_quick_flag(tmp_path: Path) -> None:
    values, text, problem = await run_benchmark(write(tmp_path, "b.py", ARGPARSE_BENCH), 30)
    assert problem == "" and text.startswith("warming up...")
    assert values["calls_per_core"] == "400"


async def test_extra_arguments_are_dropped_when_refused(tmp_path: Path) -> None:
    bench = write(tmp_path, "b.py", ARGPARSE_BENCH)  # knows --quick, not --start
    values, _, problem = await run_benchmark(bench, 30, ("--start", "10"))
    assert problem == "" and values["calls_per_core"] == "400"
    takes_start = write(
        tmp_path,
        "c.py",
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--quick', "
        "action='store_true')\np.add_argument('--start', type=int)\n"
        "print('start:', p.parse_args().start)",
    )
    values, _, problem = await run_benchmark(takes_start, 30, ("--start", "10"))
    assert problem == "" and values["start"] == "10"


async def test_falls_back_when_the_benchmark_has_no_quick_flag(tmp_path: Path) -> None:
    values, _, problem = await run_benchmark(write(tmp_path, "b.py", NO_QUICK_FLAG_BENCH), 30)
    assert problem == "" and values["cpu_ms_per_call_second"] == "37.5"


async def test_problems_are_reported_not_raised(tmp_path: Path) -> None:
    _, _, missing = await run_benchmark(tmp_path / "nope.py", 5)
    assert "not found" in missing
    _, _, failed = await run_benchmark(write(tmp_path, "f.py", "raise SystemExit('no engine')"), 30)
    assert "exited 1" in failed and "no engine" in failed
    _, _, slow = await run_benchmark(write(tmp_path, "s.py", "import time; time.sleep(30)"), 0.5)
    assert "did not finish" in slow


async def test_measure_reads_both_benchmarks(tmp_path: Path) -> None:
    write(tmp_path, "bench_media.py", ARGPARSE_BENCH)
    write(tmp_path, "bench_capacity.py", NO_QUICK_FLAG_BENCH)
    write(tmp_path, "bench_voice.py", "raise SystemExit('bench_voice is not run')")
    measured = await measure(tmp_path, timeout_s=30)
    assert measured.media_cpu_ms_per_call_s == 2.5
    assert measured.engine_cpu_ms_per_call_s == 37.5
    assert measured.media_max_calls is None and measured.engine_max_calls is None
    assert measured.raw["engine"]["v2v_p50_ms"] == "420"
    assert not any("bench_voice" in n for n in measured.notes)


# a step line as bench_media printed it on this machine (2 shared cores, load 6)
RECORDED_STEP = (
    "N=   50  cpu  5.830 ms/call-s  pacing p99   9.72 ms (max   10.1, server-side p99"
    "  26.6)  missing 6228  late 828  server-lost 5450 (skipped 5450)  connected 50  "
    "vad 31.8 win/call-s  bare-timer p99 36.3 ms  BROKEN"
)


def test_recorded_bench_media_step_line() -> None:
    steps, workers = media_steps("bench-media: vad=batch@16000 workers=1\n" + RECORDED_STEP)
    assert workers == 1
    assert [(s.calls, s.cpu_ms_per_call_s, s.ok) for s in steps] == [(50, 5.83, False)]
