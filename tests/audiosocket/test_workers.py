"""Several worker processes sharing one port with SO_REUSEPORT."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from operadora.audiosocket.peer import AsteriskPeer
from operadora.audiosocket.workers import WorkerPool, new_event_loop
from operadora.config import MediaSettings

pytestmark = pytest.mark.integration


async def test_two_workers_share_the_port_and_each_call_is_served() -> None:
    pool = WorkerPool(MediaSettings(port=0, workers=2, uvloop=False), "echo")
    pool.start()
    try:
        peers = []
        for _ in range(6):
            for _attempt in range(100):  # the workers are still starting
                try:
                    peers.append(await AsteriskPeer.connect("127.0.0.1", pool.port))
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        assert len(peers) == 6
        t = np.arange(1600) / 8000
        sent = (np.sin(2 * np.pi * 300 * t) * 6000).astype("<i2").tobytes()
        await asyncio.gather(*(peer.stream_audio(sent, 8000) for peer in peers))
        for peer in peers:
            for _ in range(200):
                if sent in b"".join(f.pcm for f in peer.audio() if any(f.pcm)):
                    break
                await asyncio.sleep(0.05)
            assert sent in b"".join(f.pcm for f in peer.audio() if any(f.pcm))
        for _ in range(200):  # each worker reports about once a second
            pool.poll()
            total = sum(s["connections"] for s in pool.snapshots.values())
            if len(pool.snapshots) == 2 and total == 6:
                break
            await asyncio.sleep(0.1)
        assert sum(s["connections"] for s in pool.snapshots.values()) == 6
        assert sum(s["sessions"] for s in pool.snapshots.values()) == 6
        for peer in peers:
            await peer.close()
    finally:
        await asyncio.to_thread(pool.stop)
    assert pool.alive() == 0


def test_event_loop_choice() -> None:
    loop = new_event_loop(True)
    try:
        assert "uvloop" in type(loop).__module__
    finally:
        loop.close()
    plain = new_event_loop(False)
    try:
        assert type(plain).__module__.startswith("asyncio")
    finally:
        plain.close()
