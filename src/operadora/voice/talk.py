"""``operadora talk``: a caller recording played into the voice agent over a real AudioSocket TCP
connection, with this process acting as Asterisk. The agent's audio is collected from the wire."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from operadora.audiosocket.peer import AsteriskPeer
from operadora.audiosocket.protocol import AudioFrame
from operadora.audiosocket.server import start_media_server
from operadora.config import Settings
from operadora.events import ActionRequestedEvent, DomainEvent, EventBus, TurnEvent
from operadora.voice.factory import agent_handler, warm_up
from operadora.voice.pcm import resample, to_pcm16
from operadora.voice.session import Engines
from operadora.voice.wavio import read_wav

FRAME_MS = 20


@dataclass(slots=True)
class TalkResult:
    caller_text: str = ""
    agent_text: str = ""
    actions: list[ActionRequestedEvent] = field(default_factory=list)
    turns: list[TurnEvent] = field(default_factory=list)
    reply_pcm: bytes = b""
    sample_rate: int = 8000
    wire_latency_ms: float | None = None  # last caller frame sent -> first agent audio received


def _silence(sample_rate: int) -> bytes:
    return bytes(sample_rate * FRAME_MS // 1000 * 2)


async def talk(
    settings: Settings,
    engines: Engines,
    caller_wav: Path,
    *,
    language: str | None = None,
    sample_rate: int = 8000,
    timeout_s: float = 30.0,
) -> TalkResult:
    audio, rate = read_wav(caller_wav)
    await warm_up(engines)
    caller_pcm = to_pcm16(resample(audio, rate, sample_rate))
    bus = EventBus()
    events = bus.subscribe()

    handler = agent_handler(engines, settings.voice, bus, language=language, greet=False)
    media_settings = settings.media.model_copy(update={"host": "127.0.0.1", "port": 0})
    server = await start_media_server(media_settings, handler)
    result = TalkResult(sample_rate=sample_rate)
    try:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        await peer.stream_audio(caller_pcm, sample_rate, FRAME_MS)
        sent_at = time.monotonic()
        mark = len(peer.received)
        await _keep_line_open(peer, events, result, sample_rate, timeout_s)
        frames = [r for r in peer.received[mark:] if isinstance(r.frame, AudioFrame)]
        pcm = b"".join(r.frame.pcm for r in frames if isinstance(r.frame, AudioFrame))
        result.reply_pcm = _trim_silence(pcm)
        first = next(
            (r.at for r in frames if isinstance(r.frame, AudioFrame) and any(r.frame.pcm)), None
        )
        if first is not None:
            result.wire_latency_ms = (first - sent_at) * 1000
        await peer.close()
    finally:
        await server.close()
    return result


async def _keep_line_open(
    peer: AsteriskPeer,
    events: asyncio.Queue[DomainEvent],
    result: TalkResult,
    sample_rate: int,
    timeout_s: float,
) -> None:
    """Send silence like a SIP phone until the agent has answered the caller's turn."""
    silence = _silence(sample_rate)
    deadline = time.monotonic() + timeout_s
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        while not events.empty():
            event = events.get_nowait()
            if isinstance(event, ActionRequestedEvent):
                result.actions.append(event)
            elif isinstance(event, TurnEvent):
                result.turns.append(event)
                if event.speaker == "caller" and event.text:
                    result.caller_text = event.text
                elif event.speaker == "agent" and result.caller_text:
                    result.agent_text = event.text
                    await asyncio.sleep(0.1)  # let the tail of the reply reach the wire
                    with contextlib.suppress(asyncio.QueueEmpty):
                        while True:
                            late = events.get_nowait()
                            if isinstance(late, ActionRequestedEvent):
                                result.actions.append(late)
                    return
        if peer.server_closed:
            return
        peer.send_audio(silence, sample_rate)
        next_at += FRAME_MS / 1000
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    raise TimeoutError(f"the agent did not answer within {timeout_s:g} s")


def _trim_silence(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2")
    voiced = np.flatnonzero(np.abs(samples) > 0)
    if voiced.size == 0:
        return b""
    return samples[voiced[0] : voiced[-1] + 1].tobytes()
