"""How many calls one engine process carries, predicted from light loads alone.

bench_capacity measured (``docs/capacity.md``) that two things set the maximum of the whole
engine on a CPU:

- *The cost per call falls with load.* The event loop's wake-ups, the per-frame work and the
  thread pools' spinning between jobs are shared by more calls as N grows: the server's CPU
  per call-second went 90 -> 63 -> 54 -> 46 -> 38 ms at N = 1, 4, 8, 24, 36. A power law
  ``c(N) = c(1) x N^-alpha``, fitted on the light loads, follows it (a line through N=1 and
  N=4 did not: its slope was still the light loads' cost).
- *The criterion breaks before the CPU is full*, on latency: Whisper decodes one utterance at
  a time (one model, one lock), so every call's end of turn queues for it, and each decode
  takes longer as the rest of the engine (event loop, callers) takes CPU from Whisper's
  threads. At the maximum the CPU was about three quarters busy.

The model: CPU demand from the fitted cost curves; Whisper's decode time stretched by the CPU
the rest of the engine takes (``cores / (cores - others)``); the callers' turns in a closed
loop (a caller speaks again only after the answer) through one FIFO server, simulated with a
fixed seed; voice-to-voice = a light-load latency drawn from its measured spread + the wait +
the decode's stretch. The prediction is the largest N whose simulated p95 holds the service
criterion with the CPU not over-committed. Nothing measured above the light loads enters it.

Everything here is arithmetic, tested with synthetic figures.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from dataclasses import dataclass

from operadora.capacity.ramp import V2V_P95_LIMIT_MS, p95
from operadora.capacity.records import NO_SPREAD, Spread

Z95 = 1.6449  # the standard normal's 95th percentile
SEED = 20261126


@dataclass(frozen=True, slots=True)
class LightLoad:
    """What bench_capacity measured at one light load (all per call-second unless said)."""

    calls: int
    server_cpu_ms: float  # the engine process's CPU ms per call-second
    stt_cpu_ms: float  # of which Whisper's own threads (native threads of the process)
    caller_cpu_ms: float  # the callers' (Asterisk's stand-in) CPU ms per call-second
    turns: float  # caller turns per call-second
    decodes: float  # Whisper decodes per call-second (speculative ones included)
    decode_ms: float  # mean time of one decode
    decode_p95_ms: float
    v2v_p50_ms: float
    v2v_p95_ms: float
    # optional (older benchmarks did not print them; absent: nothing hidden, nothing dropped):
    others_cores: float = 0.0  # what other processes on the machine took during the step
    slack_ms: Spread = NO_SPREAD  # per turn: how long the answer's decode was done early
    # share of the extra (unanswering) decodes the session dropped before they were done (the
    # others it dropped after; None: not measured, an older benchmark)
    cancelled: float | None = None
    cancel_ms: Spread = NO_SPREAD  # how long after its request each of those was dropped

    def line(self) -> str:
        """The bench's ``light_load_N:`` line; :func:`parse_light_load` reads it back."""
        dropped = (
            ""
            if self.cancelled is None
            else f" cancelled {self.cancelled:.3f} cancel_p10 {self.cancel_ms.p10:.0f} "
            f"cancel_p50 {self.cancel_ms.p50:.0f} cancel_p90 {self.cancel_ms.p90:.0f}"
        )
        return (
            f"light_load_{self.calls}: server {self.server_cpu_ms:.2f} stt {self.stt_cpu_ms:.2f} "
            f"callers {self.caller_cpu_ms:.2f} turns {self.turns:.4f} decodes {self.decodes:.4f} "
            f"decode {self.decode_ms:.1f} decode_p95 {self.decode_p95_ms:.1f} "
            f"v2v_p50 {self.v2v_p50_ms:.0f} v2v_p95 {self.v2v_p95_ms:.0f} "
            f"others {self.others_cores:.2f} slack_p10 {self.slack_ms.p10:.0f} "
            f"slack_p50 {self.slack_ms.p50:.0f} slack_p90 {self.slack_ms.p90:.0f}{dropped}"
        )


_FIELDS = {
    "server": "server_cpu_ms",
    "stt": "stt_cpu_ms",
    "callers": "caller_cpu_ms",
    "turns": "turns",
    "decodes": "decodes",
    "decode": "decode_ms",
    "decode_p95": "decode_p95_ms",
    "v2v_p50": "v2v_p50_ms",
    "v2v_p95": "v2v_p95_ms",
}
_OPTIONAL = (
    "others",
    "slack_p10",
    "slack_p50",
    "slack_p90",
    "cancelled",
    "cancel_p10",
    "cancel_p50",
    "cancel_p90",
)


