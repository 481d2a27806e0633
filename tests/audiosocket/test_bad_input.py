"""Bad input loses nothing: each bad connection ends alone, with one log line, over real TCP."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import uuid

import numpy as np
import pytest
from prometheus_client import REGISTRY

from operadora.audiosocket.handlers import echo_handler
from operadora.audiosocket.peer import AsteriskPeer
from operadora.audiosocket.protocol import UuidFrame, serialize

pytestmark = pytest.mark.integration

SESSION_LOG = "operadora.audiosocket.session"


def ended_lines(caplog: pytest.LogCaptureFixture, peer: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == SESSION_LOG and f"peer={peer} ended" in r.message
    ]


def local_address(peer: AsteriskPeer) -> str:
    host, port = peer.writer.get_extra_info("sockname")[:2]
    return f"{host}:{port}"


async def wait_for(predicate, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class GoodCall:
    """A well-behaved caller streaming audio the whole time; it must never be disturbed."""

    def __init__(self, peer: AsteriskPeer) -> None:
        self.peer = peer
        self.sent = 0
        self._task = asyncio.get_running_loop().create_task(self._stream())

    async def _stream(self) -> None:
        t = np.arange(160) / 8000
        frame = (np.sin(2 * np.pi * 500 * t) * 5000).astype("<i2").tobytes()
        while True:
            self.peer.send_audio(frame, 8000)
            self.sent += 1
            await asyncio.sleep(0.02)

    async def check_and_stop(self) -> None:
        received_before = len(self.peer.audio())
        await wait_for(lambda: len(self.peer.audio()) > received_before + 2)  # still paced
        assert not self.peer.server_closed
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.peer.close()


AUDIO_8K = b"\x10\x01\x40" + bytes(320)
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def uuid_frame() -> bytes:
    return serialize(UuidFrame(uuid.uuid4()))


BAD_STREAMS = {
    "unknown kind": (AUDIO_8K + b"\x07\x00\x01\x00", "unknown AudioSocket kind", "protocol"),
    "oversized audio": (b"\x10\xff\xff", "cap 8192", "protocol"),
    "zero-length audio": (b"\x10\x00\x00", "zero-length payload", "protocol"),
    "error frame": (b"\xff\x00\x01\x09", "error frame 09", "error_frame"),
    "second uuid": (uuid_frame(), "a second UUID", "protocol"),
}


def errors_counted(kind: str) -> float:
    value = REGISTRY.get_sample_value("operadora_audiosocket_errors_total", {"kind": kind})
    return value or 0.0


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
async def test_bad_frames_end_only_their_connection(
    media_server, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    data, reason, kind = BAD_STREAMS[case]
    counted = errors_counted(kind)
    caplog.set_level(logging.INFO, SESSION_LOG)
    async with media_server(echo_handler) as server:
        good = GoodCall(await AsteriskPeer.connect("127.0.0.1", server.port))
        bad = await AsteriskPeer.connect("127.0.0.1", server.port)
        bad.send_audio(bytes(320), 8000)
        await wait_for(lambda: server.sessions == 2)
        bad.send_raw(data)
        assert await bad.wait_closed(5)
        await wait_for(lambda: server.sessions == 1)
        lines = ended_lines(caplog, local_address(bad))
        assert len(lines) == 1
        assert reason in lines[0].message
        assert lines[0].levelno == logging.WARNING
        assert errors_counted(kind) == counted + 1  # operadora_audiosocket_errors_total
        await good.check_and_stop()
        await bad.close()


async def test_truncated_frame_at_eof_is_reported(
    media_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, SESSION_LOG)
    async with media_server(echo_handler) as server:
        good = GoodCall(await AsteriskPeer.connect("127.0.0.1", server.port))
        bad = await AsteriskPeer.connect("127.0.0.1", server.port)
        bad.send_raw(b"\x10\x01\x40" + bytes(100))  # 100 of 320 payload bytes, then FIN
        await bad.writer.drain()
        address = local_address(bad)
        bad.writer.write_eof()
        await wait_for(lambda: len(ended_lines(caplog, address)) == 1)
        assert "103 of 323 bytes" in ended_lines(caplog, address)[0].message
        await good.check_and_stop()
        await bad.close()


async def test_peer_that_never_sends_its_uuid_times_out(
    media_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, SESSION_LOG)
    async with media_server(echo_handler, uuid_timeout_s=0.2) as server:
        good = GoodCall(await AsteriskPeer.connect("127.0.0.1", server.port))
        silent = await AsteriskPeer.connect("127.0.0.1", server.port, send_uuid=False)
        assert await silent.wait_closed(5)
        lines = ended_lines(caplog, local_address(silent))
        assert len(lines) == 1
        assert "no UUID frame within 0.2 s" in lines[0].message
        assert silent.received == []
        await good.check_and_stop()
        await silent.close()


async def test_audio_before_uuid_is_refused(media_server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, SESSION_LOG)
    async with media_server(echo_handler) as server:
        bad = await AsteriskPeer.connect("127.0.0.1", server.port, send_uuid=False)
        bad.send_audio(bytes(320), 8000)
        assert await bad.wait_closed(5)
        (line,) = ended_lines(caplog, local_address(bad))
        assert "audio before the UUID" in line.message
        assert server.sessions == 0
        await bad.close()


async def test_stalled_reader_is_bounded_and_dropped(
    media_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, SESSION_LOG)
    settings = {"send_buffer_bytes": 4096, "write_buffer_limit": 8192, "write_stall_s": 0.5}
    async with media_server(echo_handler, **settings) as server:
        good = GoodCall(await AsteriskPeer.connect("127.0.0.1", server.port))
        # a peer that sends audio but never reads what we send
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        address = "{}:{}".format(*sock.getsockname())
        sock.send(uuid_frame() + b"\x12\x02\x80" + bytes(640))
        await wait_for(lambda: any(s.peer == address for s in server.live_sessions()))
        (stalled,) = [s for s in server.live_sessions() if s.peer == address]
        peak = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while server.sessions == 2 and loop.time() < deadline:
            peak = max(peak, stalled.write_buffer_size)
            await asyncio.sleep(0.02)
        assert server.sessions == 1, "the stalled peer was never dropped"
        assert stalled.stats.dropped_frames > 0
        assert peak <= 8192 + 643  # never more than the limit plus one frame queued in memory
        (line,) = ended_lines(caplog, address)
        assert "stopped reading for 0.5 s" in line.message
        await good.check_and_stop()
        sock.close()


async def test_a_thousand_connections_opened_and_dropped_at_once(
    media_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, SESSION_LOG)
    async with media_server(echo_handler) as server:
        good = GoodCall(await AsteriskPeer.connect("127.0.0.1", server.port))
        loop = asyncio.get_running_loop()
        socks = []
        for i in range(1000):
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", server.port))
            if i % 2:  # half of them get as far as their UUID and a frame of audio
                sock.send(uuid_frame() + b"\x10\x00\x02\x00\x00")
            socks.append(sock)
        await wait_for(lambda: server.connections_total == 1001, within=20)
        for i, sock in enumerate(socks):
            if i % 3 == 0:  # a third are reset instead of closed
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            sock.close()
        await wait_for(lambda: server.sessions == 1, within=20)
        ends = [r for r in caplog.records if r.name == SESSION_LOG and " ended: " in r.message]
        assert len(ends) == 1000  # exactly one line per dropped connection
        addresses = {r.message.split(" peer=")[1].split(" ")[0] for r in ends}
        assert len(addresses) == 1000
        await good.check_and_stop()


async def test_a_second_connection_for_a_connected_call_is_refused(
    media_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, SESSION_LOG)
    call = uuid.uuid4()
    async with media_server(echo_handler) as server:
        first = GoodCall(await AsteriskPeer.connect("127.0.0.1", server.port, call))
        await wait_for(lambda: server.session(call) is not None)
        original = server.session(call)
        second = await AsteriskPeer.connect("127.0.0.1", server.port, call)
        assert await second.wait_closed(5)
        (line,) = ended_lines(caplog, local_address(second))
        assert f"call {call} is already connected" in line.message
        assert server.session(call) is original
        await first.check_and_stop()
        await wait_for(lambda: server.session(call) is None)
        await second.close()
