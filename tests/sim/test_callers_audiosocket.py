"""A persona's line over real AudioSocket TCP, against a small server that speaks the framing."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest

from operadora.audiosocket.protocol import (
    AudioFrame,
    DtmfFrame,
    HangupFrame,
    Parser,
    UuidFrame,
    serialize,
)
from operadora.sim.callers.audio import CallerAudio, rms_dbfs
from operadora.sim.callers.lines import AudioSocketLine

pytestmark = pytest.mark.integration


def tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


class AgentServer:
    """Greets with 16 kHz audio, records what the caller sends, hangs up on request."""

    def __init__(self) -> None:
        self.frames: list[object] = []
        self.hang_up = asyncio.Event()
        self.peer_closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        greeting = tone(0.2, 16000)
        for i in range(0, len(greeting), 640):
            writer.write(serialize(AudioFrame(greeting[i : i + 640], 16000)))
        await writer.drain()
        parser = Parser()
        hang = asyncio.create_task(self.hang_up.wait())
        while True:
            read = asyncio.create_task(reader.read(4096))
            await asyncio.wait({read, hang}, return_when=asyncio.FIRST_COMPLETED)
            if hang.done():
                read.cancel()
                writer.write(serialize(HangupFrame()))
                await writer.drain()
                break
            data = read.result()
            if not data:
                self.peer_closed.set()
                break
            parser.feed(data)
            while (frame := parser.next_frame()) is not None:
                self.frames.append(frame)
        writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_line_sends_uuid_paced_audio_and_dtmf_and_hears_the_server() -> None:
    server = AgentServer()
    port = await server.start()
    audio = CallerAudio(8000)
    call_uuid = uuid.uuid4()
    line = AudioSocketLine("127.0.0.1", port, audio, call_uuid=call_uuid)
    await line.connect()
    audio.speak(tone(0.1, 8000))
    await audio.wait_spoken()
    await line.send_dtmf("7", 10)
    utterance = await audio.tracker.wait_turn_end(0.1, 3.0)
    await asyncio.sleep(0.1)
    await line.hangup()
    await asyncio.wait_for(server.peer_closed.wait(), 3)
    await server.close()

    assert server.frames[0] == UuidFrame(call_uuid)
    audio_frames = [f for f in server.frames if isinstance(f, AudioFrame)]
    assert all(f.sample_rate == 8000 and len(f.pcm) == 320 for f in audio_frames)
    voiced = [f for f in audio_frames if rms_dbfs(f.pcm) > -40]
    assert len(voiced) == 5  # 100 ms of speech in 20 ms frames
    assert len(audio_frames) > len(voiced)  # silence keeps flowing, like a SIP phone
    assert DtmfFrame("7") in server.frames
    assert utterance is not None
    assert utterance.duration_s == pytest.approx(0.2, abs=0.021)  # resampled 16k -> 8k
    assert line.hung_up_by == "caller" and line.ended


async def test_server_hangup_ends_the_line() -> None:
    server = AgentServer()
    port = await server.start()
    line = AudioSocketLine("127.0.0.1", port, CallerAudio(8000, send_silence=False))
    await line.connect()
    server.hang_up.set()
    await asyncio.wait_for(line.wait_ended(), 3)
    assert line.hung_up_by == "server"
    assert line.frames_sent == 0  # silence suppressed: nothing sent while quiet
    await line.close()
    await server.close()


async def test_connect_to_nothing_fails_fast() -> None:
    with socket_bound() as port:
        line = AudioSocketLine("127.0.0.1", port, CallerAudio(8000), connect_timeout_s=2)
        with pytest.raises(OSError):
            await line.connect()


class socket_bound:
    """A port that is bound but not listening: connecting is refused."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
