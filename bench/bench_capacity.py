"""Whole-engine capacity benchmark: how many simultaneous AI calls this machine carries, set
against what the capacity planner predicts from the per-call CPU cost.

One server process runs the AudioSocket media server with the embedded voice agent on every
connection (Silero VAD, Whisper, the scripted agent, espeak: ``capacity_server.py``); this
process plays the callers over real AudioSocket connections (``capacity_calls.py``): each
call says an utterance, listens to the agent's whole answer, says the next one.

1. N=1 and N=4, light loads: the server's CPU time (``/proc``, all its threads) over the
   calls' summed duration. A line through the two splits it into what the process pays once
   while calls run (``fixed_cpu_ms_per_second``: one batched VAD model, thread pools) and
   what each call adds (``cpu_ms_per_call_second``); the same for the callers. The
   planner's own ``cpu_component`` turns these into ``predicted_max_calls``:
   (cores x 1000 - fixed) / (server + caller per-call cost), the callers standing in for
   Asterisk, which shares a call-center machine's cores the same way.
2. N concurrent calls, ramped up and then bisected, until the service criterion breaks
   (voice-to-voice p95 on the wire over 1000 ms, or a turn without an answer within 10 s):
   ``measured_max_calls`` is the largest N that held. The prediction never sees it.

Final lines: cpu_ms_per_call_second_at_1, cpu_ms_per_call_second, fixed_cpu_ms_per_second,
caller_cpu_ms_per_call_second, caller_fixed_cpu_ms_per_second, cores, predicted_max_calls,
measured_max_calls, prediction_error_pct.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from capacity_calls import CallResult, run_calls
from operadora.capacity.model import Machine, Measured, cpu_component
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
from voice_corpus import Prompt, load_prompts

HERE = Path(__file__).parent
TICK = os.sysconf("SC_CLK_TCK")
LIGHT = 4  # the second light load: with N=1 it separates the fixed and the per-call cost


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def start_server(timeout_s: float = 180.0) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "capacity_server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        print(f"  server: {line.rstrip()}")
        if line.startswith("port: "):
            return proc, int(line.split()[1])
    proc.kill()
    raise SystemExit("the capacity server did not start")


def scripts_for(n: int, pool: list[Prompt], turns: int) -> list[list[Prompt]]:
    """Each call its own rotation of the same pool (the one N=1 went through whole), so calls
    do not speak in lockstep and a larger N brings no utterance N=1 did not already answer."""
    return [[pool[(i + t) % len(pool)] for t in range(turns)] for i in range(n)]


def run_step(
    pid: int, port: int, n: int, prompts: list[Prompt], turns: int, rate: int
) -> tuple[Step, float]:
    spread = 4.0 if n > 1 else 0.0  # about one turn: the calls' turns interleave
    server0, caller0 = process_cpu_s(pid), time.process_time()
    results: list[CallResult] = asyncio.run(
        run_calls(port, scripts_for(n, prompts, turns), rate, spread)
    )
    server_cpu, caller_cpu = process_cpu_s(pid) - server0, time.process_time() - caller0
    call_s = sum(r.seconds for r in results)
    v2v = [v for r in results for v in r.v2v_ms]
    errors = [r.error for r in results if r.error]
    if errors:
        print(f"  {len(errors)} call(s) failed to connect: {errors[0]}")
    if lost := [name for r in results for name in r.lost_prompts]:
        print(f"  unanswered: {', '.join(lost)}")
    step = Step(
        calls=n,
        v2v_p95_ms=p95(v2v),
        lost_turns=sum(r.lost for r in results),
        cpu_ms_per_call_s=cpu_ms_per_call_second(server_cpu, call_s),
    )
    return step, cpu_ms_per_call_second(caller_cpu, call_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer turns per call (~4 min)")
    parser.add_argument("--turns", type=int, default=None, help="caller turns per call")
    parser.add_argument("--cap", type=int, default=48, help="the most calls to try")
    parser.add_argument("--rate", type=int, default=8000, choices=(8000, 16000))
    parser.add_argument("--cores", type=int, default=None, help="default: this process's CPUs")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("OPERADORA_BENCH_QUICK") == "1"
    turns = args.turns or (3 if quick else 4)
    cores = args.cores or len(os.sched_getaffinity(0))
    budget_s = 240.0 if quick else 420.0  # the ramp stops here; what held so far is reported

    prompts = [p for p in load_prompts() if 0.8 <= p.audio.size / p.rate <= 3.5][: turns * 2]
    proc, port = start_server()
    began = time.monotonic()
    try:
        # the costs at two light loads: N=1 (twice the turns: a steadier figure) and N=4
        first, caller_1 = run_step(proc.pid, port, 1, prompts, turns * 2, args.rate)
        light, caller_4 = run_step(proc.pid, port, LIGHT, prompts, turns, args.rate)
        fixed, cost = fixed_and_marginal(first, light)
        caller_fixed, caller_cost = fixed_and_marginal(
            Step(1, 0, 0, caller_1), Step(LIGHT, 0, 0, caller_4)
        )
        # the planner's own cpu line; the callers play Asterisk on the same cores
        machine = Machine(cores=cores, ram_gb=0, llm="none")
        costs = Measured(
            engine_cpu_ms_per_call_s=cost,
            engine_fixed_cpu_ms_per_s=fixed + caller_fixed,
            telephony_cpu_ms_per_call_s=caller_cost,
        )
        component, _ = cpu_component(machine, costs)
        predicted = component.max_calls or 0
        print(
            f"cost at N=1: {first.cpu_ms_per_call_s:.1f} server + {caller_1:.1f} caller CPU ms "
            f"per call-second; at N={LIGHT}: {light.cpu_ms_per_call_s:.1f} + {caller_4:.1f}"
        )
        print(
            f"fitted: server {fixed:.1f} ms/s once + {cost:.1f} ms per call-second; callers "
            f"{caller_fixed:.1f} ms/s once + {caller_cost:.1f} ms per call-second"
        )
        print(f"planner ({component.basis}): {predicted} calls")
        print(f"criterion: v2v p95 on the wire <= {V2V_P95_LIMIT_MS:.0f} ms, no turn unanswered")
        steps = {1: first, LIGHT: light}

        def show(step: Step) -> None:
            print(
                f"N={step.calls:4d}  cpu {step.cpu_ms_per_call_s:7.1f} ms/call-s  "
                f"v2v p95 {step.v2v_p95_ms:7.0f} ms  lost {step.lost_turns:3d}  "
                f"{'ok' if step.ok else 'BROKEN'}",
                flush=True,
            )

        show(first)
        show(light)
        while n := next_load({k: s.ok for k, s in steps.items()}, predicted, args.cap):
            if time.monotonic() - began > budget_s:
                print(f"time budget ({budget_s:.0f} s) spent: stopping the search")
                break
            steps[n], _ = run_step(proc.pid, port, n, prompts, turns, args.rate)
            show(steps[n])
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    measured = largest_held({k: s.ok for k, s in steps.items()})
    print(f"cpu_ms_per_call_second_at_1: {first.cpu_ms_per_call_s:.1f}")
    print(f"cpu_ms_per_call_second: {cost:.1f}")
    print(f"fixed_cpu_ms_per_second: {fixed:.1f}")
    print(f"caller_cpu_ms_per_call_second: {caller_cost:.1f}")
    print(f"caller_fixed_cpu_ms_per_second: {caller_fixed:.1f}")
    print(f"cores: {cores}")
    print(f"predicted_max_calls: {predicted}")
    print(f"measured_max_calls: {measured}")
    if measured:
        print(f"prediction_error_pct: {error_pct(predicted, measured):+.1f}")
    else:
        print("prediction_error_pct: n/a (N=1 already broke the criterion)")


if __name__ == "__main__":
    main()
