"""Whole-engine capacity benchmark: how many simultaneous AI calls this machine carries, set
against what the capacity planner predicts from light loads.

One server process runs the AudioSocket media server with the embedded voice agent on every
connection (Silero VAD, Whisper, the scripted agent, espeak: ``capacity_server.py``); this
process plays the callers over real AudioSocket connections (``capacity_calls.py``): each
call says an utterance, listens to the agent's whole answer, says the next one, round and
round. A load step of N calls is measured over a steady window (every call connected and
talking): the CPU at the window's two ends, the turns whose utterance ended inside it.

1. Light loads N=1 (a window twice as long), 4 and 8: the server's CPU (``/proc``, all its
   threads; Whisper's threads apart), the callers' CPU, Whisper's decodes and their times,
   the turns' rhythm and voice-to-voice latency; and, once at the engine's start, Whisper's
   CPU per decode back to back and after idle gaps (``stt_spin``: threads left free spin
   after each decode). ``operadora.capacity.engine`` predicts the maximum from these alone
   (``predicted_max_calls``): cost curves that fall with N, and the turns of N calls queueing
   for Whisper, one decode at a time, each decode and each idle gap costing its CPU.
2. N concurrent calls, searched from the prediction, until the service criterion breaks
   (voice-to-voice p95 on the wire over 1000 ms, or a turn without an answer within 10 s):
   ``measured_max_calls`` is the largest N that held. The prediction never sees it.

Final lines: light_load_1, light_load_4, light_load_8, stt_spin, cpu_ms_per_call_second_at_1,
cpu_ms_per_call_second, fixed_cpu_ms_per_second, caller_cpu_ms_per_call_second,
caller_fixed_cpu_ms_per_second, cores, predicted_max_calls, prediction_limit,
other_processes_cores_max, measured_max_calls, prediction_error_pct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from capacity_calls import run_calls
from operadora.capacity.engine import LightLoad, SttSpin, parse_stt_spin, predict
from operadora.capacity.ramp import (
    OTHERS_LIMIT_CORES,
    V2V_P95_LIMIT_MS,
    Step,
    cpu_ms_per_call_second,
    error_pct,
    fixed_and_marginal,
    largest_held,
    measure_again,
    next_load,
    p95,
)
from operadora.capacity.records import Spread, cancel_after_ms, turn_slack_ms
from voice_corpus import Prompt, load_prompts

HERE = Path(__file__).parent
TICK = os.sysconf("SC_CLK_TCK")
LIGHT_LOADS = (1, 4, 8)  # the prediction's only inputs
POOL = 8  # utterances; N=1 says them all, every call draws from them


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (``/proc/stat``: all but idle and
    iowait): less the server's and the callers', what other tenants took."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def start_server(
    timeout_s: float = 180.0,
) -> tuple[subprocess.Popen[str], int, SttSpin | None]:
    """The engine's process, its port, and Whisper's spin as it measured it at start."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "capacity_server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    spin = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        print(f"  server: {line.rstrip()}")
        if line.startswith("stt_spin: "):
            spin = parse_stt_spin(line[len("stt_spin: ") :])
        if line.startswith("port: "):
            return proc, int(line.split()[1]), spin
    proc.kill()
    raise SystemExit("the capacity server did not start")


def scripts_for(n: int, pool: list[Prompt]) -> list[list[Prompt]]:
    """Each call its own rotation of the same pool (the one N=1 went through whole), so calls
    do not speak in lockstep and a larger N brings no utterance N=1 did not already answer."""
    return [[pool[(i + t) % len(pool)] for t in range(len(pool))] for i in range(n)]


