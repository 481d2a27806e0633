"""Media-path benchmark: how many calls one CPU core carries through the full front end.

N simulated Asterisk peers (``media_load.py``, in separate processes) stream 8 kHz frames in
real time over loopback TCP to the media server (``media_frontend.py``, its own process),
which per call decodes, resamples to 16 kHz, runs Silero VAD on every 32 ms window and plays
an echo back through the paced writer. N grows until pacing breaks; at the largest N whose
outbound pacing error p99 stays <= 5 ms with no frame lost or late, the server's own CPU time
per call-second gives the calls one core carries.

    python bench/bench_media.py            # full run
    python bench/bench_media.py --quick    # a few minutes (also: OPERADORA_BENCH_QUICK=1)
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from media_frontend import server_main
from media_load import load_main, timer_floor_main
from media_micro import micro_costs
from operadora.audiosocket.pacing import MediaStats

PROMPTS = [
    Path("/usr/share/asterisk/sounds/en/demo-congrats.wav"),
    Path("/usr/share/asterisk/sounds/en_US_f_Allison/demo-congrats.wav"),
]
P99_LIMIT_MS = 5.0
STALL_SPAN_MS = 100.0  # late frames within this span count as one event
STALL_MS = 4.0  # the control timer this late around them witnesses a machine stall
TIMER_DUE_MS = 2.0
WINDOWS_PER_SECOND = 31.25  # 32 ms VAD windows (256 samples at 8 kHz, 512 at 16 kHz)
VAD_KEPT_UP = 0.99  # a step passes only if the VAD scored this share of the audio's windows
LAG_LIMIT_MS = 20.0  # ... and the front end got 99 % of the frames within one frame of reading
LAG_BUCKET_MS = 0.5  # a loop stall is not the pacer's doing if its timer was due this soon


def caller_audio() -> bytes:
    """8 kHz slin the peers send: Asterisk's recorded prompt, else a voiced synthetic signal."""
    for path in PROMPTS:
        if path.is_file():
            with wave.open(str(path)) as wav:
                if wav.getframerate() == 8000 and wav.getsampwidth() == 2:
                    return wav.readframes(wav.getnframes())
    t = np.arange(8000 * 4) / 8000
    voiced = sum(np.sin(2 * np.pi * k * 130 * t) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (voiced * envelope * 3000).astype("<i2").tobytes()


@dataclass
class Step:
    calls: int
    cpu_ms_per_call_second: float
    pacing_p99_ms: float
    pacing_max_ms: float
    server_p99_ms: float
    missing: int
    late: int
    server_lost: int
    server_skipped: int
    connected: int
    closed_by_server: int
    vad_windows_per_call_second: float
    timer_floor_p99_ms: float
    p99_limit_ms: float
    load_cpu_ms_per_call_second: float = 0.0
    vad_expected: float = 0.0  # windows per call-second the VAD must score (0: no VAD)
    lag_p99_ms: float = 0.0  # frame read -> front end, p99 (the native engine reads aside)
    lag_max_ms: float = 0.0
    sys_ms_per_call_second: float = 0.0
    io_thread_ms_per_call_second: float = 0.0  # the native engine's I/O thread (its share)
    server_max_ms: float = 0.0  # the latest the server wrote any frame after its deadline
    late_span_ms: float = 0.0  # from the first to the last late frame (0: one or none)
    control_at_late_ms: float = 0.0  # the control timer's worst lateness around those frames
    # the server loop's longest stall around those frames: its length, the loop's own work in
    # it, and its wait for a CPU behind other processes (the rest: the virtual CPU was held)
    stall_ms: float = 0.0
    stall_ran_ms: float = 0.0
    stall_queued_ms: float = 0.0
    stall_armed_ms: float = math.inf  # how soon the pacer's timer was due when it began
    # every stall of the server's loop in the window: count, then seconds run, queued, held
    stalls: tuple[int, float, float, float] = (0, 0.0, 0.0, 0.0)

    @property
    def stalled_outside(self) -> bool:
        """Broken only by frames the peers got late (or not at all), nothing else wrong, and
        either the server wrote every frame within the pacing limit of its deadline (the delay
        came after its writes), or all the late frames came within one 100 ms span during
        which the control process, which only sleeps, was itself held up, or the server's
        own loop stalled but not over its own work (it ran at most the pacing limit of the
        stall, was kept off a CPU at least ``STALL_MS`` of it, queued behind other processes
        or its virtual CPU held by the hypervisor, and its pacer's timer was due within
        ``TIMER_DUE_MS`` when the stall began): the machine paused, not the
        server under test (a pause longer than a frame also makes the server skip the
        deadlines it slept through, as it should)."""
        if (
            self.ok
            or not self.kept_up
            or not (self.missing > 0 or self.late > 0)
            or self.connected != self.calls
            or self.closed_by_server
            or self.server_lost > self.server_skipped  # frames dropped: a peer stopped reading
            or self.pacing_p99_ms > self.p99_limit_ms
        ):
            return False
        if self.late_span_ms <= STALL_SPAN_MS:
            if self.control_at_late_ms >= STALL_MS:
                return True  # one pause of the whole machine, witnessed
            off_cpu_ms = self.stall_ms - self.stall_ran_ms
            if (
                off_cpu_ms >= STALL_MS
                and self.stall_ran_ms <= self.p99_limit_ms
                and self.stall_armed_ms <= TIMER_DUE_MS
            ):
                return True  # the server's loop was kept off the CPU, seen from inside
        return self.server_lost == 0 and self.server_max_ms <= self.p99_limit_ms

    @property
    def kept_up(self) -> bool:
        """The front end did all its work in time: the VAD scored every window of the audio,
        and the caller's frames reached the front end within a frame of being read."""
        return (
            self.vad_windows_per_call_second >= VAD_KEPT_UP * self.vad_expected
            and self.lag_p99_ms <= LAG_LIMIT_MS
        )

    @property
    def ok(self) -> bool:
        return (
            self.kept_up
            and self.connected == self.calls
            and self.closed_by_server == 0
            and self.pacing_p99_ms <= self.p99_limit_ms
            and self.missing == 0
            and self.late == 0
            and self.server_lost == 0
        )


def observer_priority(priority: int) -> int:
    """The peers stand for Asterisk on its own cores: under real-time scheduling they run one
    level above the server, so their own queueing does not show up as the server's jitter."""
    return priority - 10 if priority < 0 else priority


def run_step(calls: int, args: argparse.Namespace, audio: bytes) -> Step:
    ctx = multiprocessing.get_context("spawn")
    servers = []
    port = 0
    for index in range(args.workers):
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=server_main,
            args=(
                child,
                port,
                args.vad,
                not args.no_uvloop,
                args.workers > 1,
                args.priority,
                args.vad_rate,
                args.vad_thread,
                args.vad_windows,
                args.stt_chunk_ms,
                args.engine,
            ),
            daemon=True,
        )
        proc.start()
        tag, got_port, args.server_kind = parent.recv()
        assert tag == "ready"
        port = got_port if index == 0 else port
        servers.append((proc, parent))
    loads = []
    gens = args.generators
    first = 0
    for share in [calls // gens + (i < calls % gens) for i in range(gens)]:
        if share == 0:
            continue
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=load_main,
            args=(
                child,
                port,
                share,
                audio,
                observer_priority(args.priority),
                first,
                args.aligned,
            ),
            daemon=True,
        )
        proc.start()
        loads.append((proc, parent))
        first += share
    floor_conn, floor_child = ctx.Pipe()
    floor = ctx.Process(
        target=timer_floor_main,
        args=(floor_child, observer_priority(args.priority)),
        daemon=True,
    )
    floor.start()
    for _, conn in loads:
        assert conn.recv() == "ready"  # every peer connected and streaming
    start_at = time.monotonic() + args.warmup
    stop_at = start_at + args.seconds
    for conn in [floor_conn] + [c for _, c in loads]:
        conn.send((start_at, stop_at))
    time.sleep(max(0.0, start_at - 0.5 - time.monotonic()))
    stats_before = [conn.send("stats") or conn.recv() for _, conn in servers]
    time.sleep(max(0.0, start_at - time.monotonic()))
    before = [conn.send("mark") or conn.recv() for _, conn in servers]
    time.sleep(max(0.0, stop_at - time.monotonic()))
    after = [conn.send("mark") or conn.recv() for _, conn in servers]
    time.sleep(0.2)
    stats_after = [conn.send("stats") or conn.recv() for _, conn in servers]
    results: list[dict[str, Any]] = [conn.recv() for _, conn in loads]
    control_at, control_late = floor_conn.recv()
    floor_ms = control_late * 1000.0
    floor.join(5)
    for proc, conn in servers:
        conn.send("stop")
        conn.recv()
        proc.join(10)
    for proc, _ in loads:
        proc.join(10)

    wall = sum(a["at"] - b["at"] for a, b in zip(after, before, strict=True)) / len(after)
    cpu = sum(a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before, strict=True))
    server = MediaStats()
    for a, b in zip(stats_after, stats_before, strict=True):
        delta = MediaStats(**a["stats"])
        old = MediaStats(**b["stats"])
        delta.skipped_frames -= old.skipped_frames
        delta.dropped_frames -= old.dropped_frames
        delta.histogram = [x - y for x, y in zip(delta.histogram, old.histogram, strict=True)]
        server.merge(delta)
    windows = sum(a["windows"] - b["windows"] for a, b in zip(after, before, strict=True))
    lag = np.sum(
        [
            np.subtract(a["lag_histogram"], b["lag_histogram"])
            for a, b in zip(after, before, strict=True)
        ],
        axis=0,
    )
    lag_p99_ms = lag_max_ms = 0.0
    if lag.sum():
        cumulative = np.cumsum(lag)
        lag_p99_ms = (int(np.searchsorted(cumulative, 0.99 * cumulative[-1])) + 1) * LAG_BUCKET_MS
        lag_max_ms = (int(np.flatnonzero(lag)[-1]) + 1) * LAG_BUCKET_MS
    errors_ms = np.concatenate([r["errors"] for r in results]) * 1000.0
    late_at = np.concatenate([r["late_at"] for r in results])
    late_span_ms = control_at_late_ms = 0.0
    stall = (0.0, 0.0, 0.0, math.inf)
    window_stalls = [
        stall
        for reply in stats_after
        for stall in reply["stalls"]
        if start_at <= stall[0] - stall[1] and stall[0] <= stop_at
    ]
    stalls = (
        len(window_stalls),
        sum(s[2] for s in window_stalls),
        sum(s[3] for s in window_stalls),
        sum(max(0.0, s[1] - s[2] - s[3]) for s in window_stalls),  # clock skew: never < 0
    )
    if late_at.size:
        first, last = float(late_at.min()), float(late_at.max())
        late_span_ms = (last - first) * 1000.0
        # the stall began up to 20 ms before the first late frame showed
        around = (control_at >= first - 0.05) & (control_at <= last + 0.01)
        control_at_late_ms = float(floor_ms[around].max()) if around.any() else 0.0
        near = [
            stall
            for reply in stats_after
            for stall in reply["stalls"]
            if stall[0] >= first - 0.05 and stall[0] - stall[1] <= last + 0.01
        ]
        if near:
            _, gap, ran, queued, armed = max(near, key=lambda stall: stall[1])
            stall = (gap * 1000.0, ran * 1000.0, queued * 1000.0, armed * 1000.0)
    call_seconds = calls * wall
    return Step(
        calls=calls,
        cpu_ms_per_call_second=cpu * 1000.0 / call_seconds,
        pacing_p99_ms=float(np.percentile(errors_ms, 99)) if errors_ms.size else math.inf,
        pacing_max_ms=float(errors_ms.max()) if errors_ms.size else math.inf,
        server_p99_ms=server.pacing_percentile_ms(99),
        server_max_ms=server.pacing_percentile_ms(100),
        late_span_ms=late_span_ms,
        control_at_late_ms=control_at_late_ms,
        stall_ms=stall[0],
        stall_ran_ms=stall[1],
        stall_queued_ms=stall[2],
        stall_armed_ms=stall[3],
        stalls=stalls,
        missing=sum(r["missing"] for r in results),
        late=sum(r["bursts"] for r in results),
        server_lost=server.skipped_frames + server.dropped_frames,
        server_skipped=server.skipped_frames,
        connected=sum(r["connected"] for r in results),
        closed_by_server=sum(r["closed_by_server"] for r in results),
        vad_windows_per_call_second=windows / call_seconds,
        vad_expected=0.0 if args.vad == "none" else WINDOWS_PER_SECOND,
        lag_p99_ms=lag_p99_ms,
        lag_max_ms=lag_max_ms,
        timer_floor_p99_ms=float(np.percentile(floor_ms, 99)) if floor_ms.size else 0.0,
        p99_limit_ms=args.p99_limit,
        load_cpu_ms_per_call_second=sum(r["cpu_s"] for r in results) * 1000.0 / call_seconds,
        io_thread_ms_per_call_second=sum(
            a["io_thread_s"] - b["io_thread_s"] for a, b in zip(after, before, strict=True)
        )
        * 1000.0
        / call_seconds,
        sys_ms_per_call_second=sum(
            a["sys_s"] - b["sys_s"] for a, b in zip(after, before, strict=True)
        )
        * 1000.0
        / call_seconds,
    )


