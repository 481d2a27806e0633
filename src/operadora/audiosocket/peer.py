"""A client that speaks AudioSocket the way Asterisk does (see ``audiosocket-capture.md``).

It connects, sends the 16-byte UUID frame, then whatever audio/DTMF it is told to, and
collects what the server sends back with arrival timestamps. Used by ``operadora media
probe``, the tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from operadora.audiosocket.protocol import (
    AudioFrame,
    DtmfFrame,
    Frame,
    Parser,
    ProtocolError,
    UuidFrame,
    serialize,
)


@dataclass(slots=True)
class Received:
    frame: Frame
    at: float  # time.monotonic()


@dataclass(slots=True)
class AsteriskPeer:
    """One fake Asterisk connection to an AudioSocket server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    call_uuid: uuid.UUID
    received: list[Received] = field(default_factory=list)
    error: ProtocolError | None = None
    _parser: Parser = field(default_factory=lambda: Parser(65535))
    _reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, host: str, port: int, call_uuid: uuid.UUID | None = None, *, send_uuid: bool = True
    ) -> AsteriskPeer:
        reader, writer = await asyncio.open_connection(host, port)
        peer = cls(reader, writer, call_uuid or uuid.uuid4())
        if send_uuid:
            writer.write(serialize(UuidFrame(peer.call_uuid)))
        peer._reader_task = asyncio.get_running_loop().create_task(peer._read())
        return peer

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                self._parser.feed(data)
                now = time.monotonic()
                while (frame := self._parser.next_frame()) is not None:
                    self.received.append(Received(frame, now))
        except ProtocolError as exc:
            self.error = exc
        except (ConnectionError, OSError):
            pass

    def send_audio(self, pcm: bytes, sample_rate: int = 8000) -> None:
        self.writer.write(serialize(AudioFrame(pcm, sample_rate)))

    def send_dtmf(self, digit: str) -> None:
        self.writer.write(serialize(DtmfFrame(digit)))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def stream_audio(self, pcm: bytes, sample_rate: int = 8000, frame_ms: int = 20) -> None:
        """Send ``pcm`` in real time, one frame every ``frame_ms`` on a monotonic grid."""
        size = sample_rate * frame_ms // 1000 * 2
        start = time.monotonic()
        for index, pos in enumerate(range(0, len(pcm), size)):
            delay = start + index * frame_ms / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.send_audio(pcm[pos : pos + size], sample_rate)
        await self.writer.drain()

    async def wait_closed(self, within_s: float = 5.0) -> bool:
        """Wait until the server closes the connection; False on timeout."""
        if self._reader_task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._reader_task), within_s)
        except TimeoutError:
            return False
        return True

    @property
    def server_closed(self) -> bool:
        return self._reader_task is not None and self._reader_task.done()

    def audio(self) -> list[AudioFrame]:
        return [r.frame for r in self.received if isinstance(r.frame, AudioFrame)]

    async def close(self) -> None:
        """Hang up the way Asterisk does: just close the socket."""
        if not self.writer.is_closing():
            self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
