"""The benchmark's load: simulated Asterisk peers in a separate process.

Each peer connects, sends its UUID, then one 8 kHz frame (320 bytes) every 20 ms on a
monotonic grid, like ``AudioSocket()`` in the dialplan, and timestamps every frame the server
sends back. The peers' audio is Asterisk's recorded prompt, so the VAD sees a real voice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from multiprocessing.connection import Connection

import numpy as np

from operadora.audiosocket.protocol import AudioFrame, UuidFrame, serialize
from operadora.audiosocket.workers import new_event_loop

FRAME_S = 0.02
FRAME_BYTES = 320
WIRE_FRAME = 3 + FRAME_BYTES


class Peer(asyncio.Protocol):
    __slots__ = ("arrivals", "buffered", "closed", "transport")

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.buffered = 0
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # the server only sends 8 kHz audio frames of 323 bytes to an 8 kHz caller
        now = time.monotonic()
        self.buffered += len(data)
        while self.buffered >= WIRE_FRAME:
            self.buffered -= WIRE_FRAME
            self.arrivals.append(now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


def load_main(
    conn: Connection,
    port: int,
    calls: int,
    audio: bytes,
    start_at: float,
    stop_at: float,
    priority: int,
) -> None:
    if priority:
        with contextlib.suppress(OSError):
            os.nice(-priority)
    loop = new_event_loop(True)
    try:
        result = loop.run_until_complete(_run(port, calls, audio, start_at, stop_at))
    finally:
        loop.close()
    conn.send(result)


async def _run(port: int, calls: int, audio: bytes, start_at: float, stop_at: float) -> dict:
    loop = asyncio.get_running_loop()
    peers: list[Peer] = []
    failed = 0
    for _ in range(calls):
        try:
            _, peer = await loop.create_connection(Peer, "127.0.0.1", port)
        except OSError:
            failed += 1
            continue
        assert peer.transport is not None
        peer.transport.write(serialize(UuidFrame(uuid.uuid4())))
        peers.append(peer)
    frames = [
        serialize(AudioFrame(audio[i : i + FRAME_BYTES], 8000))
        for i in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES)
    ]
    grid = time.monotonic()
    tick = 0
    while True:
        deadline = grid + tick * FRAME_S
        now = time.monotonic()
        if now >= stop_at:
            break
        if deadline > now:
            await asyncio.sleep(deadline - now)
        for index, peer in enumerate(peers):
            if not peer.closed and peer.transport is not None:
                peer.transport.write(frames[(tick + index * 7) % len(frames)])
        tick += 1
    errors: list[np.ndarray] = []
    missing = 0
    closed = 0
    for peer in peers:
        closed += peer.closed
        times = np.array([t for t in peer.arrivals if start_at <= t < stop_at])
        if times.size < 2:
            missing += int((stop_at - start_at) / FRAME_S)
            continue
        index = np.rint((times - times[0]) / FRAME_S)
        expected = int(index[-1]) + 1
        missing += max(0, expected - times.size)
        offsets = times - index * FRAME_S
        errors.append(offsets - offsets.min())
    for peer in peers:
        if peer.transport is not None:
            peer.transport.close()
    await asyncio.sleep(0.05)
    return {
        "connected": len(peers),
        "failed": failed,
        "closed_by_server": closed,
        "missing": missing,
        "errors": np.concatenate(errors) if errors else np.zeros(0),
    }


def timer_floor_main(conn: Connection, start_at: float, stop_at: float, priority: int) -> None:
    """Control: how late a bare 20 ms timer wakes on this machine while the benchmark runs."""
    if priority:
        with contextlib.suppress(OSError):
            os.nice(-priority)
    lateness: list[float] = []
    tick = 0
    while True:
        # the next deadline on the grid that has not passed yet (a late start catches up once)
        tick = max(tick, int((time.monotonic() - start_at) / FRAME_S) + 1)
        deadline = start_at + tick * FRAME_S
        if deadline >= stop_at:
            break
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        lateness.append(time.monotonic() - deadline)
        tick += 1
    conn.send(np.array(lateness))