def report(step: Step) -> None:
    print(
        f"N={step.calls:5d}  cpu {step.cpu_ms_per_call_second:6.3f} ms/call-s "
        f"(kernel {step.sys_ms_per_call_second:5.3f}, "
        f"I/O thread {step.io_thread_ms_per_call_second:5.3f})  "
        f"pacing p99 {step.pacing_p99_ms:6.2f} ms (max {step.pacing_max_ms:6.1f}, "
        f"server-side p99 {step.server_p99_ms:5.1f} max {step.server_max_ms:5.1f})  "
        f"missing {step.missing}  late {step.late}  "
        f"server-lost {step.server_lost} (skipped {step.server_skipped})  "
        f"connected {step.connected}  "
        f"vad {step.vad_windows_per_call_second:4.1f} win/call-s  "
        f"front-end lag p99 {step.lag_p99_ms:.1f} max {step.lag_max_ms:.1f} ms"
        f"{'' if step.kept_up else ' (FELL BEHIND)'}  "
        f"bare-timer p99 {step.timer_floor_p99_ms:4.1f} ms  "
        + (
            f"late frames within {step.late_span_ms:.0f} ms (control timer "
            f"{step.control_at_late_ms:.1f} ms late then; the server's loop stalled "
            f"{step.stall_ms:.1f} ms: ran {step.stall_ran_ms:.1f}, queued "
            f"{step.stall_queued_ms:.1f}, timer due after {step.stall_armed_ms:.1f})  "
            if step.late
            else ""
        )
        + f"loop stalls {step.stalls[0]} (ran {step.stalls[1] * 1000:.0f}, queued "
        f"{step.stalls[2] * 1000:.0f}, held {step.stalls[3] * 1000:.0f} ms)  "
        f"peers' cpu {step.load_cpu_ms_per_call_second:5.3f} ms/call-s  "
        f"{'ok' if step.ok else 'BROKEN'}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick_env = os.environ.get("OPERADORA_BENCH_QUICK", "") not in ("", "0")
    parser.add_argument("--quick", action="store_true", default=quick_env)
    parser.add_argument("--start", type=int, default=None, help="first N")
    parser.add_argument("--max-calls", type=int, default=4000)
    parser.add_argument("--factor", type=float, default=None, help="N grows by this factor")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per N")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1, help="server processes (SO_REUSEPORT)")
    parser.add_argument("--generators", type=int, default=2, help="load processes")
    parser.add_argument("--vad", choices=["batch", "silero", "none"], default="batch")
    parser.add_argument(
        "--vad-rate",
        type=int,
        choices=[8000, 16000],
        default=8000,
        help="rate the VAD runs at (default: the 8 kHz line's own, as the voice session does; "
        "the audio is resampled to 16 kHz for STT either way)",
    )
    parser.add_argument(
        "--vad-thread",
        action="store_true",
        help="score the VAD batches on a worker thread (default: on the event loop); implies "
        "--vad-windows",
    )
    parser.add_argument(
        "--vad-windows",
        action="store_true",
        help="cut each call's float32 VAD windows per call and queue them (SileroBatchRunner; "
        "default: the calls' slin bytes go to PcmVadRunner, which cuts all windows at once)",
    )
    parser.add_argument(
        "--stt-chunk-ms",
        type=int,
        default=100,
        help="resample the audio for STT in chunks this long (20: every frame)",
    )
    parser.add_argument(
        "--engine",
        choices=["auto", "native", "asyncio"],
        default="auto",
        help="the media server's engine (media.engine; auto: the native one where built)",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the last step: the asyncio engine at the best N, for the ratio",
    )
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="every peer sends in the same instant (default: calls' 20 ms phases spread 1 ms "
        "apart, as calls that start at different moments are)",
    )
    parser.add_argument(
        "--p99-limit", type=float, default=P99_LIMIT_MS, help="pacing p99 limit, ms"
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=10,
        help="lower the bench processes' niceness by this much when permitted (0: leave it)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run server and peers with SCHED_FIFO, as Asterisk -p does (needs CAP_SYS_NICE)",
    )
    args = parser.parse_args()
    if args.realtime:
        args.priority = -10
    args.start = args.start or 50
    args.factor = args.factor or (2.0 if args.quick else 1.5)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    print(
        f"bench-media: vad={args.vad}@{args.vad_rate}"
        f"{' (worker thread)' if args.vad_thread else ' (on the loop)'}"
        f"{' windows' if args.vad_windows or args.vad_thread else ' pcm'} "
        f"stt-chunk={args.stt_chunk_ms}ms engine={args.engine} workers={args.workers} "
        f"uvloop={not args.no_uvloop} phases={'aligned' if args.aligned else 'spread'} "
        f"generators={args.generators} priority={args.priority} cores={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.2f} quick={args.quick}",
        flush=True,
    )
    audio = caller_audio()
    costs = micro_costs(audio, args.vad_rate)
    print("per-operation CPU: " + "  ".join(f"{k} {v:.1f}" for k, v in costs.items()), flush=True)
    vad_ms = costs["silero_batch64_window_us"] * 1000 / 32 / 1000
    print(
        f"VAD alone at {args.vad_rate} Hz (batched, 31.25 windows per call-second): "
        f"{vad_ms:.2f} ms/call-s, "
        f"a ceiling of {1000 / vad_ms:.0f} calls per core",
        flush=True,
    )
    steps: list[Step] = []
    retried: list[int] = []

    def measure(calls: int) -> Step:
        """One step; a step broken only by a stall outside the server is measured once more
        (it must then pass with no frame late, like any other)."""
        step = run_step(calls, args, audio)
        report(step)
        steps.append(step)
        if step.stalled_outside:
            retried.append(calls)
            if step.server_lost == 0 and step.server_max_ms <= step.p99_limit_ms:
                why = (
                    f"the server wrote every frame within {step.server_max_ms:.1f} ms of its "
                    f"deadline: a stall after its writes (the machine or the load generator)"
                )
            elif step.control_at_late_ms >= STALL_MS:
                why = (
                    f"all within {step.late_span_ms:.0f} ms, while the control timer (a process "
                    f"that only sleeps) woke {step.control_at_late_ms:.1f} ms late: the "
                    f"machine stalled"
                )
            else:
                off_cpu = step.stall_ms - step.stall_ran_ms
                why = (
                    f"all within {step.late_span_ms:.0f} ms, while the server's loop stalled "
                    f"{step.stall_ms:.1f} ms and ran only {step.stall_ran_ms:.1f} of them: "
                    f"{off_cpu:.1f} ms off the CPU ({step.stall_queued_ms:.1f} queued behind "
                    f"other processes, the rest its virtual CPU held)"
                )
            print(
                f"  N={calls}: {step.late} frames late, {step.missing} missing at the peers; "
                f"{why}; measured again",
                flush=True,
            )
            step = run_step(calls, args, audio)
            report(step)
            steps.append(step)
        return step

    best: Step | None = None
    calls = args.start
    broken: int | None = None
    while calls <= args.max_calls:
        step = measure(calls)
        if step.ok:
            best = step if best is None or step.calls > best.calls else best
        else:
            broken = calls
            break
        calls = math.ceil(calls * args.factor)
    # one (quick) or two bisection steps between the last good N and the first broken one
    for _ in range(1 if args.quick else 2):
        if best is None or broken is None or broken - best.calls < 10:
            break
        middle = (best.calls + broken) // 2
        step = measure(middle)
        if step.ok:
            best = step
        else:
            broken = middle
    if retried:
        print(
            f"note: {len(retried)} step(s) measured again after a stall outside the server "
            f"(N={', '.join(map(str, retried))})"
        )
    noisy = [s for s in steps if s.timer_floor_p99_ms > args.p99_limit]
    if noisy:
        print(
            f"note: on this machine a bare timer in its own process woke up to "
            f"{max(s.timer_floor_p99_ms for s in noisy):.1f} ms late (p99) while measuring: "
            f"the scheduler alone exceeds the {args.p99_limit:g} ms pacing limit",
            flush=True,
        )
    if best is None:
        print("pacing broke at the smallest N; figures below are from it", flush=True)
        best = steps[0]
        max_calls = 0
    else:
        max_calls = best.calls
    if not args.no_baseline and args.engine != "asyncio" and max_calls:
        # the same front end on the asyncio engine (everything on the event loop), same N
        kind = args.server_kind
        args.engine = "asyncio"
        print(f"baseline: the asyncio engine at N={max_calls} ({kind} above)", flush=True)
        base = run_step(max_calls, args, audio)
        report(base)
        print(
            f"engine ratio at N={max_calls}: {kind} {best.cpu_ms_per_call_second:.3f} against "
            f"asyncio {base.cpu_ms_per_call_second:.3f} ms/call-s = "
            f"{base.cpu_ms_per_call_second / best.cpu_ms_per_call_second:.2f}x the calls per "
            f"core; pacing p99 {best.pacing_p99_ms:.2f} against {base.pacing_p99_ms:.2f} ms "
            f"(asyncio {'ok' if base.ok else 'BROKEN'} there)",
            flush=True,
        )
    print(f"calls_per_core: {int(1000.0 / best.cpu_ms_per_call_second)}")
    print(f"cpu_ms_per_call_second: {best.cpu_ms_per_call_second:.3f}")
    print(f"pacing_p99_ms: {best.pacing_p99_ms:.2f}")
    print(f"max_concurrent_calls: {max_calls}")


if __name__ == "__main__":
    main()
