"""``--measure``: run the project's benchmarks on this machine and read their figures.

The benchmarks (``bench/bench_media.py``, ``bench/bench_voice.py``, ``bench/bench_calls.py``)
end with ``key: value`` lines. They are parsed defensively: a missing script, a failure, a
timeout or a missing line leaves the table figure in place and says why.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from operadora.capacity.model import Measured

_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.]*)\s*[:=]\s*(\S.*?)\s*$")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
QUICK_ENV = {"OPERADORA_BENCH_QUICK": "1"}


def parse_key_values(text: str) -> dict[str, str]:
    """``key: value`` (or ``key=value``) lines; a later line wins over an earlier one."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if match := _LINE.match(line):
            found[match.group(1).lower()] = match.group(2)
    return found


def number(values: dict[str, str], *keys: str) -> float | None:
    """The first positive number among ``keys`` (``"12.5 ms"`` reads 12.5)."""
    for key in keys:
        raw = values.get(key)
        if raw is None:
            continue
        match = _NUMBER.search(raw)
        if match is not None and float(match.group()) > 0:
            return float(match.group())
    return None


async def run_benchmark(script: Path, timeout_s: float) -> tuple[dict[str, str], str]:
    """Run one benchmark in quick mode; ``(values, problem)`` where problem is '' on success."""
    if not await asyncio.to_thread(script.is_file):
        return {}, f"{script} not found"
    env = {**os.environ, **QUICK_ENV}
    for args in (["--quick"], []):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return {}, f"{script.name} did not finish in {timeout_s:g} s"
        if proc.returncode == 2 and b"--quick" in err and args:
            continue  # this benchmark has no --quick flag; QUICK_ENV still asks for quick mode
        values = parse_key_values(out.decode(errors="replace"))
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return values, f"{script.name} exited {proc.returncode}: {tail[0][:200]}"
        return values, ""
    return {}, f"{script.name} could not be run"


def to_measured(
    media: dict[str, str], voice: dict[str, str], calls: dict[str, str], notes: list[str]
) -> Measured:
    """Per-call CPU costs from the benchmarks' documented lines."""
    media_cost = number(media, "cpu_ms_per_call_second")
    if media_cost is None and (per_core := number(media, "calls_per_core")) is not None:
        media_cost = 1000 / per_core
    voice_cost = number(voice, "cpu_ms_per_call_second")
    if voice_cost is None and (per_core := number(voice, "calls_per_core")) is not None:
        voice_cost = 1000 / per_core
    if media_cost is None:
        notes.append("bench_media gave neither cpu_ms_per_call_second nor calls_per_core")
    if voice_cost is None:
        notes.append("bench_voice gave neither cpu_ms_per_call_second nor calls_per_core")
    max_calls = number(calls, "max_calls", "max_concurrent_calls", "calls_max")
    return Measured(
        media_cpu_ms_per_call_s=media_cost,
        voice_cpu_ms_per_call_s=voice_cost,
        measured_max_calls=int(max_calls) if max_calls is not None else None,
        raw={"media": media, "voice": voice, "calls": calls},
        notes=notes,
    )


async def measure(bench_dir: Path, timeout_s: float = 600.0, with_calls: bool = False) -> Measured:
    """Run bench_media and bench_voice (and bench_calls if asked) one after the other."""
    notes: list[str] = []
    results: list[dict[str, str]] = []
    names = ["bench_media.py", "bench_voice.py"] + (["bench_calls.py"] if with_calls else [])
    for name in names:
        values, problem = await run_benchmark(bench_dir / name, timeout_s)
        if problem:
            notes.append(problem)
        results.append(values)
    if not with_calls:
        results.append({})
    return to_measured(results[0], results[1], results[2], notes)
