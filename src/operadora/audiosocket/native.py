"""The media server on the native engine: C reads, frames and paces; Python runs the calls.

:mod:`operadora.audiosocket._native` (C, one I/O thread that never takes the GIL) owns every
accepted socket: it reads, cuts the stream into AudioSocket frames, and writes each call's
paced frames itself, one per 20 ms in 1 ms slots a few ms after the call's inbound frames
arrive (the rules of :class:`~operadora.audiosocket.pacing.Pacer`), so the writes keep their
grid while the event loop is busy (a VAD batch, a handler). What is not per frame stays here:
accepting connections, the call's UUID and its handler, DTMF, protocol errors (every frame
that is not valid audio is handed over raw and parsed by
:mod:`~operadora.audiosocket.protocol`, so the errors and their messages are the asyncio
server's), resampling agent audio, the inbox and its back-pressure, and ending a connection
with one log line. :class:`NativeSession` behaves as
:class:`~operadora.audiosocket.session.AudioSocketSession` does; the same tests run on both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from array import array
from collections import deque
from typing import TYPE_CHECKING, Any

from operadora.audio.pcm import duration_ms
from operadora.audio.resample import resample
from operadora.audiosocket.pacing import MediaStats
from operadora.audiosocket.protocol import (
    HANGUP_BYTES,
    AudioFrame,
    DtmfFrame,
    ErrorFrame,
    Frame,
    HangupFrame,
    Parser,
    ProtocolError,
    UuidFrame,
)
from operadora.audiosocket.session import SessionBase, SessionRegistry
from operadora.config import MediaSettings
from operadora.media import AudioIn, DtmfIn, InboundItem, MediaSession, SessionHandler

try:
    from operadora.audiosocket import _native
except ImportError:  # not built (not Linux, or no C compiler at install time)
    _native = None  # type: ignore[assignment]

# the same logger as the asyncio server's sessions: one "ended" line per connection either way
log = logging.getLogger("operadora.audiosocket.session")
server_log = logging.getLogger(__name__)

LISTEN_BACKLOG = 4096


def native_available() -> bool:
    """Whether the C engine was built with this installation."""
    return _native is not None


class NativeSession(SessionBase):
    """One AudioSocket connection on the native engine (implements ``MediaSession``)."""

    def __init__(self, server: NativeMediaServer, conn: int, peer: str) -> None:
        settings = server.settings
        self._init_common(settings, server.handler)
        self._server = server
        self._engine = server.engine
        self._conn = conn
        self.peer = peer
        self._uuid_timer = self._loop.call_later(settings.uuid_timeout_s, self._uuid_timeout)
        self._dtmf_in = 0
        self._final: MediaStats | None = None
        # inbound
        self._held: deque[InboundItem] = deque()  # read while the inbox was full, in order
        self._raw = Parser(settings.max_payload)
        # outbound: the queue itself is in the engine

    def _waiting(self) -> tuple[deque[InboundItem], ...]:
        return (self._inbox, self._held)

    def play(self, pcm: bytes, sample_rate: int | None = None) -> None:
        pcm = self._to_line_rate(pcm, sample_rate)
        if self._closed or not pcm:
            return
        # the engine says (LOW) when the queue runs short, to release the filters' tails
        self._server.queue_play(self._conn, pcm, self._resampler_holds)

    def clear(self) -> int:
        dropped = 0 if self._closed else self._server.drop_plays(self._conn)
        dropped += 0 if self._closed else int(self._engine.clear(self._conn))
        self._reset_resamplers()
        return dropped

    def _flush_resamplers(self) -> None:
        tail = self._resampler_tails()
        if tail and not self._closed:
            self._server.queue_play(self._conn, tail, False)

    @property
    def queued_ms(self) -> float:
        if self._closed:
            return 0.0
        queued, _, rate = self._engine.playback(self._conn)
        return duration_ms(queued + self._server.pending_bytes(self._conn), rate)

    @property
    def played_ms(self) -> float:
        if self._closed:
            return self._played_at_end
        _, played, rate = self._engine.playback(self._conn)
        return duration_ms(played, rate)

    async def hangup(self) -> None:
        if self._closed:
            return
        self._end("hung up by us", last=HANGUP_BYTES)

    # --- extras ---------------------------------------------------------------------------

    @property
    def stats(self) -> MediaStats:
        """This connection's counters (final once it has ended)."""
        if self._final is not None:
            return self._final
        return self._read_stats()[0]

    def socket_option(self, level: int, option: int) -> int:
        """An option of the connection's socket (e.g. ``TCP_NODELAY``), read from the kernel."""
        fd = -1 if self._closed else int(self._engine.fd(self._conn))
        if fd < 0:
            raise RuntimeError("the connection is closed")
        with socket.socket(fileno=os.dup(fd)) as sock:
            return sock.getsockopt(level, option)

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the peer's socket."""
        return 0 if self._closed else int(self._read_stats()[1])

    def _read_stats(self) -> tuple[MediaStats, int]:
        frames_in, out, audio, late, skipped, dropped, hist, pending = self._engine.stats(
            self._conn
        )
        histogram = array("I")
        histogram.frombytes(hist)
        stats = MediaStats(
            frames_in=frames_in,
            dtmf_in=self._dtmf_in,
            frames_out=out,
            audio_frames_out=audio,
            late_frames=late,
            skipped_frames=skipped,
            dropped_frames=dropped,
            histogram=histogram.tolist(),
        )
        return stats, pending

    # --- what the engine hands over ---------------------------------------------------------

    def on_audio(self, pcm: bytes, rate: int, at: float) -> None:
        if self._closed:
            return
        if self._uuid is None:
            self._fail(ProtocolError("audio before the UUID frame"))
            return
        if rate != self._rate or not self._rate_known:
            self._learn_rate(rate)
        item = AudioIn(pcm, rate, at)
        if self._held:
            self._held.append(item)
        else:
            self._deliver(item)

    def on_raw(self, data: bytes, at: float) -> None:
        """A frame that is not valid audio (UUID, DTMF, hangup, error, or a broken one)."""
        if self._closed:
            return
        self._raw.feed(data)
        self._parse_raw(at)

    def on_eof(self, rest: bytes) -> None:
        if self._closed:
            return
        if rest:
            self._raw.feed(rest)
        self._raw.feed_eof()
        if not self._parse_raw(time.monotonic()) or self._closed:
            return
        if self._uuid is None:
            self._end("peer closed before sending its UUID")
        else:
            self._end("peer hung up")

    def _parse_raw(self, at: float) -> bool:
        """The frames the raw bytes hold, in order; False when they broke the protocol."""
        try:
            while (frame := self._raw.next_frame()) is not None:
                self._on_frame(frame, at)
                if self._closed:
                    return True
        except ProtocolError as exc:
            self._fail(exc)
            return False
        return True

    def on_lost(self, err: int) -> None:
        if self._closed:
            return
        self._end(f"connection lost: [Errno {err}] {os.strerror(err)}", error="connection_lost")

    def on_stalled(self) -> None:
        stalled = self._settings.write_stall_s
        self._end(f"peer stopped reading for {stalled:g} s", error="stalled_reader")

    def on_low(self) -> None:
        if self._resampler_holds and not self._closed:
            self._flush_resamplers()

    def _on_frame(self, frame: Frame, at: float) -> None:
        if type(frame) is UuidFrame:
            if self._uuid is not None:
                raise ProtocolError(f"a second UUID frame ({frame.uuid})")
            self._start(frame.uuid)
        elif type(frame) is DtmfFrame:
            if self._uuid is None:
                raise ProtocolError("DTMF before the UUID frame")
            self._dtmf_in += 1
            item = DtmfIn(frame.digit, at)
            if self._held:
                self._held.append(item)
            else:
                self._deliver(item)
        elif type(frame) is HangupFrame or type(frame) is ErrorFrame:
            self._peer_ended(frame)
        elif type(frame) is AudioFrame:  # pragma: no cover - the engine hands audio over itself
            self.on_audio(frame.pcm, frame.sample_rate, at)

    def _fail(self, exc: ProtocolError) -> None:
        self._end(f"protocol error: {exc}", error="protocol")

    def _deliver(self, item: InboundItem) -> None:
        if self._to_receiver(item):
            return
        inbox = self._inbox
        if len(inbox) >= self._pause_at:
            self._held.append(item)  # the engine was already told to stop reading
            return
        inbox.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._reading_paused and len(inbox) >= self._pause_at:
            self._reading_paused = True
            self._engine.set_reading(self._conn, False)

    def _resume_reading(self) -> None:
        held = self._held
        while held and (self._receiver is not None or len(self._inbox) < self._pause_at):
            if self._closed:
                return
            self._deliver(held.popleft())
        if held or self._closed or len(self._inbox) >= self._pause_at:
            return
        self._reading_paused = False
        self._engine.set_reading(self._conn, True)

    def _learn_rate(self, rate: int) -> None:
        self._rate_known = True
        if rate == self._rate:
            return
        old = self._rate
        self._rate = rate
        self._resamplers.clear()
        self._resampler_holds = False
        # the engine holds the queued audio (silence goes out meanwhile) until it is resampled
        self._server.flush_plays()
        queued = self._engine.take_playback(self._conn)
        if queued:
            self._engine.play(self._conn, resample(queued, old, rate), False)

    def _start(self, call_uuid: uuid.UUID) -> None:
        self._uuid = call_uuid
        self._cancel_uuid_timer()
        if not self._server._session_started(self):
            self._uuid = None  # the call belongs to the connection that has it already
            raise ProtocolError(f"call {call_uuid} is already connected")
        self._engine.start(self._conn)
        self._start_handler()

    # --- teardown -------------------------------------------------------------------------

    _played_at_end = 0.0

    def _end(self, reason: str, *, error: str | None = None, last: bytes = b"") -> None:
        """End this connection once, with one log line; ``error`` names the failure kind."""
        if self._closed:
            return
        self._cancel_uuid_timer()
        self._server.drop_plays(self._conn)
        stats = self._final = self._read_stats()[0]
        _, played, rate = self._engine.playback(self._conn)
        self._played_at_end = duration_ms(played, rate)
        self._closed = True
        self._end_reason = reason
        self._engine.close_conn(self._conn, last, error is not None)
        self._held.clear()
        self._finish_inbox()
        self._log_end(reason, error, stats)
        self._server._session_ended(self)


