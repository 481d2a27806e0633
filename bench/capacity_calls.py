"""The callers of the capacity benchmark: each call talks like a person on a phone (an
utterance, then it listens to the agent's whole answer, then the next utterance), over a real
AudioSocket connection, and notes every turn's voice-to-voice latency on the wire.

Unlike ``voice_call.converse`` it looks at each received frame once (an index into the peer's
list), so a hundred callers cost this process little CPU next to the engine they measure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from operadora.audiosocket.peer import AsteriskPeer
from operadora.audiosocket.protocol import AudioFrame
from voice_call import AUDIBLE, BenchCaller
from voice_corpus import Prompt

ANSWER_WAIT_S = 10.0  # a turn with no agent audio within this is lost
SETTLE_S = 3.0  # after the last call connected, before the window opens
QUIET_FRAMES = 15  # 300 ms of silence after agent audio: its answer is over


@dataclass(slots=True)
class CallResult:
    v2v_ms: list[float] = field(default_factory=list)  # the window's answered turns
    lost: int = 0  # the window's turns with no answer
    lost_prompts: list[str] = field(default_factory=list)
    seconds: float = 0.0  # connected, all of it
    error: str = ""


@dataclass(frozen=True, slots=True)
class Window:
    """The steady part of a load step: every call connected and talking. Turns whose
    utterance ends inside it count; the CPU is read at its two ends."""

    start: float
    end: float

    def __contains__(self, at: float) -> bool:
        return self.start <= at < self.end


class _Listener:
    """Reads the peer's received frames once each: audible or not."""

    def __init__(self, peer: AsteriskPeer) -> None:
        self.peer = peer
        self.seen = 0

    def new_frames(self) -> list[tuple[float, bool]]:
        received = self.peer.received
        out = []
        for item in received[self.seen :]:
            if isinstance(item.frame, AudioFrame):
                samples = np.frombuffer(item.frame.pcm, dtype="<i2")
                out.append((item.at, bool(samples.size) and int(np.abs(samples).max()) > AUDIBLE))
        self.seen = len(received)
        return out


async def one_call(
    port: int, prompts: list[Prompt], rate: int, delay_s: float, window: Window
) -> CallResult:
    """One caller: the prompts in turn, round and round, until the window closes (the turn
    under way then is finished, so the load holds to the window's end)."""
    await asyncio.sleep(delay_s)
    result = CallResult()
    started = time.monotonic()
    try:
        peer = await AsteriskPeer.connect("127.0.0.1", port)
    except OSError as exc:
        result.error = str(exc)
        result.lost = 1
        return result
    caller = BenchCaller(peer, rate)
    listener = _Listener(peer)
    try:
        await caller.silence_until(time.monotonic() + 0.3)
        turn = 0
        while time.monotonic() < window.end:
            prompt = prompts[turn % len(prompts)]
            turn += 1
            _, last = await caller.speak(prompt)
            listener.new_frames()  # whatever arrived while speaking is not the answer
            heard = await _answer(caller, listener)
            if last not in window:
                continue
            if heard is None:
                result.lost += 1
                result.lost_prompts.append(prompt.name)
            else:
                result.v2v_ms.append((heard - last) * 1000)
    finally:
        await peer.close()
        result.seconds = time.monotonic() - started
    return result


async def _answer(caller: BenchCaller, listener: _Listener) -> float | None:
    """Listen to the agent's whole answer: when its first audio arrived, None if none did."""
    heard: float | None = None
    quiet = 0
    deadline = time.monotonic() + ANSWER_WAIT_S
    while time.monotonic() < deadline:
        await caller.silence_until(time.monotonic() + 0.02)
        for at, audible in listener.new_frames():
            if audible:
                quiet = 0
                if heard is None:
                    heard = at
            elif heard is not None:
                quiet += 1
        if heard is not None and quiet >= QUIET_FRAMES:
            break
    return heard


async def run_calls(
    port: int,
    scripts: list[list[Prompt]],
    rate: int,
    spread_s: float,
    window_s: float,
    on_edge: Callable[[], None],
) -> tuple[list[CallResult], Window]:
    """All calls, their starts spread evenly over ``spread_s``; the window opens once the last
    one has settled in (a few seconds: its first turn) and lasts ``window_s``; ``on_edge``
    runs at the window's start and end (the benchmark reads the CPU times there)."""
    n = len(scripts)
    opens = time.monotonic() + spread_s + SETTLE_S
    window = Window(opens, opens + window_s)

    async def edges() -> None:
        for at in (window.start, window.end):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            on_edge()

    edge_task = asyncio.create_task(edges())
    results = await asyncio.gather(
        *(one_call(port, s, rate, i * spread_s / max(1, n), window) for i, s in enumerate(scripts))
    )
    await edge_task
    return list(results), window
