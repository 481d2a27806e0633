"""Prometheus metrics of the engine, served at ``/metrics``.

Components increment the counters here directly (``metrics.ARI_ERRORS.labels("http").inc()``);
:class:`MetricsRecorder` derives the call metrics from the domain events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

from prometheus_client import Counter, Gauge, Histogram

from operadora import events as ev

_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
_STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)

ACTIVE_CALLS = Gauge("operadora_active_calls", "Calls in progress on this instance")
CALLS_ARRIVED = Counter("operadora_calls_arrived_total", "Inbound calls that arrived")
CALLS_ENDED = Counter("operadora_calls_total", "Ended calls by outcome", ["outcome"])
SPAM_CALLS = Counter("operadora_spam_calls_total", "Calls refused by the caller-ID rate limit")
TURN_SECONDS = Histogram(
    "operadora_turn_duration_seconds", "Duration of a turn", ["speaker"], buckets=_LATENCY_BUCKETS
)
VOICE_TO_VOICE = Histogram(
    "operadora_voice_to_voice_seconds",
    "Caller stops speaking -> agent audio starts",
    buckets=_LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "operadora_stage_seconds",
    "STT/LLM/TTS timings of agent turns",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
TRANSFERS = Counter("operadora_transfers_total", "Finished transfers", ["kind", "outcome"])
RECORDINGS = Counter("operadora_recordings_total", "Recordings started", ["reason"])
AUDIOSOCKET_ERRORS = Counter(
    "operadora_audiosocket_errors_total", "AudioSocket connection errors", ["kind"]
)
ARI_ERRORS = Counter("operadora_ari_errors_total", "ARI request and WebSocket errors", ["kind"])


def stage_seconds(name: str, value: float) -> tuple[str, float]:
    """``stt_ms=120`` -> (``stt``, 0.12); ``tts_s=0.3`` -> (``tts``, 0.3); bare names are ms."""
    if name.endswith("_s"):
        return name[:-2], value
    return name.removesuffix("_ms"), value / 1000.0


class MetricsRecorder:
    """Turns this instance's domain events into the metrics above."""

    def __init__(self, bus: ev.EventBus) -> None:
        self.bus = bus
        self._live: set[str] = set()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._queue: asyncio.Queue[ev.DomainEvent] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = self.bus.subscribe()
        self._task = asyncio.create_task(self._run(self._queue), name="metrics")

    async def stop(self) -> None:
        if self._queue is not None:
            self.bus.unsubscribe(self._queue)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = self._queue = None

    async def _run(self, queue: asyncio.Queue[ev.DomainEvent]) -> None:
        while True:
            self.observe(await queue.get())

    def observe(self, event: ev.DomainEvent) -> None:
        match event:
            case ev.CallArrivedEvent():
                CALLS_ARRIVED.inc()
                if event.call_id not in self._live:
                    self._live.add(event.call_id)
                    ACTIVE_CALLS.inc()
            case ev.CallEndedEvent():
                if event.call_id in self._ended:
                    return  # a repeated end: the call was counted (as the store keeps the first)
                self._ended[event.call_id] = None
                if len(self._ended) > 10_000:
                    self._ended.popitem(last=False)
                CALLS_ENDED.labels(event.disposition or "unknown").inc()
                if event.disposition == "spam":
                    SPAM_CALLS.inc()
                if event.call_id in self._live:
                    self._live.discard(event.call_id)
                    ACTIVE_CALLS.dec()
            case ev.TurnEvent():
                if event.ended_at > event.started_at > 0:
                    TURN_SECONDS.labels(event.speaker).observe(event.ended_at - event.started_at)
                if event.latency_ms is not None:
                    VOICE_TO_VOICE.observe(event.latency_ms / 1000.0)
                for name, value in event.timings.items():
                    stage, seconds = stage_seconds(name, float(value))
                    STAGE_SECONDS.labels(stage).observe(seconds)
            case ev.TransferEvent() if event.outcome is not None:
                TRANSFERS.labels(event.kind or "unknown", event.outcome).inc()
            case ev.RecordingEvent() if event.state == "started":
                RECORDINGS.labels(event.reason or "unknown").inc()
            case _:
                pass
