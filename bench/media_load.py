"""The benchmark's load: simulated Asterisk peers in a separate process.

Each peer connects, sends its UUID, then one 8 kHz frame (320 bytes) every 20 ms on a
monotonic grid, like ``AudioSocket()`` in the dialplan, and timestamps every frame the server
sends back. The peers' audio is Asterisk's recorded prompt, so the VAD sees a real voice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from multiprocessing.connection import Connection

import numpy as np

from operadora.audiosocket.protocol import AudioFrame, UuidFrame, serialize
from operadora.audiosocket.workers import new_event_loop

FRAME_S = 0.02
FRAME_BYTES = 320
SUB_SLOTS = 20  # 1 ms phases for peers that start at different moments
WIRE_FRAME = 3 + FRAME_BYTES


def grid_errors(times: np.ndarray) -> tuple[np.ndarray, int, int, np.ndarray]:
    """Each arrival's distance from the connection's 20 ms grid, frames missing, bursts, and
    when the late frames (the second frame of a slot) arrived.

    The grid's phase is the circular mean of the arrival phases (robust to a late first
    frame); a frame's error is how far it lands from its slot on that grid, so it is measured
    modulo the frame period: a frame more than 10 ms late lands in the next slot, which then
    holds two frames (a burst, i.e. late) and leaves its own slot empty (missing).
    """
    angles = 2 * np.pi * (times % FRAME_S) / FRAME_S
    phase = float(np.angle(np.mean(np.exp(1j * angles)))) / (2 * np.pi) * FRAME_S
    slots = np.rint((times - phase) / FRAME_S)
    offsets = times - phase - slots * FRAME_S
    error = np.abs(offsets - np.median(offsets))
    expected = int(slots[-1] - slots[0]) + 1
    filled = np.unique(slots).size
    late_at = times[1:][slots[1:] == slots[:-1]]
    return error, max(0, expected - filled), times.size - filled, late_at


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


def raise_priority(priority: int) -> None:
    """Run ahead of ordinary processes when allowed, as Asterisk does with ``-p``.

    ``priority`` > 0 lowers the niceness by that much; < 0 asks for SCHED_FIFO real-time
    scheduling at ``-priority`` (falling back to niceness -10 when not permitted).
    """
    if priority < 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(-priority))
            return
        except (OSError, AttributeError):
            priority = 10
    if priority:
        with contextlib.suppress(OSError):
            os.nice(-priority)


def load_main(
    conn: Connection,
    port: int,
    calls: int,
    audio: bytes,
    priority: int,
    first: int = 0,
    aligned: bool = False,
) -> None:
    """Connect ``calls`` peers (numbered from ``first`` across generators), say ``ready``,
    stream until the window the parent sends ends."""
    raise_priority(priority)
    loop = new_event_loop(True)
    try:
        result = loop.run_until_complete(_run(conn, port, calls, audio, first, aligned))
    finally:
        loop.close()
    conn.send(result)


async def _stream(
    peers: list[Peer], frames: list[bytes], until: list[float], first: int, aligned: bool
) -> None:
    """Each peer sends one frame per 20 ms. Calls start at independent moments and Asterisk
    paces each from its own start (the capture: frames at 20 ms from the connection's first
    message), so by default peer ``first + i`` sends in 1 ms sub-slot ``(first + i) % 20``
    of the period; ``aligned`` sends every peer's frame at once (all channels on one clock)."""
    slots = 1 if aligned else SUB_SLOTS
    groups = [
        [(index, peer) for index, peer in enumerate(peers) if (first + index) % slots == slot]
        for slot in range(slots)
    ]
    step = FRAME_S / slots
    grid = time.monotonic()
    tick = 0
    while time.monotonic() < until[0]:
        deadline = grid + tick * step
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        period = tick // slots
        for index, peer in groups[tick % slots]:
            if not peer.closed and peer.transport is not None:
                peer.transport.write(frames[(period + index * 7) % len(frames)])
        tick += 1


async def _run(
    conn: Connection, port: int, calls: int, audio: bytes, first: int, aligned: bool
) -> dict:
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
    until = [math.inf]
    streaming = loop.create_task(_stream(peers, frames, until, first, aligned))
    conn.send("ready")
    start_at, stop_at = await loop.run_in_executor(None, conn.recv)
    until[0] = stop_at
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    cpu_start = time.process_time()
    await streaming
    cpu_s = time.process_time() - cpu_start  # this generator's CPU over the measured window
    errors: list[np.ndarray] = []
    missing = 0
    bursts = 0
    late_at: list[np.ndarray] = []
    closed = 0
    for peer in peers:
        closed += peer.closed
        times = np.array([t for t in peer.arrivals if start_at <= t < stop_at])
        if times.size < 2:
            missing += int((stop_at - start_at) / FRAME_S)
            continue
        error, lost, burst, late = grid_errors(times)
        errors.append(error)
        late_at.append(late)
        missing += lost
        bursts += burst
    for peer in peers:
        if peer.transport is not None:
            peer.transport.close()
    await asyncio.sleep(0.05)
    return {
        "connected": len(peers),
        "failed": failed,
        "cpu_s": cpu_s,
        "closed_by_server": closed,
        "missing": missing,
        "bursts": bursts,
        "errors": np.concatenate(errors) if errors else np.zeros(0),
        "late_at": np.concatenate(late_at) if late_at else np.zeros(0),
    }


CONTROL_TICK_S = 0.005


def timer_floor_main(conn: Connection, priority: int) -> None:
    """Control: how late a bare timer (every 5 ms, in a process that does nothing else) wakes
    on this machine while the benchmark runs; sends ``(deadlines, lateness)``."""
    raise_priority(priority)
    start_at, stop_at = conn.recv()
    deadlines: list[float] = []
    lateness: list[float] = []
    tick = 0
    while True:
        # the next deadline on the grid that has not passed yet (a late start catches up once)
        tick = max(tick, int((time.monotonic() - start_at) / CONTROL_TICK_S) + 1)
        deadline = start_at + tick * CONTROL_TICK_S
        if deadline >= stop_at:
            break
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        deadlines.append(deadline)
        lateness.append(time.monotonic() - deadline)
        tick += 1
    conn.send((np.array(deadlines), np.array(lateness)))
