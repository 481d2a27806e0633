"""A persona's line straight over AudioSocket, as Asterisk's ``AudioSocket()`` app would call.

This is the seed's direct dialplan route (extension 100: ``AudioSocket(uuid, host:port)``, no
ARI): the persona is the TCP client, sends the UUID frame, then one audio frame every 20 ms
(speech or silence), DTMF as kind 0x03, and hangs up by closing the socket, as Asterisk does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from operadora.audiosocket.protocol import (
    AudioFrame,
    DtmfFrame,
    HangupFrame,
    Parser,
    ProtocolError,
    UuidFrame,
    serialize,
)
from operadora.sim.callers.audio import CallerAudio, resample

log = logging.getLogger(__name__)


class AudioSocketLine:
    """Implements :class:`~operadora.sim.callers.persona.LineControl` over one TCP connection."""

    def __init__(
        self,
        host: str,
        port: int,
        audio: CallerAudio,
        *,
        call_uuid: uuid.UUID | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.audio = audio
        self.call_uuid = call_uuid or uuid.uuid4()
        self._connect_timeout_s = connect_timeout_s
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ended = asyncio.Event()
        self.hung_up_by: str | None = None  # "caller" | "server"
        self.frames_sent = 0
        self.frames_received = 0

    async def connect(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self._connect_timeout_s
        )
        self._writer = writer
        writer.write(serialize(UuidFrame(self.call_uuid)))
        await writer.drain()
        self._tasks = [
            asyncio.create_task(self._send_loop(writer), name=f"as-send-{self.call_uuid}"),
            asyncio.create_task(self._read_loop(reader), name=f"as-read-{self.call_uuid}"),
        ]

    async def _send_loop(self, writer: asyncio.StreamWriter) -> None:
        period = self.audio.frame_ms / 1000.0
        next_at = time.monotonic()
        rate = self.audio.sample_rate
        try:
            while not self._ended.is_set():
                frame = self.audio.next_frame()
                if frame is not None:
                    writer.write(serialize(AudioFrame(frame, rate)))
                    self.frames_sent += 1
                    await writer.drain()
                next_at += period
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        except (ConnectionError, OSError):
            self._end("server")

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        parser = Parser()
        try:
            while data := await reader.read(65536):
                parser.feed(data)
                while (frame := parser.next_frame()) is not None:
                    if isinstance(frame, AudioFrame):
                        self.frames_received += 1
                        pcm = resample(frame.pcm, frame.sample_rate, self.audio.sample_rate)
                        self.audio.hear(pcm)
                    elif isinstance(frame, HangupFrame):
                        self._end("server")
                        return
        except (ConnectionError, OSError, ProtocolError) as exc:
            log.info("audiosocket line %s ended: %s", self.call_uuid, exc)
        self._end("server")

    def _end(self, by: str) -> None:
        if self._ended.is_set():
            return
        self.hung_up_by = by
        self._ended.set()
        if self._writer is not None:
            self._writer.close()

    async def send_dtmf(self, digit: str, duration_ms: int) -> None:
        # Asterisk forwards a digit when it ends, so the press takes its duration first.
        await asyncio.sleep(duration_ms / 1000.0)
        if self._writer is not None and not self._ended.is_set():
            self._writer.write(serialize(DtmfFrame(digit)))
            await self._writer.drain()

    async def hangup(self) -> None:
        self._end("caller")
        await self.close()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def close(self) -> None:
        self._end("caller")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._writer is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
