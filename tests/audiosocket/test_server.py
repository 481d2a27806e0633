"""The media server over real TCP: sessions, echo, rates, pacing, playback control, teardown."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid

import numpy as np
import pytest

from operadora.audio.resample import resample
from operadora.audiosocket.handlers import echo_handler, listen_handler
from operadora.audiosocket.native import NativeSession
from operadora.audiosocket.peer import AsteriskPeer
from operadora.audiosocket.protocol import AudioFrame, HangupFrame, serialize
from operadora.audiosocket.session import AudioSocketSession
from operadora.media import AudioIn, DtmfIn, MediaSession

pytestmark = pytest.mark.integration


def tone(seconds: float, rate: int, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2").tobytes()


async def wait_for(predicate, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def voiced(frames: list[AudioFrame]) -> bytes:
    """The audio of the frames that are not silence filler (a late inbound frame can leave a
    tick with nothing to echo, so filler may fall between echoed frames)."""
    return b"".join(f.pcm for f in frames if any(f.pcm))


def pcm_of(frames: list[AudioFrame]) -> bytes:
    return b"".join(f.pcm for f in frames)


@pytest.mark.parametrize(("rate", "kind", "size"), [(8000, 0x10, 320), (16000, 0x12, 640)])
async def test_echo_comes_back_at_the_callers_rate(
    media_server, rate: int, kind: int, size: int
) -> None:
    async with media_server(echo_handler) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        sent = tone(0.5, rate)
        await peer.stream_audio(sent, rate)
        await wait_for(lambda: len(voiced(peer.audio())) >= len(sent))
        frames = peer.audio()
        assert {f.kind for f in frames} == {kind}
        assert {len(f.pcm) for f in frames} == {size}
        assert voiced(frames) == sent  # every echoed sample, in order, nothing else
        assert server.sessions == 1
        await peer.close()
        await wait_for(lambda: server.sessions == 0)
        stats = server.stats()
        assert stats.frames_in == len(sent) // size
        assert stats.audio_frames_out == len(sent) // size
        assert stats.frames_out >= stats.audio_frames_out


async def test_session_contract_uuid_dtmf_and_end_of_inbound(media_server) -> None:
    seen: list[object] = []
    finished = asyncio.Event()
    sessions: list[MediaSession] = []

    async def handler(session: MediaSession) -> None:
        sessions.append(session)
        async for item in session.inbound():
            seen.append(item)
        finished.set()

    async with media_server(handler) as server:
        call = uuid.UUID("1236b118-0b06-4e8c-9259-240d0be7cce7")
        peer = await AsteriskPeer.connect("127.0.0.1", server.port, call)
        peer.send_audio(bytes(640), 16000)
        peer.send_dtmf("5")
        peer.send_audio(bytes(640), 16000)
        await peer.writer.drain()
        await wait_for(lambda: len(seen) == 3)
        session = sessions[0]
        assert session.call_uuid == call
        assert server.session(call) is session  # the call's connection, found by its UUID
        live = server.session(call)
        assert live is not None
        assert live.socket_option(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert session.sample_rate == 16000
        assert [type(i) for i in seen] == [AudioIn, DtmfIn, AudioIn]
        assert isinstance(seen[1], DtmfIn) and seen[1].digit == "5"
        assert isinstance(seen[0], AudioIn) and seen[0].sample_rate == 16000
        assert not session.closed
        await peer.close()  # Asterisk hangs up by closing the socket
        await asyncio.wait_for(finished.wait(), 5)
        assert session.closed


async def test_play_resamples_and_counts_what_was_played(media_server) -> None:
    agent_audio = tone(0.2, 16000, 300.0)
    ready = asyncio.Event()
    sessions: list[MediaSession] = []

    queued_after_play: list[float] = []

    async def handler(session: MediaSession) -> None:
        sessions.append(session)
        async for item in session.inbound():
            if isinstance(item, AudioIn) and not ready.is_set():
                session.play(agent_audio, 16000)  # TTS at 16 kHz onto an 8 kHz line
                queued_after_play.append(session.queued_ms)
                ready.set()

    async with media_server(handler) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        peer.send_audio(bytes(320), 8000)
        await asyncio.wait_for(ready.wait(), 5)
        session = sessions[0]
        # the streaming filter holds back ~24 ms until the queue runs short, then releases it
        assert 160 <= queued_after_play[0] <= 200
        await wait_for(lambda: session.played_ms >= 195)
        assert session.queued_ms == 0
        assert session.played_ms <= 205
        played = session.played_ms
        await asyncio.sleep(0.1)
        assert session.played_ms == played  # silence filler does not count
        expected = resample(agent_audio, 16000, 8000)
        await wait_for(lambda: len(voiced(peer.audio())) >= len(expected) - 320)
        heard = np.frombuffer(voiced(peer.audio()), "<i2")
        assert {f.sample_rate for f in peer.audio()} == {8000}
        assert np.abs(heard).max() > 4000
        # what the caller heard is the agent's audio at 8 kHz, all of it
        assert abs(heard.size - len(expected) // 2) <= 160
        await peer.close()


async def test_clear_stops_playback_within_a_frame(media_server) -> None:
    sessions: list[MediaSession] = []

    async def handler(session: MediaSession) -> None:
        sessions.append(session)
        session.play(tone(5.0, 8000))
        async for _ in session.inbound():
            pass

    async with media_server(handler) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        peer.send_audio(bytes(320), 8000)
        await wait_for(lambda: bool(sessions) and sessions[0].played_ms >= 100)
        session = sessions[0]
        dropped = session.clear()
        written_before_clear = server.live_sessions()[0].stats.frames_out
        assert dropped > 0
        assert session.queued_ms == 0
        played_at_clear = session.played_ms
        await wait_for(lambda: len(peer.audio()) >= written_before_clear + 5)
        assert session.played_ms == played_at_clear
        frames = peer.audio()
        # the client's frames are the server's writes in order: all of them after clear() are
        # silence, i.e. playback stopped at the very next frame
        assert any(
            np.abs(np.frombuffer(f.pcm, "<i2")).max() > 0 for f in frames[:written_before_clear]
        )
        after = frames[written_before_clear:]
        assert after and all(f.pcm == bytes(len(f.pcm)) for f in after)
        await peer.close()


async def test_our_hangup_sends_the_hangup_frame_and_closes(media_server) -> None:
    async def handler(session: MediaSession) -> None:
        async for item in session.inbound():
            if isinstance(item, DtmfIn) and item.digit == "#":
                await session.hangup()

    async with media_server(handler) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        peer.send_audio(bytes(320), 8000)
        peer.send_dtmf("#")
        assert await peer.wait_closed(5)
        assert isinstance(peer.received[-1].frame, HangupFrame)
        await wait_for(lambda: server.sessions == 0)
        await peer.close()


async def test_handler_return_or_crash_hangs_up_only_that_call(
    media_server, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(session: MediaSession) -> None:
        async for item in session.inbound():
            if isinstance(item, DtmfIn):
                if item.digit == "1":
                    return
                raise RuntimeError("pipeline bug")

    async with media_server(handler) as server:
        good = await AsteriskPeer.connect("127.0.0.1", server.port)
        returns = await AsteriskPeer.connect("127.0.0.1", server.port)
        crashes = await AsteriskPeer.connect("127.0.0.1", server.port)
        for peer in (good, returns, crashes):
            peer.send_audio(bytes(320), 8000)
        returns.send_dtmf("1")
        with caplog.at_level(logging.INFO):
            crashes.send_dtmf("9")
            assert await returns.wait_closed(5)
            assert await crashes.wait_closed(5)
        assert isinstance(returns.received[-1].frame, HangupFrame)
        assert isinstance(crashes.received[-1].frame, HangupFrame)
        assert any("pipeline bug" in (r.exc_text or "") for r in caplog.records)
        assert not good.server_closed
        assert server.sessions == 1
        for peer in (good, returns, crashes):
            await peer.close()


async def test_silence_keeps_a_quiet_line_alive(media_server) -> None:
    # f3 in the capture: with no audio either way Asterisk's AudioSocket() app hangs up at 2 s
    async with media_server(listen_handler, keepalive_after_s=0.1) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        await asyncio.sleep(0.6)
        frames = peer.audio()
        assert len(frames) >= 10
        assert {(f.kind, len(f.pcm)) for f in frames} == {(0x10, 320)}
        assert pcm_of(frames) == bytes(len(pcm_of(frames)))
        times = [r.at for r in peer.received]
        assert max(np.diff(times)) < 1.0  # a steady stream, never Asterisk's 2 s timeout
        await peer.close()


async def test_no_audio_sent_before_the_rate_is_known_or_keepalive_due(media_server) -> None:
    async with media_server(listen_handler, keepalive_after_s=5.0) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        await asyncio.sleep(0.2)
        assert peer.audio() == []
        peer.send_audio(bytes(640), 16000)  # externalMedia slin16: now we know the rate
        await wait_for(lambda: len(peer.audio()) >= 3)
        assert {f.kind for f in peer.audio()} == {0x12}
        await peer.close()


async def test_server_close_hangs_up_every_call(media_server) -> None:
    async with media_server(echo_handler) as server:
        peers = [await AsteriskPeer.connect("127.0.0.1", server.port) for _ in range(3)]
        for peer in peers:
            peer.send_audio(bytes(320), 8000)
        await wait_for(lambda: server.sessions == 3)
        await server.close()
        for peer in peers:
            assert await peer.wait_closed(5)
            assert isinstance(peer.received[-1].frame, HangupFrame)
            await peer.close()


async def test_paced_output_is_steady(media_server) -> None:
    # behaviour, not speed: one frame per tick at most, and every frame written arrives
    async with media_server(echo_handler) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        await peer.stream_audio(tone(1.0, 8000), 8000)
        (session,) = server.live_sessions()
        assert session.stats.frames_out <= server.pacer.ticks
        assert session.stats.frames_out >= 25  # the writer really ran during that second
        await session.hangup()  # flushes what was written, then closes
        assert await peer.wait_closed(10)
        assert len(peer.audio()) == session.stats.frames_out
        await peer.close()


async def test_a_slow_pipeline_pauses_reading_and_loses_nothing(media_server) -> None:
    release = asyncio.Event()
    got: list[bytes] = []
    sessions: list[MediaSession] = []

    async def handler(session: MediaSession) -> None:
        sessions.append(session)
        await release.wait()  # the pipeline is busy elsewhere
        async for item in session.inbound():
            if isinstance(item, AudioIn):
                got.append(item.pcm)

    async with media_server(handler, inbound_queue_frames=20) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        frames = [i.to_bytes(2, "little") * 160 for i in range(200)]
        # all 200 frames (64 KB) in one write: one read can hold far more than the inbox limit
        peer.send_raw(b"".join(serialize(AudioFrame(f, 8000)) for f in frames))
        await wait_for(lambda: bool(sessions))
        (session,) = server.live_sessions()
        await wait_for(lambda: session._reading_paused)
        await asyncio.sleep(0.1)
        assert len(session._inbox) == 20  # bounded: the rest waits in the parser and in TCP
        release.set()
        await wait_for(lambda: len(got) == 200)
        assert got == frames  # every frame, in order
        assert not session._reading_paused
        await peer.close()


async def test_outbound_follows_a_change_of_inbound_rate(media_server) -> None:
    sessions: list[MediaSession] = []

    async def handler(session: MediaSession) -> None:
        sessions.append(session)
        async for item in session.inbound():
            if isinstance(item, DtmfIn):
                session.play(tone(1.0, 8000), 8000)  # queued while the line is at 8 kHz

    async with media_server(handler) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        peer.send_audio(bytes(320), 8000)
        peer.send_dtmf("1")
        await wait_for(lambda: bool(sessions) and sessions[0].played_ms >= 100)
        session = sessions[0]
        peer.send_audio(bytes(640), 16000)  # the line now carries 16 kHz (kind 0x12)
        await wait_for(lambda: session.sample_rate == 16000)
        count = len(peer.audio())
        await wait_for(lambda: len(peer.audio()) >= count + 5)
        newest = peer.audio()[-3:]
        assert {(f.kind, len(f.pcm)) for f in newest} == {(0x12, 640)}
        # the rest of the queued 8 kHz audio was resampled, not dropped
        assert 0 < session.queued_ms < 1000
        assert session.played_ms + session.queued_ms == pytest.approx(1000, abs=45)
        await peer.close()


async def test_a_receiver_gets_every_frame_in_order_without_the_inbox(media_server) -> None:
    got: list[AudioIn | DtmfIn] = []
    ended: list[bool] = []

    async def handler(session: MediaSession) -> None:
        assert isinstance(session, AudioSocketSession | NativeSession)
        session.set_receiver(got.append)
        async for _ in session.inbound():  # yields nothing now; ends with the call
            raise AssertionError("an item went to the inbox")
        ended.append(True)

    async with media_server(handler) as server:
        peer = await AsteriskPeer.connect("127.0.0.1", server.port)
        frames = [bytes([i]) * 320 for i in range(1, 31)]
        for pcm in frames[:15]:
            peer.send_audio(pcm, 8000)
        peer.send_dtmf("7")
        for pcm in frames[15:]:
            peer.send_audio(pcm, 8000)
        await wait_for(lambda: len(got) == 31)
        await peer.close()
        await wait_for(lambda: bool(ended))
    audio = [item for item in got if isinstance(item, AudioIn)]
    assert [a.pcm for a in audio] == frames
    assert isinstance(got[15], DtmfIn) and got[15].digit == "7"


async def test_a_failing_receiver_ends_only_its_call(media_server, caplog) -> None:
    def broken(item: AudioIn | DtmfIn) -> None:
        raise RuntimeError("pipeline bug")

    async def handler(session: MediaSession) -> None:
        assert isinstance(session, AudioSocketSession | NativeSession)
        if session.call_uuid.int % 2:
            session.set_receiver(broken)
        async for _ in session.inbound():
            pass

    async with media_server(handler) as server:
        bad = await AsteriskPeer.connect("127.0.0.1", server.port, uuid.UUID(int=1))
        good = await AsteriskPeer.connect("127.0.0.1", server.port, uuid.UUID(int=2))
        for _ in range(5):
            bad.send_audio(bytes(320), 8000)
            good.send_audio(bytes(320), 8000)
            await asyncio.sleep(0.02)
        assert await bad.wait_closed(2.0)
        assert not good.server_closed
        assert server.stats().frames_in >= 6
        await good.close()
        await bad.close()
    assert any("receiver failed" in r.getMessage() for r in caplog.records)
