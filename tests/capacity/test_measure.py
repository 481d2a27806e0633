"""--measure: benchmark output parsing, and running benchmark scripts as subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from operadora.capacity.measure import measure, number, parse_key_values, run_benchmark, to_measured

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
    m = to_measured({"calls_per_core": "500"}, {"cpu_ms_per_call_second": "40"}, {}, [])
    assert m.media_cpu_ms_per_call_s == 2.0 and m.voice_cpu_ms_per_call_s == 40.0
    empty = to_measured({}, {}, {"max_calls": "12"}, [])
    assert empty.measured_max_calls == 12
    assert len(empty.notes) == 2


async def test_runs_with_quick_flag(tmp_path: Path) -> None:
    values, problem = await run_benchmark(write(tmp_path, "b.py", ARGPARSE_BENCH), 30)
    assert problem == ""
    assert values["calls_per_core"] == "400"


async def test_falls_back_when_the_benchmark_has_no_quick_flag(tmp_path: Path) -> None:
    values, problem = await run_benchmark(write(tmp_path, "b.py", NO_QUICK_FLAG_BENCH), 30)
    assert problem == "" and values["cpu_ms_per_call_second"] == "37.5"


async def test_problems_are_reported_not_raised(tmp_path: Path) -> None:
    _, missing = await run_benchmark(tmp_path / "nope.py", 5)
    assert "not found" in missing
    _, failed = await run_benchmark(write(tmp_path, "f.py", "raise SystemExit('no engine')"), 30)
    assert "exited 1" in failed and "no engine" in failed
    _, slow = await run_benchmark(write(tmp_path, "s.py", "import time; time.sleep(30)"), 0.5)
    assert "did not finish" in slow


async def test_measure_reads_both_benchmarks(tmp_path: Path) -> None:
    write(tmp_path, "bench_media.py", ARGPARSE_BENCH)
    write(tmp_path, "bench_voice.py", NO_QUICK_FLAG_BENCH)
    measured = await measure(tmp_path, timeout_s=30)
    assert measured.media_cpu_ms_per_call_s == 2.5
    assert measured.voice_cpu_ms_per_call_s == 37.5
    assert measured.measured_max_calls is None
    assert measured.raw["voice"]["v2v_p50_ms"] == "420"
