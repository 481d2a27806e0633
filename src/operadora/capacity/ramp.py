"""The whole-engine capacity benchmark's pure parts: the service criterion a load step must
hold, the search for the largest load that holds it, and the CPU cost per call-second.

``bench/bench_capacity.py`` drives real calls; everything here is arithmetic on what it saw,
so it is tested without timing anything."""

from __future__ import annotations

import math
from dataclasses import dataclass

V2V_P95_LIMIT_MS = 1000.0  # a caller waiting longer than a second for an answer: broken


@dataclass(frozen=True, slots=True)
class Step:
    """One load step: ``calls`` simultaneous calls and what the callers measured."""

    calls: int
    v2v_p95_ms: float
    lost_turns: int
    cpu_ms_per_call_s: float

    @property
    def ok(self) -> bool:
        return self.lost_turns == 0 and self.v2v_p95_ms <= V2V_P95_LIMIT_MS


def p95(values: list[float]) -> float:
    """The 95th percentile by linear interpolation (numpy's default); inf when empty, so an
    unanswered step never passes."""
    if not values:
        return math.inf
    ordered = sorted(values)
    pos = 0.95 * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def cpu_ms_per_call_second(cpu_s: float, call_seconds: float) -> float:
    """Server CPU seconds spent over the summed duration of the calls, in ms per call-second."""
    if call_seconds <= 0:
        raise ValueError("no call time")
    return cpu_s * 1000 / call_seconds


def fixed_and_marginal(low: Step, high: Step) -> tuple[float, float]:
    """Split the CPU cost into a part the process pays once while calls run (ms per second)
    and a part each call adds (ms per call-second), from two light loads: CPU per second is
    ``calls x cost per call-second`` at each, and a line through both. Batching (one VAD
    model for all calls) and thread pools that spin between jobs make the cost per call at
    one call much higher than what one more call adds. A line that does not fall that way
    (noise) gives no fixed part: all of the lighter load's cost is per call."""
    if high.calls <= low.calls:
        raise ValueError("the second load must carry more calls")
    low_rate = low.calls * low.cpu_ms_per_call_s
    high_rate = high.calls * high.cpu_ms_per_call_s
    marginal = (high_rate - low_rate) / (high.calls - low.calls)
    fixed = low_rate - marginal * low.calls
    if marginal <= 0 or fixed <= 0:
        return 0.0, low.cpu_ms_per_call_s
    return fixed, marginal


def largest_held(results: dict[int, bool]) -> int:
    """The largest load that held below the smallest load that broke (0: nothing held)."""
    broke = min((n for n, ok in results.items() if not ok), default=None)
    held = [n for n, ok in results.items() if ok and (broke is None or n < broke)]
    return max(held, default=0)


def next_load(results: dict[int, bool], first_guess: int, cap: int) -> int | None:
    """The next number of calls to try, or None when the search is over.

    N=1 first (its CPU cost is the prediction's input); then ``first_guess``; then up by 15 %
    while loads hold. Once a load broke: down by 12 % from it while the largest load that held
    is further below, then bisection between the two. ``cap`` bounds the search (reaching it
    ends it). Steps of about 12-15 % keep the search short around a good guess."""
    if 1 not in results:
        return 1
    if not results[1]:
        return None
    held = largest_held(results)
    broke = min((n for n, ok in results.items() if not ok), default=None)
    if broke is not None:
        if broke - held <= 1:
            return None
        below = math.floor(broke * 0.88)
        return below if held < below < broke else (held + broke) // 2
    if held >= cap:
        return None
    guess = min(max(first_guess, 2), cap)
    if guess not in results and guess > held:
        return guess
    return min(cap, max(held + 1, math.ceil(held * 1.15)))


# a light load during which other processes on the machine took more than this many cores is
# measured again (at most LIGHT_RETRIES more times) and the quietest try kept: the prediction
# is only as good as its light loads, and another tenant's work slows their decodes
OTHERS_LIMIT_CORES = 0.15
LIGHT_RETRIES = 2


def measure_again(others_cores: list[float]) -> bool:
    """After these tries of one light load (other processes' cores in each), one more?"""
    return 0 < len(others_cores) <= LIGHT_RETRIES and min(others_cores) > OTHERS_LIMIT_CORES


def error_pct(predicted: int, measured: int) -> float:
    """How far the prediction is from the measured maximum, in % of the measured maximum."""
    if measured <= 0:
        raise ValueError("no measured maximum")
    return (predicted - measured) / measured * 100