def server_stats(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """What the server saw since the last ask: Whisper's waits and decodes, TTS times, the
    CPU seconds of its threads by kind (``capacity_server.Stats``)."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("stats\n")
    proc.stdin.flush()
    while line := proc.stdout.readline():
        if line.startswith("stats: "):
            found: dict[str, Any] = json.loads(line[len("stats: ") :])
            return found
    raise SystemExit("the capacity server ended")


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(slots=True)
class Measurement:
    """One load step: the criterion's figures and where the time and CPU went."""

    step: Step
    caller_ms: float  # the callers' CPU ms per call-second
    light: LightLoad  # the same figures as the prediction reads them
    window_s: float
    wall_s: float
    stats: dict[str, Any]
    others_cores: float  # what other processes on the machine took during the window

    def lines(self) -> str:
        step, light, st = self.step, self.light, self.stats
        waits = st["stt_wait_s"]
        ran = {(c, a) for c, a, _, _ in st["stt_requests"]}
        skipped = sum(1 for c, a, _ in st["stt_cancels"] if (c, a) not in ran)
        busy = light.decodes * light.decode_ms / 1000 * step.calls
        threads = " ".join(f"{k} {v:.2f}" for k, v in sorted(st["thread_cpu_s"].items()))
        return (
            f"N={step.calls:4d}  cpu {step.cpu_ms_per_call_s:7.1f} ms/call-s  "
            f"v2v p95 {step.v2v_p95_ms:7.0f} ms  lost {step.lost_turns:3d}  "
            f"{'ok' if step.ok else 'BROKEN'}\n"
            f"       {self.window_s:.0f} s window ({self.wall_s:.0f} s in all), other "
            f"processes {self.others_cores:.2f} cores, "
            f"{light.turns * step.calls * self.window_s:.0f} turns, v2v p50 "
            f"{light.v2v_p50_ms:.0f} ms; callers {self.caller_ms:.1f} ms/call-s; whisper "
            f"{light.stt_cpu_ms:.1f} ms/call-s, {light.decodes / max(light.turns, 1e-9):.2f} "
            f"decodes/turn of {light.decode_ms:.0f} ms (p95 {light.decode_p95_ms:.0f}), busy "
            f"{busy:.2f}, wait mean {1000 * mean(waits):.0f} p95 {1000 * p95(waits):.0f} ms; "
            f"tts {1000 * mean(st['tts_s']):.0f} ms each; server thread CPU s: {threads}\n"
            f"       hidden by the end of turn: p10/50/90 {light.slack_ms.p10:.0f} / "
            f"{light.slack_ms.p50:.0f} / {light.slack_ms.p90:.0f} ms; dropped speculative "
            f"decodes {len(st['stt_cancels'])} ({100 * (light.cancelled or 0.0):.0f} % of the "
            f"extra ones; after p50 {light.cancel_ms.p50:.0f} ms), {skipped} of them never "
            "decoded"
        )


def run_step(
    proc: subprocess.Popen[str], port: int, n: int, pool: list[Prompt], window_s: float, rate: int
) -> Measurement:
    pid = proc.pid
    spread = 4.0 if n > 1 else 0.0  # about one turn: the calls' turns interleave
    server_stats(proc)  # start the server's records afresh
    edges: list[tuple[float, float, float, float]] = []  # at, server, callers, machine CPU s

    def on_edge() -> None:
        edges.append((time.monotonic(), process_cpu_s(pid), time.process_time(), machine_busy_s()))

    began = time.monotonic()
    results, _ = asyncio.run(run_calls(port, scripts_for(n, pool), rate, spread, window_s, on_edge))
    wall = time.monotonic() - began
    stats = server_stats(proc)
    (t0, server0, caller0, busy0), (t1, server1, caller1, busy1) = edges
    others = (busy1 - busy0 - (server1 - server0) - (caller1 - caller0)) / (t1 - t0)
    call_s = n * (t1 - t0)  # every call connected throughout the window
    v2v = sorted(v for r in results for v in r.v2v_ms)
    if errors := [r.error for r in results if r.error]:
        print(f"  {len(errors)} call(s) failed to connect: {errors[0]}")
    if lost := [name for r in results for name in r.lost_prompts]:
        print(f"  unanswered: {', '.join(lost)}")
    step = Step(
        calls=n,
        v2v_p95_ms=p95(v2v),
        lost_turns=sum(r.lost for r in results),
        cpu_ms_per_call_s=cpu_ms_per_call_second(server1 - server0, call_s),
    )
    caller = cpu_ms_per_call_second(caller1 - caller0, call_s)
    connected = sum(r.seconds for r in results)  # Whisper's records cover the whole step
    threads = stats["thread_cpu_s"]
    stt_share = threads.get("native", 0.0) / max(1e-9, sum(threads.values()))
    decodes = stats["stt_decode_s"]
    turns = [(str(c), float(v), float(r)) for c, v, r in stats["turns"]]
    requests = [(str(c), float(a), float(b), float(d)) for c, a, b, d in stats["stt_requests"]]
    cancels = [(str(c), float(a), float(x)) for c, a, x in stats["stt_cancels"]]
    extra_decodes = max(1, len(requests) - len(turns))
    light = LightLoad(
        calls=n,
        server_cpu_ms=step.cpu_ms_per_call_s,
        stt_cpu_ms=step.cpu_ms_per_call_s * stt_share,
        caller_cpu_ms=caller,
        turns=(len(v2v) + step.lost_turns) / call_s,
        decodes=len(decodes) / connected,
        decode_ms=1000 * mean(decodes),
        decode_p95_ms=1000 * p95(decodes) if decodes else 0.0,
        v2v_p50_ms=statistics.median(v2v) if v2v else math.inf,
        v2v_p95_ms=step.v2v_p95_ms,
        others_cores=max(0.0, others),
        slack_ms=Spread.of(turn_slack_ms(turns, requests)),
        cancelled=min(1.0, len(cancels) / extra_decodes),
        cancel_ms=Spread.of(cancel_after_ms(cancels)),
    )
    return Measurement(step, caller, light, t1 - t0, wall, stats, max(0.0, others))


def sweep(
    proc: subprocess.Popen[str], port: int, args: argparse.Namespace, pool: list[Prompt]
) -> None:
    """Each load of ``--sweep`` in turn, ``--repeat`` rounds: the cost curve and its noise."""
    loads = [int(n) for n in args.sweep.split(",") if n.strip()]
    for _ in range(args.repeat):
        for n in loads:
            m = run_step(proc, port, n, pool, args.window * (2 if n == 1 else 1), args.rate)
            print(m.lines(), flush=True)
            print(m.light.line(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter load steps (~5 min)")
    parser.add_argument(
        "--window", type=float, default=None, help="seconds measured per search step"
    )
    parser.add_argument(
        "--light-window",
        type=float,
        default=30.0,
        help="seconds measured at N=4 and N=8 (N=1: twice), quick or not: the prediction's "
        "only inputs",
    )
    parser.add_argument("--cap", type=int, default=128, help="the most calls to try")
    parser.add_argument("--rate", type=int, default=8000, choices=(8000, 16000))
    parser.add_argument("--cores", type=int, default=None, help="default: this process's CPUs")
    parser.add_argument(
        "--sweep",
        default="",
        help="only measure these loads (e.g. 1,4,8,16), --repeat times, with no search",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds of --sweep")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("OPERADORA_BENCH_QUICK") == "1"
    args.window = args.window or (20.0 if quick else 30.0)
    cores = args.cores or len(os.sched_getaffinity(0))
    budget_s = 360.0 if quick else 540.0  # the search stops here; what held so far is reported

    pool = [p for p in load_prompts() if 0.8 <= p.audio.size / p.rate <= 3.5][:POOL]
    proc, port, spin = start_server()
    began = time.monotonic()
    steps: dict[int, Step] = {}
    others: list[float] = []  # other processes' cores, each step
    try:
        if args.sweep:
            sweep(proc, port, args, pool)
            return
        light: list[LightLoad] = []
        callers: list[float] = []
        for n in LIGHT_LOADS:  # N=1 twice as long: it must say the whole pool
            window = args.light_window * (2 if n == 1 else 1)
            m = run_step(proc, port, n, pool, window, args.rate)
            print(m.lines(), flush=True)
            tries = [m]
            while measure_again([x.others_cores for x in tries]):
                print(
                    f"  other processes took {tries[-1].others_cores:.2f} cores (over "
                    f"{OTHERS_LIMIT_CORES}): N={n} measured again"
                )
                tries.append(run_step(proc, port, n, pool, window, args.rate))
                print(tries[-1].lines(), flush=True)
            m = min(tries, key=lambda x: x.others_cores)  # the quietest try
            steps[n] = m.step
            others.append(m.others_cores)
            light.append(m.light)
            callers.append(m.caller_ms)
        prediction = predict(light, cores, cap=args.cap, spin=spin)
        print(
            f"planner (operadora.capacity.engine): {prediction.max_calls} calls, limit "
            f"{prediction.limit}, simulated v2v p95 {prediction.v2v_p95_ms:.0f} ms, "
            f"{prediction.cpu_cores:.2f} cores; {prediction.basis}"
        )
        print(f"criterion: v2v p95 on the wire <= {V2V_P95_LIMIT_MS:.0f} ms, no turn unanswered")
        predicted = prediction.max_calls
        while n := next_load({k: s.ok for k, s in steps.items()}, predicted, args.cap):
            if time.monotonic() - began > budget_s:
                print(f"time budget ({budget_s:.0f} s) spent: stopping the search")
                break
            m = run_step(proc, port, n, pool, args.window, args.rate)
            print(m.lines(), flush=True)
            steps[n] = m.step
            others.append(m.others_cores)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    first, four = steps[1], steps[4]
    fixed, cost = fixed_and_marginal(first, four)
    caller_fixed, caller_cost = fixed_and_marginal(
        Step(1, 0, 0, callers[0]), Step(4, 0, 0, callers[1])
    )
    measured = largest_held({k: s.ok for k, s in steps.items()})
    for load in light:
        print(load.line())
    if spin is not None:
        print(f"stt_spin: {spin.line()}")
    print(f"cpu_ms_per_call_second_at_1: {first.cpu_ms_per_call_s:.1f}")
    print(f"cpu_ms_per_call_second: {cost:.1f}")
    print(f"fixed_cpu_ms_per_second: {fixed:.1f}")
    print(f"caller_cpu_ms_per_call_second: {caller_cost:.1f}")
    print(f"caller_fixed_cpu_ms_per_second: {caller_fixed:.1f}")
    print(f"cores: {cores}")
    print(f"predicted_max_calls: {predicted}")
    print(f"prediction_limit: {prediction.limit}")
    # another tenant's work during the search shows as a maximum below the prediction
    print(f"other_processes_cores_max: {max(others, default=0.0):.2f}")
    print(f"measured_max_calls: {measured}")
    if measured:
        print(f"prediction_error_pct: {error_pct(predicted, measured):+.1f}")
    else:
        print("prediction_error_pct: n/a (N=1 already broke the criterion)")


if __name__ == "__main__":
    main()
