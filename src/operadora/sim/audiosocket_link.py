"""The simulator's side of AudioSocket: Asterisk is the TCP *client* of the media server.

Framing (``../shared/asterisk/AUDIOSOCKET.md``): ``kind (1) | length (2, big-endian) | payload``.
The UUID frame (``0x01``, 16 raw bytes) goes first, right after connecting; audio is ``0x10``
(8 kHz) .. ``0x18``; DTMF ``0x03`` (one ASCII digit); the server ends the session with ``0x00``
or by closing. Asterisk never sends ``0x00``: it just closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import uuid
from collections.abc import Callable

from operadora.sim.media import FRAME_BYTES, from_internal, to_internal

log = logging.getLogger(__name__)

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_ERROR = 0xFF
RATE_KIND = {
    8000: 0x10,
    12000: 0x11,
    16000: 0x12,
    24000: 0x13,
    32000: 0x14,
    44100: 0x15,
    48000: 0x16,
    96000: 0x17,
    192000: 0x18,
}
KIND_RATE = {kind: rate for rate, kind in RATE_KIND.items()}
FORMAT_RATE = {
    "slin": 8000,
    "slin12": 12000,
    "slin16": 16000,
    "slin24": 24000,
    "slin32": 32000,
    "slin44": 44100,
    "slin48": 48000,
    "slin96": 96000,
    "slin192": 192000,
}


def encode(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BH", kind, len(payload)) + payload


def uuid_frame(value: str) -> bytes:
    return encode(KIND_UUID, uuid.UUID(value).bytes)


class AudioSocketLink:
    """One AudioSocket TCP connection made by the simulator (dialplan app, channel driver,
    externalMedia). Audio in and out is at the simulator's internal rate."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        rate: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.rate = rate
        self.kind = RATE_KIND[rate]
        self.on_audio: Callable[[bytes], None] | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._buffer = bytearray()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, host_port: str, call_uuid: str, rate: int) -> AudioSocketLink:
        host, _, port = host_port.rpartition(":")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host or "127.0.0.1", int(port)), timeout=5.0
        )
        link = cls(reader, writer, rate)
        writer.write(uuid_frame(call_uuid))
        return link

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._read_loop())

    def send_audio(self, frame: bytes) -> None:
        if self.closed.is_set() or self.writer.is_closing():
            return
        self.writer.write(encode(self.kind, from_internal(frame, self.rate)))

    def send_dtmf(self, digit: str) -> None:
        if self.closed.is_set() or self.writer.is_closing():
            return
        self.writer.write(encode(KIND_DTMF, digit.encode("ascii")[:1]))

    def close(self, reason: str = "asterisk") -> None:
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()
        with contextlib.suppress(Exception):
            self.writer.close()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _read_loop(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(3)
                kind, length = struct.unpack("!BH", header)
                if kind == KIND_HANGUP:
                    self.close("server hangup")
                    return
                payload = await self.reader.readexactly(length) if length else b""
                rate = KIND_RATE.get(kind)
                if rate is None or not payload:
                    log.error(
                        "AudioSocket: unexpected frame kind 0x%02x; dropping connection", kind
                    )
                    self.close("protocol error")
                    return
                self._deliver(to_internal(payload, rate))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.close("server closed")
        except asyncio.CancelledError:
            raise

    def _deliver(self, pcm: bytes) -> None:
        self._buffer += pcm
        while len(self._buffer) >= FRAME_BYTES:
            frame = bytes(self._buffer[:FRAME_BYTES])
            del self._buffer[:FRAME_BYTES]
            if self.on_audio is not None:
                self.on_audio(frame)
