"""What only the native engine does, and choosing the engine. (Everything the two engines share
is tested on both: the ``media_server`` fixture runs each server test once per engine.)"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
import uuid

import pytest
from pydantic import ValidationError

from operadora.audiosocket import _native, native
from operadora.audiosocket.native import NativeMediaServer
from operadora.audiosocket.protocol import Parser, UuidFrame, serialize
from operadora.audiosocket.server import MediaServer, start_media_server
from operadora.config import MediaSettings
from operadora.media import AudioIn, MediaSession

pytestmark = pytest.mark.integration


class ThreadPeer:
    """An Asterisk stand-in on its own thread (a blocked event loop does not stop it): it sends
    its UUID and one frame of audio, then timestamps every frame the server sends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(serialize(UuidFrame(uuid.uuid4())) + b"\x10\x01\x40" + bytes(320))
        self.arrivals: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        parser = Parser(65535)
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            parser.feed(data)
            now = time.monotonic()
            while parser.next_frame() is not None:
                self.arrivals.append(now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


async def test_writes_keep_their_grid_while_the_event_loop_is_blocked() -> None:
    blocked: list[float] = []
    done = asyncio.Event()

    async def handler(session: MediaSession) -> None:
        async for item in session.inbound():
            if isinstance(item, AudioIn) and not blocked:
                await asyncio.sleep(0.2)  # a few frames on the grid first
                started = time.monotonic()
                # a handler hogging the loop (a slow model, a synchronous call)
                time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point
                blocked.extend([started, time.monotonic()])
                done.set()

    settings = MediaSettings(port=0, engine="native")
    server = await start_media_server(settings, handler)
    assert isinstance(server, NativeMediaServer)
    peer = ThreadPeer(server.port)
    try:
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.1)
        start, end = blocked
        during = [t for t in peer.arrivals if start <= t <= end]
        # 15 frames fall in the 300 ms the loop was blocked, each 20 ms after the one before
        assert len(during) >= 13
        gaps = [b - a for a, b in itertools.pairwise(during)]
        assert max(gaps) < 0.030
        (session,) = server.live_sessions()
        assert session.stats.skipped_frames == 0
    finally:
        peer.close()
        await server.close()


async def test_auto_picks_the_native_engine_where_it_is_built() -> None:
    async def handler(session: MediaSession) -> None:
        async for _ in session.inbound():
            pass

    for engine, kind in (("auto", NativeMediaServer), ("native", NativeMediaServer)):
        server = await start_media_server(MediaSettings(port=0, engine=engine), handler)
        assert type(server) is kind
        await server.close()
    server = await start_media_server(MediaSettings(port=0, engine="asyncio"), handler)
    assert type(server) is MediaServer
    await server.close()


async def test_without_the_extension_auto_falls_back_and_native_says_why(monkeypatch) -> None:
    async def handler(session: MediaSession) -> None:
        async for _ in session.inbound():
            pass

    monkeypatch.setattr(native, "_native", None)
    assert not native.native_available()
    server = await start_media_server(MediaSettings(port=0, engine="auto"), handler)
    assert type(server) is MediaServer
    await server.close()
    with pytest.raises(RuntimeError, match=r"was not built.*set media\.engine to 'asyncio'"):
        await start_media_server(MediaSettings(port=0, engine="native"), handler)


def test_the_engine_refuses_bad_settings_and_unknown_connections() -> None:
    with pytest.raises(ValueError, match=r"frame_ms in \(0, 40\]"):
        _native.Engine(frame_ms=100.0)
    with pytest.raises(ValueError, match="AudioSocket rate"):
        _native.Engine(default_rate=11025)
    engine = _native.Engine()
    try:
        with pytest.raises(KeyError, match="no media connection"):
            engine.play(12345, b"\x00\x00")
        with pytest.raises(KeyError):
            engine.stats(1 << 40)
        assert engine.events() == []
        engine.play_many([(12345, b"\x00\x00", False)])  # a call that has ended: skipped
        with pytest.raises(TypeError, match="list of"):
            engine.play_many((12345, b"", False))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="pcm bytes"):
            engine.play_many([(12345, "not bytes", False)])  # type: ignore[list-item]
        with pytest.raises(OverflowError):
            engine.play_many([(-1, b"", False)])
    finally:
        engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.add(0)
    engine.close()  # twice is fine


def test_media_engine_setting_is_checked() -> None:
    assert MediaSettings().engine == "auto"
    with pytest.raises(ValidationError, match="engine"):
        MediaSettings(engine="uring")  # type: ignore[arg-type]