def _number_pairs(value: str, names: set[str]) -> dict[str, float] | None:
    """``name number name number ...``: the pairs whose name is in ``names`` (others are
    skipped); None when one of those numbers is not a finite non-negative number."""
    words = value.split()
    found: dict[str, float] = {}
    for name, raw in zip(words[::2], words[1::2], strict=False):
        if name not in names:
            continue
        try:
            number = float(raw)
        except ValueError:
            return None
        if not math.isfinite(number) or number < 0:
            return None
        found[name] = number
    return found


def parse_light_load(key: str, value: str) -> LightLoad | None:
    """``light_load_4`` and ``server 62.6 stt 33.0 ...``; None when malformed or incomplete."""
    if not key.startswith("light_load_") or not key[len("light_load_") :].isdigit():
        return None
    pairs = _number_pairs(value, {*_FIELDS, *_OPTIONAL})
    if pairs is None:
        return None
    found = {_FIELDS[k]: v for k, v in pairs.items() if k in _FIELDS}
    extra = {k: v for k, v in pairs.items() if k not in _FIELDS}
    if set(found) != set(_FIELDS.values()):
        return None
    calls = int(key[len("light_load_") :])
    if calls < 1:
        return None
    return LightLoad(
        calls=calls,
        **found,
        others_cores=extra.get("others", 0.0),
        slack_ms=Spread(*(extra.get(f"slack_p{q}", 0.0) for q in (10, 50, 90))),
        cancelled=min(1.0, extra["cancelled"]) if "cancelled" in extra else None,
        cancel_ms=Spread(*(extra.get(f"cancel_p{q}", 0.0) for q in (10, 50, 90))),
    )


@dataclass(frozen=True, slots=True)
class SttSpin:
    """How Whisper's CPU per decode depends on what follows it, measured by the benchmark's
    engine at start.

    After a decode, threads that worked on it may keep spinning for a while before they sleep
    (OpenBLAS's after the log-mel features' matrix products, when BLAS threads are free), so
    a decode followed by an idle gap can cost more CPU than one followed at once by the next:
    measured with BLAS threads free, 160 ms of CPU back to back against 198 after a gap of
    100 ms or more (and 183 after 20 ms); with BLAS held to one thread, as the engines'
    process now does (``runtime.blas_on_one_thread``), about none. At the light loads nearly
    every decode is followed by a gap; near the maximum they run back to back.
    ``busy_cpu_ms`` (back to back), ``gap100_cpu_ms`` and ``gap10_cpu_ms`` are CPU ms per
    decode of the same utterance, ``decode_ms`` its time.
    """

    decode_ms: float
    busy_cpu_ms: float
    gap10_cpu_ms: float
    gap100_cpu_ms: float

    @property
    def spin_ms(self) -> float:
        """CPU ms spent spinning after a decode followed by a long gap."""
        return max(0.0, self.gap100_cpu_ms - self.busy_cpu_ms)

    @property
    def spin_cores(self) -> float:
        """How fast it spends them (cores), from the 10 ms gap; at least the spin spread over
        100 ms (it is over by then)."""
        return max((self.gap10_cpu_ms - self.busy_cpu_ms) / 10.0, self.spin_ms / 100.0, 0.0)

    def after_gap_ms(self, gap_s: float) -> float:
        """CPU ms spent spinning in an idle gap of ``gap_s`` seconds."""
        return min(self.spin_ms, self.spin_cores * gap_s * 1000.0)

    def line(self) -> str:
        """The bench's ``stt_spin:`` value; :func:`parse_stt_spin` reads it back."""
        return (
            f"decode {self.decode_ms:.1f} busy_cpu {self.busy_cpu_ms:.1f} "
            f"gap10_cpu {self.gap10_cpu_ms:.1f} gap100_cpu {self.gap100_cpu_ms:.1f}"
        )


def parse_stt_spin(value: str) -> SttSpin | None:
    """``decode 82.8 busy_cpu 160.0 gap10_cpu 172.0 gap100_cpu 198.0``; None if malformed."""
    keys = {
        "decode": "decode_ms",
        "busy_cpu": "busy_cpu_ms",
        "gap10_cpu": "gap10_cpu_ms",
        "gap100_cpu": "gap100_cpu_ms",
    }
    found = _number_pairs(value, set(keys))
    if found is None or set(found) != set(keys) or found["busy_cpu"] <= 0:
        return None
    return SttSpin(**{keys[k]: v for k, v in found.items()})


