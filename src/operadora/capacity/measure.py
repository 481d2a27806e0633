"""``--measure``: run the project's benchmarks on this machine and read their figures.

The benchmarks (``bench/bench_media.py``, ``bench/bench_voice.py``) end with ``key: value``
lines; bench_media also prints one line per load step, used to check the per-call cost
model. They are parsed defensively: a missing script, a failure, a timeout or a missing line
leaves the table figure in place and says why.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import sys
from pathlib import Path

from operadora.capacity.model import Check, Measured, MediaStep

_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.]*)\s*[:=]\s*(\S.*?)\s*$")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_STEP = re.compile(r"^N=\s*(\d+)\s+cpu\s+([\d.]+)\s+ms/call-s.*?\b(ok|BROKEN)\s*$", re.M)
_WORKERS = re.compile(r"\bworkers=(\d+)")
QUICK_ENV = {"OPERADORA_BENCH_QUICK": "1"}
# start the media load small: on a small or busy machine pacing may break before 50 calls
MEDIA_ARGS = ("--start", "10")


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


async def run_benchmark(
    script: Path, timeout_s: float, extra: tuple[str, ...] = ()
) -> tuple[dict[str, str], str, str]:
    """Run one benchmark in quick mode: ``(values, stdout, problem)``, problem '' on success.

    ``--quick`` and ``extra`` arguments are dropped in turn if the script's argument parser
    refuses them (exit status 2)."""
    if not await asyncio.to_thread(script.is_file):
        return {}, "", f"{script} not found"
    env = {**os.environ, **QUICK_ENV}
    attempts = [["--quick", *extra], ["--quick"], []] if extra else [["--quick"], []]
    for args in attempts:
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
            return {}, "", f"{script.name} did not finish in {timeout_s:g} s"
        if proc.returncode == 2 and b"unrecognized arguments" in err and args:
            continue  # an older benchmark: QUICK_ENV still asks for quick mode
        text = out.decode(errors="replace")
        values = parse_key_values(text)
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return values, text, f"{script.name} exited {proc.returncode}: {tail[0][:200]}"
        return values, text, ""
    return {}, "", f"{script.name} could not be run"


def media_steps(text: str) -> tuple[list[MediaStep], int]:
    """bench_media's step lines (``N=  50  cpu 0.812 ms/call-s ... ok``) and its workers."""
    steps = [
        MediaStep(calls=int(m.group(1)), cpu_ms_per_call_s=float(m.group(2)), ok=m.group(3) == "ok")
        for m in _STEP.finditer(text)
    ]
    workers = _WORKERS.search(text)
    return steps, int(workers.group(1)) if workers else 1


def media_check(steps: list[MediaStep], measured_max: int | None, cores: int) -> Check | None:
    """Predict the media server's maximum from the per-call cost at the lightest load, and set
    it against the largest load the benchmark carried."""
    if not steps or not measured_max:
        return None
    lightest = min(steps, key=lambda s: s.calls)
    predicted = math.floor(cores * 1000 / lightest.cpu_ms_per_call_s)
    error = (predicted - measured_max) / measured_max * 100
    return Check(
        predicted=predicted,
        measured=measured_max,
        error_pct=round(error, 1),
        within_15_pct=abs(error) <= 15,
        basis=f"{cores} server core(s) x 1000 / {lightest.cpu_ms_per_call_s:.3f} CPU ms per "
        f"call-second at N={lightest.calls}",
    )


def _count(values: dict[str, str], *keys: str) -> int | None:
    """A whole count that may be 0 (``max_concurrent_calls: 0``)."""
    for key in keys:
        match = _NUMBER.search(values.get(key, ""))
        if match is not None and float(match.group()) >= 0:
            return int(float(match.group()))
    return None


def _cost(values: dict[str, str]) -> float | None:
    cost = number(values, "cpu_ms_per_call_second")
    if cost is None and (per_core := number(values, "calls_per_core")) is not None:
        cost = 1000 / per_core
    return cost


def to_measured(
    media: dict[str, str], voice: dict[str, str], notes: list[str], media_text: str = ""
) -> Measured:
    """Per-call CPU costs from the benchmarks' documented lines."""
    media_cost, voice_cost = _cost(media), _cost(voice)
    if media_cost is None:
        notes.append("bench_media gave neither cpu_ms_per_call_second nor calls_per_core")
    if voice_cost is None:
        notes.append("bench_voice gave neither cpu_ms_per_call_second nor calls_per_core")
    steps, cores = media_steps(media_text)
    media_max = _count(media, "max_concurrent_calls", "max_calls")
    if media_max == 0:
        smallest = min((s.calls for s in steps), default=None)
        notes.append(
            "bench_media: pacing broke already at its smallest load"
            + (f" (N={smallest})" if smallest else "")
            + ": no maximum measured (is the CPU busy with other work?)"
        )
    return Measured(
        media_cpu_ms_per_call_s=media_cost,
        voice_cpu_ms_per_call_s=voice_cost,
        media_max_calls=media_max,
        media_server_cores=cores,
        media_steps=steps,
        media_check=media_check(steps, media_max, cores),
        raw={"media": media, "voice": voice},
        notes=notes,
    )


async def measure(bench_dir: Path, timeout_s: float = 600.0) -> Measured:
    """Run bench_media then bench_voice (never together: each wants the CPU to itself)."""
    notes: list[str] = []
    media, media_text, problem = await run_benchmark(
        bench_dir / "bench_media.py", timeout_s, MEDIA_ARGS
    )
    if problem:
        notes.append(problem)
    voice, _, problem = await run_benchmark(bench_dir / "bench_voice.py", timeout_s)
    if problem:
        notes.append(problem)
    return to_measured(media, voice, notes, media_text)
