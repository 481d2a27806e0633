"""The simulator's AudioSocket framing, on the bytes captured from Asterisk 22.10.1
(``../shared/asterisk/audiosocket-capture.md``)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from operadora.sim.audiosocket_link import (
    KIND_DTMF,
    AudioSocketLink,
    encode,
    uuid_frame,
)
from operadora.sim.media import FRAME_BYTES

pytestmark = pytest.mark.unit


def test_frames_match_the_capture() -> None:
    captured = bytes.fromhex("0100101236b1180b064e8c9259240d0be7cce7")
    assert uuid_frame("1236b118-0b06-4e8c-9259-240d0be7cce7") == captured
    assert encode(KIND_DTMF, b"5") == bytes.fromhex("03000135")
    assert encode(0x10, bytes(320))[:3] == bytes.fromhex("100140")
    assert encode(0x12, bytes(640))[:3] == bytes.fromhex("120280")
    assert encode(0x00) == b"\x00\x00\x00"


class FakeWriter:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def link_with(data: bytes, rate: int) -> tuple[AudioSocketLink, FakeWriter, list[bytes]]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    writer = FakeWriter()
    link = AudioSocketLink(reader, writer, rate)  # type: ignore[arg-type]
    heard: list[bytes] = []
    link.on_audio = heard.append
    return link, writer, heard


async def test_server_audio_is_reframed_and_hangup_ends_the_session() -> None:
    pcm = np.full(240, 321, dtype="<i2").tobytes()  # 30 ms at 8 kHz, in one frame
    data = encode(0x10, pcm) + encode(0x10, pcm) + b"\x00\x00\x00" + encode(0x10, pcm)
    link, writer, heard = link_with(data, 8000)
    link.start()
    await asyncio.wait_for(link.closed.wait(), 1)
    assert link.close_reason == "server hangup"
    assert len(heard) == 3  # 60 ms of audio -> three 20 ms internal frames
    assert {len(f) for f in heard} == {FRAME_BYTES}
    assert set(np.frombuffer(b"".join(heard), dtype="<i2").tolist()) == {321}
    assert writer.closed


async def test_eof_and_bad_kinds_end_the_session() -> None:
    link, _, _ = link_with(b"", 16000)
    link.start()
    await asyncio.wait_for(link.closed.wait(), 1)
    assert link.close_reason == "server closed"
    link, _, _ = link_with(encode(0x01, bytes(16)), 16000)  # servers must not send UUIDs
    link.start()
    await asyncio.wait_for(link.closed.wait(), 1)
    assert link.close_reason == "protocol error"


async def test_outgoing_audio_is_at_the_negotiated_rate() -> None:
    writer: Any
    link, writer, _ = link_with(b"", 8000)
    link.send_audio(bytes(FRAME_BYTES))
    link.send_dtmf("7")
    assert bytes(writer.data) == encode(0x10, bytes(320)) + encode(KIND_DTMF, b"7")
    link.close()
    link.send_audio(bytes(FRAME_BYTES))  # nothing after close
    assert len(writer.data) == 3 + 320 + 4