@dataclass(frozen=True, slots=True)
class CostCurve:
    """CPU ms per call-second at N calls: ``at_1 x N^-alpha`` (0 <= alpha < 1)."""

    at_1: float
    alpha: float

    def per_call(self, calls: float) -> float:
        return self.at_1 * math.pow(calls, -self.alpha)

    def total_ms_per_s(self, calls: float) -> float:
        return calls * self.per_call(calls)


def fit_cost(points: list[tuple[int, float]]) -> CostCurve:
    """Least squares of log cost on log N over the light loads. A cost that rises with load
    (noise) is read as flat; alpha stays below 0.9 (total CPU must still grow with N); no
    cost at all (nothing measured on that side) is a curve at 0."""
    usable = [(n, c) for n, c in points if n >= 1 and c > 0]
    if not usable:
        return CostCurve(0.0, 0.0)
    xs = [math.log(n) for n, _ in usable]
    ys = [math.log(c) for _, c in usable]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return CostCurve(math.exp(my), 0.0)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    alpha = min(0.9, max(0.0, -slope))
    # refit the level with alpha fixed, so the curve passes through the points' middle
    level = math.exp(sum(y + alpha * x for x, y in zip(xs, ys, strict=True)) / len(xs))
    return CostCurve(level, alpha)


@dataclass(frozen=True, slots=True)
class EnginePrediction:
    max_calls: int
    limit: str  # "latency" or "cpu"
    v2v_p95_ms: float  # simulated at max_calls
    cpu_cores: float  # demand at max_calls
    basis: str


