"""Voice agent benchmark: embedded engines on this CPU, over a real AudioSocket connection.

Measures voice-to-voice latency (last voiced sample of the caller sent -> first agent audio
received, on the wire) broken down by stage, barge-in reaction (caller speech onset sent -> agent
audio stopped on the wire), and Whisper's word error rate on Asterisk's recorded English prompts
at 8 kHz. Final lines: v2v_p50_ms, v2v_p95_ms, overhead_p99_ms, bargein_p95_ms, stt_wer_en.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from operadora.audiosocket.peer import AsteriskPeer
from operadora.audiosocket.server import start_media_server
from operadora.config import Settings
from operadora.events import EventBus, TurnEvent
from operadora.media import InboundItem, MediaSession
from operadora.voice.engines import STT_RATE
from operadora.voice.factory import agent_handler, build_engines, warm_up
from operadora.voice.pcm import resample
from operadora.voice.session import Engines
from operadora.voice.stt.whisper import WhisperStt
from voice_call import converse, stopped_after
from voice_corpus import Prompt, edit_distance, load_prompts, normalise

STAGES = ("endpointing_ms", "stt_ms", "agent_ms", "tts_first_chunk_ms", "overhead_ms")
OVERHEAD_PARTS = ("handoff_ms", "playout_ms")


class GcPauses:
    """Every cyclic-GC pause while the conversation runs: (start, duration s, generation)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            now = time.perf_counter()
            self.pauses.append((self._started, now - self._started, info["generation"]))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def row(name: str, values: list[float]) -> str:
    return (
        f"  {name:<22} p50 {pct(values, 50):7.1f}  p95 {pct(values, 95):7.1f}  "
        f"p99 {pct(values, 99):7.1f}  (n={len(values)})"
    )


async def conversation(
    settings: Settings, engines: Engines, prompts: list[Prompt], rate: int, verbose: bool = False
) -> tuple[list[float], list[TurnEvent], list[float]]:
    bus = EventBus()
    events = bus.subscribe()

    agent = agent_handler(engines, settings.voice, bus, language="en", greet=False)
    clears: list[tuple[float, float]] = []

    async def handler(media: MediaSession) -> None:
        await agent(ClearTap(media, clears))

    media_settings = settings.media.model_copy(update={"host": "127.0.0.1", "port": 0})
    server = await start_media_server(media_settings, handler)
    try:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        log = await converse(peer, prompts, rate, barge_after_s=0.6)
        await peer.close()
    finally:
        await server.close()
    turns: list[TurnEvent] = []
    callers: list[TurnEvent] = []
    while not events.empty():
        event = events.get_nowait()
        if isinstance(event, TurnEvent) and event.speaker == "agent" and event.latency_ms:
            turns.append(event)
        elif isinstance(event, TurnEvent) and event.speaker == "caller" and event.text:
            callers.append(event)
    # where the wire figure differs from the engine's: the VAD's view of the end of speech
    # (last voiced window) against the last voiced sample sent, and engine -> wire delivery
    vad_tail, delivery = [], []
    for wire_turn in log.turns:
        caller = min(
            callers, key=lambda c: abs(c.ended_at - wire_turn.last_voice_sent), default=None
        )
        if caller is None or abs(caller.ended_at - wire_turn.last_voice_sent) > 1.0:
            continue
        vad_tail.append((caller.ended_at - wire_turn.last_voice_sent) * 1000)
        reply = next((t for t in turns if t.started_at >= caller.ended_at), None)
        if wire_turn.first_agent_audio is not None and reply and reply.latency_ms is not None:
            engine_first = caller.ended_at + reply.latency_ms / 1000
            delivery.append((wire_turn.first_agent_audio - engine_first) * 1000)
    if verbose:
        for t in log.turns:
            c = min(callers, key=lambda c: abs(c.ended_at - t.last_voice_sent), default=None)
            first = t.first_agent_audio
            print(
                f"    {t.prompt:<28} v2v "
                f"{(first - t.last_voice_sent) * 1000 if first else float('nan'):6.0f} ms  "
                f"heard {c.text if c else '-'!r}"
            )
    print(row("vad end vs last sample", vad_tail))
    print(row("engine -> wire", delivery))
    detect, hop, cut = [], [], []
    in_pause = 0
    for t in log.turns:
        if t.barge_onset_sent is None or t.agent_stopped is None:
            continue
        found = next((c for c in clears if c[0] >= t.barge_onset_sent - 0.1), None)
        if found is not None:
            clear, frame_in = found
            if t.agent_stopped < clear:
                # espeak's own pauses are silent too (up to 17 frames at a full stop): an onset
                # in one would look like a stop before the engine did anything. The reply was
                # still playing, so the stop is the first silent run after the engine's clear().
                in_pause += 1
                t.agent_stopped = stopped_after(peer.received, clear)
                if t.agent_stopped is None:
                    continue
            detect.append((clear - t.barge_onset_sent) * 1000)
            hop.append((clear - frame_in) * 1000)
            cut.append((t.agent_stopped - clear) * 1000)
    print(row("barge-in: onset->clear", detect))
    print(row("barge-in: frame in->clear", hop))
    print(row("barge-in: clear->wire", cut))
    if in_pause:
        print(f"  {in_pause} barge-in(s) began in a pause of the agent's speech: stop taken after")
        print("  the engine's clear()")
    wire = [
        (t.first_agent_audio - t.last_voice_sent) * 1000
        for t in log.turns
        if t.first_agent_audio is not None
    ]
    barge = [
        (t.agent_stopped - t.barge_onset_sent) * 1000
        for t in log.turns
        if t.agent_stopped is not None and t.barge_onset_sent is not None
    ]
    missed = len(log.turns) - len(wire)
    if missed:
        print(f"  {missed} turn(s) got no agent answer within 10 s")
    return wire, turns, barge


