"""The callers of the capacity benchmark: each call talks like a person on a phone (an
utterance, then it listens to the agent's whole answer, then the next utterance), over a real
AudioSocket connection, and notes every turn's voice-to-voice latency on the wire.

Unlike ``voice_call.converse`` it looks at each received frame once (an index into the peer's
list), so a hundred callers cost this process little CPU next to the engine they measure."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from operadora.audiosocket.peer import AsteriskPeer
from operadora.audiosocket.protocol import AudioFrame
from voice_call import AUDIBLE, BenchCaller
from voice_corpus import Prompt

ANSWER_WAIT_S = 10.0  # a turn with no agent audio within this is lost
QUIET_FRAMES = 15  # 300 ms of silence after agent audio: its answer is over


@dataclass(slots=True)
class CallResult:
    v2v_ms: list[float] = field(default_factory=list)
    lost: int = 0
    lost_prompts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


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


async def one_call(port: int, prompts: list[Prompt], rate: int, delay_s: float) -> CallResult:
    await asyncio.sleep(delay_s)
    result = CallResult()
    started = time.monotonic()
    try:
        peer = await AsteriskPeer.connect("127.0.0.1", port)
    except OSError as exc:
        result.error = str(exc)
        result.lost = len(prompts)
        return result
    caller = BenchCaller(peer, rate)
    listener = _Listener(peer)
    try:
        await caller.silence_until(time.monotonic() + 0.3)
        for prompt in prompts:
            _, last = await caller.speak(prompt)
            listener.new_frames()  # whatever arrived while speaking is not the answer
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
            if heard is None:
                result.lost += 1
                result.lost_prompts.append(prompt.name)
            else:
                result.v2v_ms.append((heard - last) * 1000)
    finally:
        await peer.close()
        result.seconds = time.monotonic() - started
    return result


async def run_calls(
    port: int, scripts: list[list[Prompt]], rate: int, spread_s: float
) -> list[CallResult]:
    """All calls at once, their starts spread evenly over ``spread_s``."""
    n = len(scripts)
    return list(
        await asyncio.gather(
            *(one_call(port, s, rate, i * spread_s / max(1, n)) for i, s in enumerate(scripts))
        )
    )
