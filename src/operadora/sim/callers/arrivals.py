"""When simulated callers arrive: a steady rate, or a Poisson process (random, seeded)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")
Process = Literal["uniform", "poisson"]


class ArrivalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float = Field(1.0, gt=0)  # calls per second, on average
    process: Process = "uniform"
    seed: int | None = None
    start_s: float = Field(0.0, ge=0)  # the first call arrives this long after the start


def arrival_offsets(count: int, settings: ArrivalSettings) -> list[float]:
    """Seconds from the start at which each of ``count`` calls arrives (non-decreasing)."""
    mean_gap = 1.0 / settings.rate_per_s
    rng = random.Random(settings.seed)
    offsets: list[float] = []
    at = settings.start_s
    for index in range(count):
        if index > 0:
            at += (
                rng.expovariate(settings.rate_per_s) if settings.process == "poisson" else mean_gap
            )
        offsets.append(at)
    return offsets


@dataclass(frozen=True, slots=True)
class Arrival:
    index: int
    offset_s: float


async def arrivals(
    items: Sequence[T],
    count: int,
    settings: ArrivalSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[tuple[Arrival, T]]:
    """Yield ``count`` items (cycling through ``items``) at their arrival times."""
    if not items:
        return
    start = clock()
    for index, offset in enumerate(arrival_offsets(count, settings)):
        delay = start + offset - clock()
        if delay > 0:
            await sleep(delay)
        yield Arrival(index, offset), items[index % len(items)]