class PacerView:
    """What the asyncio server's ``pacer`` offers that holds for the native engine too."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def slot_of(self, session: NativeSession) -> int | None:
        """The 1 ms slot of the session's next write (None if it is not paced)."""
        if session.closed:
            return None
        slot = int(self._engine.slot(session._conn))
        return None if slot < 0 else slot

    @property
    def ticks(self) -> int:
        """Passes of the engine's writer that wrote at least one frame."""
        return int(self._engine.wakeups())


class NativeMediaServer(SessionRegistry[NativeSession]):
    """A listening AudioSocket server on the native engine. Create it with
    :func:`start_native_server` (or ``start_media_server`` with ``media.engine``)."""

    def __init__(
        self, settings: MediaSettings, handler: SessionHandler, *, reuse_port: bool = False
    ) -> None:
        if _native is None:
            raise RuntimeError(
                "media.engine is 'native' but operadora.audiosocket._native was not built "
                "(it needs Linux and a C compiler when the package is installed); "
                "set media.engine to 'asyncio' or 'auto'"
            )
        super().__init__()
        self.settings = settings
        self.handler = handler
        self._reuse_port = reuse_port or settings.workers > 1
        self.loop = asyncio.get_running_loop()
        self.engine = _native.Engine(
            frame_ms=float(settings.frame_ms),
            max_payload=settings.max_payload,
            write_after_ms=settings.write_after_inbound_ms,
            keepalive_s=settings.keepalive_after_s,
            write_buffer_limit=settings.write_buffer_limit,
            write_stall_s=settings.write_stall_s,
            default_rate=settings.default_sample_rate,
            nice_boost=settings.io_nice_boost,
        )
        self.pacer = PacerView(self.engine)
        self._sock: socket.socket | None = None
        self.port = 0
        # agent audio goes to the engine in one call per pass of the loop, not one per play()
        self._plays: list[tuple[int, bytes, bool]] = []
        self._in_events = False
        self._flush: asyncio.Handle | None = None

    async def _listen(self) -> None:
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self._reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.settings.host, self.settings.port))
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self.loop.add_reader(sock.fileno(), self._accept)
        self.loop.add_reader(self.engine.fileno(), self._on_events)
        server_log.info(
            "AudioSocket server (native engine) listening on %s:%d", self.settings.host, self.port
        )

    def _accept(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(256):  # then let the loop breathe; the rest stays in the backlog
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: this connection only
                server_log.warning("AudioSocket accept failed: %s", exc)
                return
            self.connections_total += 1
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if sndbuf := self.settings.send_buffer_bytes:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "?"
            fd = conn.detach()
            try:
                conn_id = self.engine.add(fd)
            except Exception:
                os.close(fd)
                server_log.exception("the media engine refused a connection from %s", peer)
                continue
            self._live[conn_id] = NativeSession(self, conn_id, peer)

    def queue_play(self, conn: int, pcm: bytes, holds: bool) -> None:
        """Queue agent audio for a connection; it reaches the engine at the end of this pass
        of the loop (with every other call's), in order."""
        self._plays.append((conn, pcm, holds))
        if not self._in_events and self._flush is None:
            self._flush = self.loop.call_soon(self.flush_plays)

    def flush_plays(self) -> None:
        """Hand the queued plays to the engine now."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        plays = self._plays
        if plays:
            self._plays = []
            self.engine.play_many(plays)

    def pending_bytes(self, conn: int) -> int:
        """Agent audio of a connection queued here, not yet in the engine."""
        return sum(len(pcm) for c, pcm, _ in self._plays if c == conn)

    def drop_plays(self, conn: int) -> int:
        """Forget a connection's queued plays (barge-in, or the call ended); returns bytes."""
        dropped = self.pending_bytes(conn)
        if dropped:
            self._plays = [play for play in self._plays if play[0] != conn]
        return dropped

    def _on_events(self) -> None:
        self._in_events = True
        try:
            self._dispatch()
        finally:
            self._in_events = False
            self.flush_plays()

    def _dispatch(self) -> None:
        sessions = self._live
        audio = _AUDIO
        for kind, conn, value, at, data in self.engine.events():
            session = sessions.get(conn)
            if session is None:
                continue
            if kind == audio:
                session.on_audio(data, value, at)
            elif kind == _RAW:
                session.on_raw(data, at)
            elif kind == _EOF:
                session.on_eof(data)
            elif kind == _LOST:
                session.on_lost(value)
            elif kind == _STALLED:
                session.on_stalled()
            elif kind == _LOW:
                session.on_low()

    def _session_ended(self, session: NativeSession) -> None:
        self._forget(session._conn, session)

    async def close(self) -> None:
        """Stop listening, hang up every call, wait for the handlers, stop the engine."""
        if self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        await self._hang_up_all()
        if self.engine.fileno() >= 0:
            self.loop.remove_reader(self.engine.fileno())
        self.flush_plays()
        # the hang-up frames wait at most one frame period to leave before the engine stops
        await asyncio.sleep(self.settings.frame_ms / 1000.0)
        self.engine.close()


if _native is not None:
    _AUDIO, _RAW, _EOF = _native.AUDIO, _native.RAW, _native.EOF
    _LOST, _STALLED, _LOW = _native.LOST, _native.STALLED, _native.LOW
else:  # pragma: no cover
    _AUDIO, _RAW, _EOF, _LOST, _STALLED, _LOW = 1, 2, 3, 4, 5, 6


async def start_native_server(
    settings: MediaSettings, handler: SessionHandler, *, reuse_port: bool = False
) -> NativeMediaServer:
    server = NativeMediaServer(settings, handler, reuse_port=reuse_port)
    await server._listen()
    return server


if TYPE_CHECKING:

    def _implements_media_session(session: NativeSession) -> MediaSession:
        return session