@dataclass(frozen=True, slots=True)
class EngineModel:
    cores: float
    rest: CostCurve  # the engine process but Whisper's threads: event loop, VAD, TTS, agent
    stt: CostCurve  # Whisper's threads
    callers: CostCurve
    cycle_s: float  # one caller's turn, all of it (speaking, waiting, listening)
    work_per_turn_s: float  # Whisper's time per turn at light load (all its decodes)
    decode_s: float  # one decode at light load
    decode_cv: float  # spread of one decode's time (lognormal sigma)
    others_light: float  # CPU cores the rest of the engine took at the light loads
    v2v_mu: float  # light-load voice-to-voice: lognormal through its p50 and p95
    v2v_sigma: float
    limit_ms: float = V2V_P95_LIMIT_MS
    slack_ms: Spread = NO_SPREAD  # wait the end-of-turn silence hides, per turn
    extras: float = 0.0  # decodes per turn beyond the one that answers (speculative ones)
    # the session drops every one of those (it is not the answer); a share of them before
    # they were done, this long after asking; the others after, at the earliest when their
    # decode ended: each skipped if it still waits then. False: an older benchmark, no drops
    drops: bool = False
    cancelled: float = 0.0
    cancel_ms: Spread = NO_SPREAD
    # Whisper's CPU from the simulated queue instead of the fitted ``stt`` curve: each decode
    # that runs costs ``decode_cpu_ms``, each idle gap what threads spin in it (None: an
    # older benchmark without the measure; the curve, which cannot see that the spinning
    # stops as the decodes come back to back)
    spin: SttSpin | None = None
    decode_cpu_ms: float = 0.0

    @classmethod
    def from_light(
        cls,
        loads: list[LightLoad],
        cores: float,
        telephony_cpu_ms: float | None = None,
        spin: SttSpin | None = None,
    ) -> EngineModel:
        """The model from two or more light loads. ``telephony_cpu_ms`` (CPU ms per
        call-second, flat) replaces the benchmark's callers: Asterisk's cost on a planned
        machine (0: it runs elsewhere). With ``spin`` Whisper's CPU comes from the simulated
        queue: each decode costs the light loads' CPU per decode less the spinning that came
        with it there (every light-load decode was followed by a long gap), and each idle gap
        what threads spin in it after each decode of the turn before."""
        if len({x.calls for x in loads}) < 2:
            raise ValueError("two light loads at least (different N) are needed")
        if cores <= 0:
            raise ValueError("no cores")
        total_decodes = sum(x.decodes * x.calls for x in loads)
        decode_s = sum(x.decode_ms * x.decodes * x.calls for x in loads) / total_decodes / 1000
        decode_p95 = max(x.decode_p95_ms for x in loads) / 1000
        turns = sum(x.turns * x.calls for x in loads) / sum(x.calls for x in loads)
        decodes_per_turn = total_decodes / sum(x.turns * x.calls for x in loads)
        p50 = sum(x.v2v_p50_ms for x in loads) / len(loads)
        p95_light = sum(x.v2v_p95_ms for x in loads) / len(loads)
        by_turns = [(x, x.turns * x.calls) for x in loads]
        extras = [(x, max(0.0, x.decodes - x.turns) * x.calls) for x in loads]
        extra_weight = sum(w for _, w in extras)
        model = cls(
            cores=cores,
            rest=fit_cost([(x.calls, max(0.0, x.server_cpu_ms - x.stt_cpu_ms)) for x in loads]),
            stt=fit_cost([(x.calls, x.stt_cpu_ms) for x in loads]),
            callers=fit_cost([(x.calls, x.caller_cpu_ms) for x in loads])
            if telephony_cpu_ms is None
            else CostCurve(telephony_cpu_ms, 0.0),
            cycle_s=1 / turns,
            work_per_turn_s=decode_s * decodes_per_turn,
            decode_s=decode_s,
            decode_cv=max(0.0, math.log(max(decode_p95, decode_s) / decode_s) / Z95),
            others_light=0.0,
            v2v_mu=math.log(max(p50, 1.0)),
            v2v_sigma=max(0.0, math.log(max(p95_light, p50) / max(p50, 1.0)) / Z95),
            slack_ms=Spread.mean_of([(x.slack_ms, w) for x, w in by_turns]),
            extras=max(0.0, decodes_per_turn - 1),
            drops=all(x.cancelled is not None for x in loads),
            cancelled=sum((x.cancelled or 0.0) * w for x, w in extras) / extra_weight
            if extra_weight
            else 0.0,
            cancel_ms=Spread.mean_of([(x.cancel_ms, w * (x.cancelled or 0.0)) for x, w in extras]),
        )
        decode_cpu = 0.0
        if spin is not None:
            stt_ms = sum(x.stt_cpu_ms * x.calls for x in loads)
            decode_cpu = max(0.0, stt_ms / total_decodes - spin.spin_ms)
        model = dataclasses.replace(model, spin=spin, decode_cpu_ms=decode_cpu)
        # what the rest took from Whisper's threads while its light-load decodes were timed
        light = sum(
            x.calls**2 * (x.server_cpu_ms - x.stt_cpu_ms + x.caller_cpu_ms) for x in loads
        ) / (1000 * sum(x.calls for x in loads))
        return dataclasses.replace(model, others_light=light)

    def cpu_cores(self, calls: float) -> float:
        """What N calls ask of the CPU: the engine and the callers, in cores."""
        return self.others(calls) + self.whisper_cores(calls)

    def whisper_cores(self, calls: float) -> float:
        """Whisper's threads at N calls: the fitted curve, or with ``spin`` the simulated
        queue's decodes and idle gaps."""
        if self.spin is None:
            return self.stt.total_ms_per_s(calls) / 1000
        if calls < 1:
            return 0.0
        return self._simulate(int(calls))[1]

    def others(self, calls: float) -> float:
        """Cores the rest of the engine and the callers take from Whisper's threads."""
        return (self.rest.total_ms_per_s(calls) + self.callers.total_ms_per_s(calls)) / 1000

    def stretch(self, calls: float) -> float:
        """How much longer a decode takes at N calls than at the light loads: Whisper's threads
        share the cores with the rest. inf when the rest takes them all."""
        free = self.cores - self.others(calls)
        if free <= 0:
            return math.inf
        return (self.cores - self.others_light) / free

    def v2v_p95_ms(self, calls: int, turns_per_call: int = 200) -> float:
        """Simulated voice-to-voice p95 at N calls (fixed seed: the same figure every time);
        inf when the CPU would be over-committed."""
        latency, whisper = self._simulate(calls, turns_per_call)  # inf, inf: no core free
        if self.others(calls) + whisper > self.cores:
            return math.inf
        return latency

    def _simulate(self, calls: int, turns_per_call: int = 200) -> tuple[float, float]:
        """The voice-to-voice p95 (ms) and Whisper's cores at N calls."""
        stretch = self.stretch(calls)
        if not math.isfinite(stretch):
            return math.inf, math.inf
        curve = self.stt.total_ms_per_s(calls) / 1000 if self.spin is None else 0.0
        if self.spin is None and self.others(calls) + curve > self.cores:
            return math.inf, curve  # over-committed: no need to simulate
        rng = random.Random(SEED + calls)
        decode = self.decode_s * stretch
        extra = (stretch - 1) * self.decode_s  # the turn's own decode is slower too
        think = max(0.0, self.cycle_s - self.work_per_turn_s)
        whole, part = divmod(self.extras, 1.0)
        arrivals = [(rng.uniform(0, self.cycle_s), i) for i in range(calls)]
        heapq.heapify(arrivals)
        free_at = 0.0
        total = calls * turns_per_call
        skip = total // 10  # the start, before the calls spread over their cycle
        latencies: list[float] = []
        spin = self.spin
        ran_total = 0
        last_ran = 1
        spin_ms = 0.0
        began_at = 0.0
        for done in range(total):
            at, caller = heapq.heappop(arrivals)
            if done == skip:
                began_at = at
            start = max(at, free_at)
            wait = start - at
            if spin is not None and done >= skip and at > free_at:
                # threads spin in the idle gap, after each decode of the turn before, as
                # at the light loads (its speculative decodes had the caller's speech after)
                spin_ms += last_ran * spin.after_gap_ms(at - free_at)
            # the answering decode, and the turn's speculative ones that still run: one the
            # session dropped while it waited for Whisper is skipped
            ran = 1
            for _ in range(int(whole) + (rng.random() < part)):
                # every draw always made: the same sequence whatever the inputs
                dropped, after = rng.random(), rng.random()
                done_s = self.decode_s * rng.lognormvariate(
                    -(self.decode_cv**2) / 2, self.decode_cv
                )
                drop_s = self.cancel_ms.draw(after) / 1000 if dropped < self.cancelled else done_s
                if not (self.drops and wait > drop_s):
                    ran += 1
            noise = rng.lognormvariate(-(self.decode_cv**2) / 2, self.decode_cv)
            free_at = start + decode * ran * noise
            last_ran = ran
            if done >= skip:
                ran_total += ran
                base = rng.lognormvariate(self.v2v_mu, self.v2v_sigma)
                hidden = self.slack_ms.draw(rng.random()) / 1000  # the end-of-turn silence's
                latencies.append(base + max(0.0, wait + extra - hidden) * 1000)
            # the caller hears the answer, then speaks again: varied utterances and answers
            heapq.heappush(arrivals, (free_at + think * rng.uniform(0.5, 1.5), caller))
        if spin is None:
            return p95(latencies), curve
        span = max(free_at - began_at, 1e-9)
        return p95(latencies), (ran_total * self.decode_cpu_ms + spin_ms) / 1000 / span

    def predict(self, cap: int = 1000) -> EnginePrediction:
        """The largest N (up to ``cap``) whose simulated p95 holds the criterion."""

        def holds(n: int) -> bool:
            return self.v2v_p95_ms(n) <= self.limit_ms

        if not holds(1):
            return self._result(0)
        low, high = 1, 2
        while high <= cap and holds(high):
            low, high = high, high * 2
        high = min(high, cap + 1)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if holds(mid) else (low, mid)
        return self._result(low)

    def _result(self, n: int) -> EnginePrediction:
        saturated = self.cpu_cores(n + 1) > self.cores or not math.isfinite(self.stretch(n + 1))
        p = self.v2v_p95_ms(n) if n else math.inf
        drops = (
            f"; the speculative ones dropped, {100 * self.cancelled:.0f} % after "
            f"{self.cancel_ms.p50:.0f} ms, the rest once decoded: skipped when still waiting"
            if self.drops
            else ""
        )
        return EnginePrediction(
            max_calls=n,
            limit="cpu" if saturated else "latency",
            v2v_p95_ms=p,
            cpu_cores=self.cpu_cores(n) if n else 0.0,
            basis=(
                f"{self.cores:g} cores; engine {self.rest.at_1:.1f} x N^-{self.rest.alpha:.2f} "
                + (
                    f"+ Whisper {self.stt.at_1:.1f} x N^-{self.stt.alpha:.2f} "
                    if self.spin is None
                    else ""
                )
                + f"+ callers {self.callers.at_1:.1f} x N^-{self.callers.alpha:.2f} CPU ms per "
                "call-second"
                + (
                    ""
                    if self.spin is None
                    else f"; Whisper {self.decode_cpu_ms:.0f} CPU ms per decode run, and up to "
                    f"{self.spin.spin_ms:.0f} spinning in each idle gap"
                )
                + "; "
                f"Whisper {self.work_per_turn_s * 1000:.0f} ms per turn every "
                f"{self.cycle_s:.1f} s, one decode at a time ({1 + self.extras:.2f} per turn"
                f"{drops}), {self.slack_ms.p50:.0f} ms of wait hidden by the end of turn "
                f"(p50); v2v p95 <= {self.limit_ms:.0f} ms"
            ),
        )


def predict(
    loads: list[LightLoad], cores: float, cap: int = 1000, spin: SttSpin | None = None
) -> EnginePrediction:
    """The engine's maximum from light loads alone (:class:`EngineModel`)."""
    return EngineModel.from_light(loads, cores, spin=spin).predict(cap)