class ClearTap:
    """The media session, with the time of every clear() (barge-in) noted for the breakdown,
    next to the arrival of the caller frame being handled then."""

    def __init__(self, media: MediaSession, clears: list[tuple[float, float]]) -> None:
        self._media = media
        self._clears = clears
        self._last_in = 0.0

    def clear(self) -> int:
        self._clears.append((time.monotonic(), self._last_in))
        return self._media.clear()

    async def _inbound(self) -> AsyncIterator[InboundItem]:
        async for item in self._media.inbound():
            self._last_in = item.received_at
            yield item

    def inbound(self) -> AsyncIterator[InboundItem]:
        return self._inbound()

    def set_receiver(self, receiver: Callable[[InboundItem], None] | None) -> None:
        set_receiver = self._media.set_receiver  # type: ignore[attr-defined]
        if receiver is None:
            set_receiver(None)
            return

        def tapped(item: InboundItem) -> None:
            self._last_in = item.received_at
            receiver(item)

        set_receiver(tapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._media, name)


def word_error_rate(stt: WhisperStt, prompts: list[Prompt]) -> tuple[float, float, list[str]]:
    errors = words = 0
    audio_s = decode_s = 0.0
    worst: list[tuple[int, str]] = []
    for prompt in prompts:
        audio = resample(prompt.audio, prompt.rate, STT_RATE)
        started = time.perf_counter()
        text = stt.transcribe_sync(audio, "en").text
        decode_s += time.perf_counter() - started
        audio_s += prompt.audio.size / prompt.rate
        ref, hyp = normalise(prompt.text), normalise(text)
        distance = edit_distance(ref, hyp)
        errors += distance
        words += len(ref)
        if distance:
            worst.append((distance, f"{prompt.name}: {prompt.text!r} -> {text!r}"))
    worst.sort(reverse=True)
    return errors / max(1, words), decode_s / max(audio_s, 1e-9), [w for _, w in worst[:5]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer turns and prompts")
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--wer-prompts", type=int, default=None)
    parser.add_argument("--rate", type=int, default=8000, choices=(8000, 16000))
    parser.add_argument("--verbose", action="store_true", help="print every turn")
    args = parser.parse_args()
    turns_n = args.turns or (8 if args.quick else 24)
    wer_n = args.wer_prompts if args.wer_prompts is not None else (40 if args.quick else None)

    settings = Settings()
    started = time.perf_counter()
    engines = build_engines(settings.voice, "en")
    asyncio.run(warm_up(engines))
    print(
        f"engines loaded in {time.perf_counter() - started:.1f} s: {engines.stt.name}, "
        f"{engines.tts.name}, {engines.agent.name}, vad {settings.voice.vad.engine}"
    )
    prompts = load_prompts()
    callers = [p for p in prompts if 0.8 <= p.audio.size / p.rate <= 3.5][:turns_n]

    print(f"\nconversation: {len(callers)} caller turns at {args.rate} Hz over AudioSocket")
    with GcPauses() as gc_pauses:
        wire, turns, barge = asyncio.run(
            conversation(settings, engines, callers, args.rate, args.verbose)
        )
    v2v_internal = [t.latency_ms or 0.0 for t in turns]
    if args.verbose:
        for t in turns:
            parts = "  ".join(
                f"{k[:-3]} {t.timings.get(k, 0.0):6.1f}" for k in STAGES + OVERHEAD_PARTS
            )
            print(f"    {parts}")
    print(row("v2v on the wire", wire))
    print(row("v2v in the engine", v2v_internal))
    for stage in STAGES + OVERHEAD_PARTS:
        print(row(stage, [t.timings.get(stage, 0.0) for t in turns]))
    by_gen = [[d * 1000 for _, d, g in gc_pauses.pauses if g == gen] for gen in range(3)]
    for gen, pauses in enumerate(by_gen):
        print(row(f"gc gen{gen} pause", pauses) + f" max {max(pauses, default=0):.1f}")
    print(row("stt decode (compute)", [t.timings.get("stt_decode_ms", 0.0) for t in turns]))
    print(row("barge-in reaction", barge))

    assert isinstance(engines.stt, WhisperStt)
    wer_prompts = prompts if wer_n is None else prompts[:wer_n]
    print(f"\nSTT accuracy: {len(wer_prompts)} Asterisk prompts, 8 kHz resampled to 16 kHz")
    wer, rtf, worst = word_error_rate(engines.stt, wer_prompts)
    print(f"  real-time factor {rtf:.3f}; worst transcripts:")
    for line in worst:
        print(f"    {line}")

    overhead = [t.timings.get("overhead_ms", 0.0) for t in turns]
    print(f"v2v_p50_ms: {pct(wire, 50):.0f}")
    print(f"v2v_p95_ms: {pct(wire, 95):.0f}")
    print(f"overhead_p99_ms: {pct(overhead, 99):.1f}")
    print(f"bargein_p95_ms: {pct(barge, 95):.1f}")
    print(f"stt_wer_en: {wer * 100:.1f}%")


if __name__ == "__main__":
    main()
