"""``--measure``: run the project's benchmarks on this machine and read their figures.

``bench/bench_media.py`` (the media path alone) and ``bench/bench_capacity.py`` (the whole AI
call path: media, VAD, STT, agent, TTS in one server process, with real callers) end with
``key: value`` lines; bench_media also prints one line per load step. bench_capacity's
per-call CPU cost at one call feeds the planner's ``cpu`` component, and its measured maximum
is set against the planner's own prediction from that cost. They are parsed defensively: a
missing script, a failure, a timeout or a missing line leaves the table figure in place and
says why.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import sys
from pathlib import Path

from operadora.capacity.engine import LightLoad, SttSpin, parse_light_load, parse_stt_spin, predict
from operadora.capacity.model import Check, Machine, Measured, MediaStep, cpu_component
from operadora.capacity.ramp import OTHERS_LIMIT_CORES, error_pct

_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.]*)\s*[:=]\s*(\S.*?)\s*$")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_STEP = re.compile(r"^N=\s*(\d+)\s+cpu\s+([\d.]+)\s+ms/call-s.*?\b(ok|BROKEN)\s*$", re.M)
_WORKERS = re.compile(r"\bworkers=(\d+)")
QUICK_ENV = {"OPERADORA_BENCH_QUICK": "1"}
# start the media load small: on a small or busy machine pacing may break before 50 calls
MEDIA_ARGS = ("--start", "10", "--no-baseline")  # the plan needs no asyncio-engine baseline


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
    return _check(
        predicted,
        measured_max,
        f"{cores} server core(s) x 1000 / {lightest.cpu_ms_per_call_s:.3f} CPU ms per "
        f"call-second at N={lightest.calls}",
    )


def _check(predicted: int, measured: int, basis: str) -> Check:
    """A prediction set against the benchmark's measured maximum (> 0)."""
    error = error_pct(predicted, measured)
    return Check(
        predicted=predicted,
        measured=measured,
        error_pct=round(error, 1),
        within_15_pct=abs(error) <= 15,
        basis=basis,
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


def light_loads(engine: dict[str, str]) -> list[LightLoad]:
    """bench_capacity's ``light_load_N`` lines, lightest first (malformed ones left out)."""
    found = [parse_light_load(key, value) for key, value in engine.items()]
    return sorted((x for x in found if x is not None), key=lambda x: x.calls)


def stt_spin(engine: dict[str, str]) -> SttSpin | None:
    """bench_capacity's ``stt_spin`` line: Whisper's CPU per decode back to back and after
    idle gaps (None: an older benchmark, or an engine without Whisper)."""
    value = engine.get("stt_spin")
    return parse_stt_spin(value) if value else None


def engine_check(engine: dict[str, str]) -> Check | None:
    """The planner's prediction for bench_capacity's machine from its light loads alone
    (``operadora.capacity.engine``: cost curves and Whisper's queue, its callers standing in
    for Asterisk on the same cores), set against the most calls the benchmark carried. The
    measured maximum never feeds the prediction. Output without light-load lines (an older
    benchmark) gets the older model: the cpu component from the costs at N=1 and N=4."""
    measured_max = _count(engine, "measured_max_calls")
    if not measured_max:
        return None
    cores = _count(engine, "cores") or 1
    loads = light_loads(engine)
    if len({x.calls for x in loads}) >= 2:
        prediction = predict(loads, cores, spin=stt_spin(engine))
        predicted = prediction.max_calls
        basis = (
            f"limit {prediction.limit} at {predicted} calls (simulated v2v p95 "
            f"{prediction.v2v_p95_ms:.0f} ms, {prediction.cpu_cores:.2f} cores), from light "
            f"loads N={','.join(str(x.calls) for x in loads)}: {prediction.basis}"
            f"{disturbance(loads, number(engine, 'other_processes_cores_max'))}"
        )
    else:
        machine, costs = engine_machine(engine)
        if machine is None or costs is None:
            return None
        cost = costs.engine_cpu_ms_per_call_s or 0.0
        callers = costs.telephony_cpu_ms_per_call_s or 0.0
        fixed = costs.engine_fixed_cpu_ms_per_s
        component, _ = cpu_component(machine, costs)
        predicted = component.max_calls or 0
        basis = (
            f"({cores} core(s) x 1000 - {fixed:g} fixed) / ({cost:g} engine + {callers:g} "
            "caller) CPU ms per call-second, fitted at N=1 and N=4"
        )
    return _check(predicted, measured_max, basis)


def disturbance(loads: list[LightLoad], search_max: float | None) -> str:
    """What other processes on the benchmark's machine took, when it was more than a light
    load tolerates: the prediction and the maximum then measured different machines."""
    light = [x for x in loads if x.others_cores > OTHERS_LIMIT_CORES]
    said = [
        f"other processes took {x.others_cores:.2f} cores during light load N={x.calls}"
        for x in light
    ]
    if search_max is not None and search_max > OTHERS_LIMIT_CORES:
        said.append(f"up to {search_max:.2f} cores during the search")
    return f"; disturbed: {', '.join(said)}" if said else ""


def engine_machine(engine: dict[str, str]) -> tuple[Machine | None, Measured | None]:
    """bench_capacity's machine and N=1 costs as the planner's inputs (None when missing)."""
    cost = number(engine, "cpu_ms_per_call_second")
    callers = number(engine, "caller_cpu_ms_per_call_second")
    if cost is None or callers is None:
        return None, None
    fixed = _amount(engine, "fixed_cpu_ms_per_second") + _amount(
        engine, "caller_fixed_cpu_ms_per_second"
    )
    machine = Machine(cores=_count(engine, "cores") or 1, ram_gb=0, llm="none")
    return machine, Measured(
        engine_cpu_ms_per_call_s=cost,
        engine_fixed_cpu_ms_per_s=fixed,
        telephony_cpu_ms_per_call_s=callers,
    )


def _amount(values: dict[str, str], key: str) -> float:
    """A figure that may be 0 or missing (read as 0)."""
    match = _NUMBER.search(values.get(key, ""))
    return max(0.0, float(match.group())) if match else 0.0


def to_measured(
    media: dict[str, str], engine: dict[str, str], notes: list[str], media_text: str = ""
) -> Measured:
    """Per-call CPU costs and maxima from the benchmarks' documented lines."""
    media_cost = _cost(media)
    engine_cost = number(engine, "cpu_ms_per_call_second")
    if media_cost is None:
        notes.append("bench_media gave neither cpu_ms_per_call_second nor calls_per_core")
    if engine_cost is None:
        notes.append(
            "bench_capacity gave no cpu_ms_per_call_second: the cpu line keeps the table's "
            "AI figure"
        )
    steps, cores = media_steps(media_text)
    media_max = _count(media, "max_concurrent_calls", "max_calls")
    if media_max == 0:
        smallest = min((s.calls for s in steps), default=None)
        notes.append(
            "bench_media: pacing broke already at its smallest load"
            + (f" (N={smallest})" if smallest else "")
            + ": no maximum measured (is the CPU busy with other work?)"
        )
    engine_max = _count(engine, "measured_max_calls")
    check = engine_check(engine)
    if engine_cost is not None and engine_max == 0:
        notes.append("bench_capacity: one call already broke its service criterion")
    if check is not None:
        verdict = "within" if check.within_15_pct else "outside"
        notes.append(
            f"whole engine (bench_capacity): predicted {check.predicted} calls vs "
            f"{check.measured} measured, {check.error_pct:+.1f} % ({verdict} ±15 %; "
            f"{check.basis})"
        )
    return Measured(
        media_cpu_ms_per_call_s=media_cost,
        media_max_calls=media_max,
        media_server_cores=cores,
        media_steps=steps,
        media_check=media_check(steps, media_max, cores),
        engine_cpu_ms_per_call_s=engine_cost,
        engine_fixed_cpu_ms_per_s=_amount(engine, "fixed_cpu_ms_per_second"),
        engine_max_calls=engine_max,
        engine_light_loads=light_loads(engine),
        engine_stt_spin=stt_spin(engine),
        engine_check=check,
        raw={"media": media, "engine": engine},
        notes=notes,
    )


async def measure(bench_dir: Path, timeout_s: float = 600.0) -> Measured:
    """Run bench_media then bench_capacity (never together: each wants the CPU to itself)."""
    notes: list[str] = []
    media, media_text, problem = await run_benchmark(
        bench_dir / "bench_media.py", timeout_s, MEDIA_ARGS
    )
    if problem:
        notes.append(problem)
    engine, _, problem = await run_benchmark(bench_dir / "bench_capacity.py", timeout_s)
    if problem:
        notes.append(problem)
    return to_measured(media, engine, notes, media_text)
