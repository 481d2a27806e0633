"""What bench_capacity's server records about Whisper's queue, turned into the figures the
engine model reads: how much of a decode's wait each turn's end-of-turn silence hid, and when
the session dropped the speculative decodes it no longer wanted.

The engine answers a turn with a decode started at the caller's first pause (speculative) or
at the end of turn; the end of turn comes after 160-280 ms of silence whatever the decode
does. A decode that finishes before the end of turn leaves *slack*: that much more wait for
Whisper would not have delayed the answer. A speculative decode cancelled when the caller
spoke on is never run if it still waited for Whisper then (the engine's one worker thread
skips a cancelled request): near the maximum, with Whisper queued, fewer decodes run per turn
than at the light loads.

All times are the server's event-loop clock (seconds); the results are milliseconds. Pure
arithmetic, tested with synthetic records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TOLERANCE_S = 0.005  # the loop sees a decode's end a little after the worker thread does

Turn = tuple[str, float, float]  # call, last voiced sample, transcript in hand
Request = tuple[str, float, float, float]  # call, asked, began, done
Cancel = tuple[str, float, float]  # call, asked, cancelled


def turn_slack_ms(turns: Sequence[Turn], requests: Sequence[Request]) -> list[float]:
    """Per turn, how long before its transcript was needed the decode that answered it was
    done: the call's latest decode that ended between the turn's last voiced sample (the
    answering decode starts after it) and then. Turns with no such decode are left out."""
    by_call: dict[str, list[float]] = {}
    for call, _asked, _began, done in requests:
        by_call.setdefault(call, []).append(done)
    slack = []
    for call, last_voice, ready in turns:
        ends = [d for d in by_call.get(call, []) if last_voice < d <= ready + TOLERANCE_S]
        if ends:
            slack.append(max(0.0, ready - max(ends)) * 1000)
    return slack


def cancel_after_ms(cancels: Sequence[Cancel]) -> list[float]:
    """How long after its request the session dropped each cancelled decode."""
    return [max(0.0, (cancelled - asked) * 1000) for _call, asked, cancelled in cancels]


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default); 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True, slots=True)
class Spread:
    """A distribution known by its 10th, 50th and 90th percentiles; :meth:`draw` maps a
    uniform number through the piecewise-linear quantile function between them (flat below
    the 10th and above the 90th: nothing is invented past what was measured)."""

    p10: float = 0.0
    p50: float = 0.0
    p90: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(quantile(values, 0.1), quantile(values, 0.5), quantile(values, 0.9))

    def draw(self, u: float) -> float:
        if u <= 0.1:
            return self.p10
        if u <= 0.5:
            return self.p10 + (self.p50 - self.p10) * (u - 0.1) / 0.4
        if u <= 0.9:
            return self.p50 + (self.p90 - self.p50) * (u - 0.5) / 0.4
        return self.p90

    @classmethod
    def mean_of(cls, spreads: Sequence[tuple[Spread, float]]) -> Spread:
        """The weighted mean of several spreads, percentile by percentile."""
        total = sum(w for _, w in spreads)
        if total <= 0:
            return cls()
        return cls(
            sum(s.p10 * w for s, w in spreads) / total,
            sum(s.p50 * w for s, w in spreads) / total,
            sum(s.p90 * w for s, w in spreads) / total,
        )


NO_SPREAD = Spread()  # nothing measured: every draw is 0
