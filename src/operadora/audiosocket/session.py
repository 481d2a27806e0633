"""One AudioSocket connection: an ``asyncio.Protocol`` that is also the call's MediaSession.

Bytes go through the sans-I/O :class:`~operadora.audiosocket.protocol.Parser`; inbound audio
and DTMF wait in a bounded inbox for the call's pipeline; agent audio waits in a playback
buffer that the loop's :class:`~operadora.audiosocket.pacing.Pacer` drains one frame per tick.
Any error ends this connection only, with one log line.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

from operadora.audio.pcm import duration_ms, frame_bytes
from operadora.audio.resample import StreamResampler, resample
from operadora.audiosocket.pacing import MediaStats, Pacer, PhaseTracker
from operadora.audiosocket.protocol import (
    HANGUP_BYTES,
    AudioFrame,
    DtmfFrame,
    ErrorFrame,
    HangupFrame,
    Parser,
    ProtocolError,
    UuidFrame,
    audio_kind,
    header,
)
from operadora.config import MediaSettings
from operadora.media import AudioIn, DtmfIn, InboundItem, MediaSession, SessionHandler
from operadora.metrics import AUDIOSOCKET_ERRORS

log = logging.getLogger(__name__)


class InboxOwner(Protocol):
    """What :class:`Inbox` needs of a session (both engines' sessions have it)."""

    _inbox: deque[InboundItem]
    _inbox_done: bool
    _waiter: asyncio.Future[None] | None
    _loop: asyncio.AbstractEventLoop
    _reading_paused: bool
    _resume_at: int

    def _resume_reading(self) -> None: ...


class Inbox:
    """Single-consumer async iterator over a session's inbound items."""

    __slots__ = ("_session",)

    def __init__(self, session: InboxOwner) -> None:
        self._session = session

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> InboundItem:
        session = self._session
        while True:
            inbox = session._inbox
            if inbox:
                item = inbox.popleft()
                if session._reading_paused and len(inbox) <= session._resume_at:
                    session._resume_reading()
                return item
            if session._inbox_done:
                raise StopAsyncIteration
            waiter = session._loop.create_future()
            session._waiter = waiter
            try:
                await waiter
            finally:
                session._waiter = None


class SessionBase:
    """What the sessions of both engines share: the call's identity and rate, the inbox and
    its end, the handler's task, resampling agent audio to the line's rate, and the one log
    line each connection ends with. Subclasses call ``_init_common`` first in ``__init__``."""

    _settings: MediaSettings
    _handler: SessionHandler
    _loop: asyncio.AbstractEventLoop
    _uuid: uuid.UUID | None
    _uuid_timer: asyncio.TimerHandle | None
    _task: asyncio.Task[None] | None
    _inbox: deque[InboundItem]
    _inbox_done: bool
    _waiter: asyncio.Future[None] | None
    _rate: int
    _rate_known: bool
    _resamplers: dict[int, StreamResampler]
    _resampler_holds: bool
    _closed: bool
    _end_reason: str | None
    _receiver: Callable[[InboundItem], None] | None
    _reading_paused: bool
    _pause_at: int
    _resume_at: int
    peer: str

    def _init_common(self, settings: MediaSettings, handler: SessionHandler) -> None:
        self._settings = settings
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self.peer = "?"
        self._uuid = None
        self._uuid_timer = None
        self._task = None
        self._inbox = deque()
        self._inbox_done = False
        self._waiter = None
        self._rate = settings.default_sample_rate
        self._rate_known = False
        self._resamplers = {}
        self._resampler_holds = False  # a resampler may hold the tail of played audio
        self._closed = False
        self._end_reason = None
        self._receiver = None
        # back-pressure: reading pauses with this many items unread, resumes at half
        self._reading_paused = False
        self._pause_at = settings.inbound_queue_frames
        self._resume_at = settings.inbound_queue_frames // 2

    @property
    def call_uuid(self) -> uuid.UUID:
        if self._uuid is None:
            raise RuntimeError("the session has no UUID yet")
        return self._uuid

    @property
    def sample_rate(self) -> int:
        return self._rate

    def inbound(self) -> AsyncIterator[InboundItem]:
        return Inbox(self)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def rate_known(self) -> bool:
        """Whether inbound audio has told us the connection's rate yet."""
        return self._rate_known

    @property
    def end_reason(self) -> str | None:
        return self._end_reason

    @property
    def uuid_or_none(self) -> uuid.UUID | None:
        """The call's UUID once its UUID frame has arrived."""
        return self._uuid

    @property
    def call_label(self) -> str:
        return str(self._uuid) if self._uuid is not None else "-"

    @property
    def handler_task(self) -> asyncio.Task[None] | None:
        return self._task

    def cancel_handler(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _to_line_rate(self, pcm: bytes, sample_rate: int | None) -> bytes:
        """Check agent audio and resample it to the line's rate (each input rate keeps its
        filter's state, so a stream of chunks resamples as one)."""
        if len(pcm) % 2:
            raise ValueError(f"slin audio must be whole 16-bit samples, got {len(pcm)} bytes")
        rate = sample_rate or self._rate
        if rate == self._rate or self._closed or not pcm:
            return pcm
        resampler = self._resamplers.get(rate)
        if resampler is None:
            resampler = self._resamplers[rate] = StreamResampler(rate, self._rate)
        self._resampler_holds = True
        return resampler.process(pcm)

    def _reset_resamplers(self) -> None:
        for resampler in self._resamplers.values():
            resampler.reset()
        self._resampler_holds = False

    def _resampler_tails(self) -> bytes:
        """The agent's audio ran short: what the resampling filters still hold."""
        self._resampler_holds = False
        return b"".join(resampler.flush() for resampler in self._resamplers.values())

    def _start_handler(self) -> None:
        name = f"media-{self._uuid}"
        self._task = self._loop.create_task(self._run_handler(), name=name)

    async def _run_handler(self) -> None:
        try:
            await self._handler(self)  # type: ignore[arg-type]  # subclasses are MediaSessions
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call=%s peer=%s: media handler failed", self.call_label, self.peer)
        if not self._closed:
            await self.hangup()

    async def hangup(self) -> None:
        raise NotImplementedError

    def _end(self, reason: str, *, error: str | None = None) -> None:
        raise NotImplementedError

    def _cancel_uuid_timer(self) -> None:
        if self._uuid_timer is not None:
            self._uuid_timer.cancel()
            self._uuid_timer = None

    def _uuid_timeout(self) -> None:
        self._uuid_timer = None
        if self._uuid is None and not self._closed:
            waited = self._settings.uuid_timeout_s
            self._end(f"no UUID frame within {waited:g} s", error="uuid_timeout")

    def set_receiver(self, receiver: Callable[[InboundItem], None] | None) -> None:
        """Hand each inbound item to ``receiver(item)`` as soon as its frame is read, on the
        event loop, instead of queueing it for :meth:`inbound` (no queue, no task switch per
        frame: the cheapest way to consume audio). Items already queued go to it first.
        ``inbound()`` then yields nothing more but still ends when the call does, so a handler
        can set a receiver and ``async for _ in session.inbound(): pass``. A receiver that
        raises ends the call (logged, error kind ``handler``). ``None`` goes back to the inbox.
        """
        self._receiver = receiver
        if receiver is None:
            return
        for queue in self._waiting():
            while queue and self._receiver is receiver and not self._closed:
                self._deliver(queue.popleft())
        if self._reading_paused:
            self._resume_reading()

    def _waiting(self) -> tuple[deque[InboundItem], ...]:
        """The items read but not yet delivered, in order (for a receiver set late)."""
        raise NotImplementedError

    def _deliver(self, item: InboundItem) -> None:
        raise NotImplementedError

    def _resume_reading(self) -> None:
        raise NotImplementedError

    def _to_receiver(self, item: InboundItem) -> bool:
        """Hand ``item`` to the receiver if one is set (a receiver that raises ends the call);
        False when there is none and the item goes to the inbox."""
        receiver = self._receiver
        if receiver is None:
            return False
        try:
            receiver(item)
        except Exception as exc:
            log.exception("call=%s peer=%s: media receiver failed", self.call_label, self.peer)
            self._end(f"receiver failed: {exc!r}", error="handler")
        return True

    def _peer_ended(self, frame: HangupFrame | ErrorFrame) -> None:
        """The peer sent a hangup or an error frame: the call ends."""
        if isinstance(frame, HangupFrame):
            self._end("peer sent hangup")
        else:
            code = frame.payload.hex() or "(empty)"
            self._end(f"peer sent error frame {code}", error="error_frame")

    def _finish_inbox(self) -> None:
        self._inbox_done = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _log_end(self, reason: str, error: str | None, stats: MediaStats) -> None:
        """The connection's one log line (and its error counted, if it ended in one)."""
        if error is not None:
            AUDIOSOCKET_ERRORS.labels(error).inc()
        level = logging.INFO if error is None else logging.WARNING
        log.log(
            level,
            "call=%s peer=%s ended: %s (frames in=%d out=%d late=%d skipped=%d dropped=%d)",
            self.call_label,
            self.peer,
            reason,
            stats.frames_in,
            stats.frames_out,
            stats.late_frames,
            stats.skipped_frames,
            stats.dropped_frames,
        )


class AudioSocketSession(SessionBase, asyncio.Protocol):
    """The server side of one AudioSocket connection (implements ``MediaSession``)."""

    def __init__(
        self,
        settings: MediaSettings,
        handler: SessionHandler,
        pacer: Pacer,
        on_end: Callable[[AudioSocketSession], None],
        on_start: Callable[[AudioSocketSession], bool] | None = None,
    ) -> None:
        self._init_common(settings, handler)
        self._pacer = pacer
        self._on_end = on_end
        self._on_start = on_start
        self._parser = Parser(settings.max_payload)
        self._transport: asyncio.Transport | None = None
        self.stats = MediaStats()
        self._connected_at = 0.0
        # outbound
        self._playback = bytearray()
        self._played_bytes = 0
        self._writing_paused_at: float | None = None
        self._late_after_s = settings.frame_ms / 2000.0
        self._phase = PhaseTracker(settings.frame_ms / 1000.0)
        self._write_after_s = settings.write_after_inbound_ms / 1000.0
        self._backlog = False  # delivering frames that waited in the parser
        self._set_frame_format()

    def _waiting(self) -> tuple[deque[InboundItem], ...]:
        return (self._inbox,)

    def play(self, pcm: bytes, sample_rate: int | None = None) -> None:
        pcm = self._to_line_rate(pcm, sample_rate)
        if self._closed or not pcm:
            return
        self._playback += pcm

    def clear(self) -> int:
        dropped = len(self._playback)
        self._playback.clear()
        self._reset_resamplers()
        return dropped

    def _flush_resamplers(self) -> None:
        """The agent's audio ran short: release what the resampling filters still hold."""
        self._playback += self._resampler_tails()

    @property
    def queued_ms(self) -> float:
        return duration_ms(len(self._playback), self._rate)

    @property
    def played_ms(self) -> float:
        return duration_ms(self._played_bytes, self._rate)

    async def hangup(self) -> None:
        if self._closed:
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(HANGUP_BYTES)
        self._end("hung up by us")

    # --- extras ---------------------------------------------------------------------------

    def socket_option(self, level: int, option: int) -> int:
        """An option of the connection's socket (e.g. ``TCP_NODELAY``), read from the kernel."""
        transport = self._transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is None:
            raise RuntimeError("the connection is closed")
        return int(sock.getsockopt(level, option))

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the peer's socket."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self._closed:  # the server closed before this connection was set up
            transport.abort()
            return
        self._transport = transport
        self._connected_at = self._loop.time()
        peername = transport.get_extra_info("peername")
        if isinstance(peername, tuple) and len(peername) >= 2:
            self.peer = f"{peername[0]}:{peername[1]}"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if sndbuf := self._settings.send_buffer_bytes:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        transport.set_write_buffer_limits(high=self._settings.write_buffer_limit)
        self._uuid_timer = self._loop.call_later(self._settings.uuid_timeout_s, self._uuid_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        parser = self._parser
        if self._reading_paused:
            parser.feed(data)
            return
        try:
            frame = parser.take(data)  # one whole frame per read: no buffering
            if frame is not None:
                self._on_frame(frame)
                # writes due now (this call's or others') ride this wake-up, not the timer's
                self._pacer.serve_due()
                return
        except ProtocolError as exc:
            self._end(f"protocol error: {exc}", error="protocol")
            return
        self._drain()

    def _drain(self) -> None:
        """Hand parsed frames to the inbox until it is full (the rest waits in the parser)."""
        parser = self._parser
        try:
            while not self._reading_paused and (frame := parser.next_frame()) is not None:
                self._on_frame(frame)
                if self._closed:
                    return
        except ProtocolError as exc:
            self._end(f"protocol error: {exc}", error="protocol")

    def eof_received(self) -> bool | None:
        parser = self._parser
        parser.feed_eof()
        try:
            while (frame := parser.next_frame()) is not None:
                self._on_frame(frame)
                if self._closed:
                    return None
        except ProtocolError as exc:
            self._end(f"protocol error: {exc}", error="protocol")
            return None
        if self._uuid is None:
            self._end("peer closed before sending its UUID")
        else:
            self._end("peer hung up")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self._closed:
            if exc is None:
                self._end("peer hung up")
            else:
                self._end(f"connection lost: {exc}", error="connection_lost")

    def pause_writing(self) -> None:
        if self._writing_paused_at is None:
            self._writing_paused_at = self._loop.time()

    def resume_writing(self) -> None:
        self._writing_paused_at = None

    # --- inbound --------------------------------------------------------------------------

    def _on_frame(self, frame: object) -> None:
        if type(frame) is AudioFrame:
            if self._uuid is None:
                raise ProtocolError("audio before the UUID frame")
            stats = self.stats
            stats.frames_in += 1
            if frame.sample_rate != self._rate or not self._rate_known:
                self._learn_rate(frame.sample_rate)
            now = time.monotonic()
            if not self._backlog:  # frames held back by a slow pipeline tell no arrival phase
                # write a few ms after the caller's frames arrive (at once before the first
                # write; then re-checked every 4th frame, the slot moves 1 ms per frame anyway)
                phase = self._phase.observe(now)
                if not stats.frames_out or not stats.frames_in & 3:
                    self._pacer.steer(self, phase + self._write_after_s, jump=not stats.frames_out)
            self._deliver(AudioIn(frame.pcm, frame.sample_rate, now))
        elif type(frame) is UuidFrame:
            if self._uuid is not None:
                raise ProtocolError(f"a second UUID frame ({frame.uuid})")
            self._start(frame.uuid)
        elif type(frame) is DtmfFrame:
            if self._uuid is None:
                raise ProtocolError("DTMF before the UUID frame")
            self.stats.dtmf_in += 1
            self._deliver(DtmfIn(frame.digit, time.monotonic()))
        elif type(frame) is HangupFrame or type(frame) is ErrorFrame:
            self._peer_ended(frame)

    def _deliver(self, item: InboundItem) -> None:
        if self._to_receiver(item):
            return
        inbox = self._inbox
        inbox.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._reading_paused and len(inbox) >= self._pause_at:
            self._reading_paused = True
            if self._transport is not None:
                self._transport.pause_reading()

    def _resume_reading(self) -> None:
        self._reading_paused = False
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()
            self._backlog = True
            try:
                self._drain()
            finally:
                self._backlog = False

    def _start(self, call_uuid: uuid.UUID) -> None:
        self._uuid = call_uuid
        self._cancel_uuid_timer()
        if self._on_start is not None and not self._on_start(self):
            self._uuid = None  # the call belongs to the connection that has it already
            raise ProtocolError(f"call {call_uuid} is already connected")
        self._pacer.add(self)
        self._start_handler()

    # --- outbound -------------------------------------------------------------------------

    def _set_frame_format(self) -> None:
        self._frame_bytes = frame_bytes(self._rate, self._settings.frame_ms)
        self._header = header(audio_kind(self._rate), self._frame_bytes)
        self._silence = self._header + bytes(self._frame_bytes)

    def _learn_rate(self, rate: int) -> None:
        self._rate_known = True
        if rate == self._rate:
            return
        if self._playback:
            self._playback = bytearray(resample(self._playback, self._rate, rate))
        self._played_bytes = self._played_bytes * rate // self._rate
        self._resamplers.clear()
        self._resampler_holds = False
        self._rate = rate
        self._set_frame_format()

    def on_tick(self, deadline: float, skipped: int) -> None:
        """Write this tick's frame: queued agent audio, else silence (called by the Pacer)."""
        transport = self._transport
        if transport is None or self._closed:
            return
        stats = self.stats
        if skipped:
            stats.skipped_frames += skipped
        if not self._rate_known and not self._playback:
            if self._loop.time() - self._connected_at < self._settings.keepalive_after_s:
                return
        if self._writing_paused_at is not None:
            stats.dropped_frames += 1
            if self._loop.time() - self._writing_paused_at > self._settings.write_stall_s:
                stalled = self._settings.write_stall_s
                self._end(f"peer stopped reading for {stalled:g} s", error="stalled_reader")
            return
        playback = self._playback
        size = self._frame_bytes
        if self._resampler_holds and len(playback) < size:
            self._flush_resamplers()
        if playback:
            if len(playback) >= size:
                frame = self._header + playback[:size]
                del playback[:size]
                self._played_bytes += size
            else:
                real = len(playback)
                frame = self._header + playback + bytes(size - real)
                playback.clear()
                self._played_bytes += real
            stats.audio_frames_out += 1
        else:
            frame = self._silence
        transport.write(frame)
        stats.record_write(time.monotonic() - deadline, self._late_after_s)

    # --- teardown -------------------------------------------------------------------------

    def _end(self, reason: str, *, error: str | None = None) -> None:
        """End this connection once, with one log line; ``error`` names the failure kind."""
        if self._closed:
            return
        self._closed = True
        self._end_reason = reason
        self._cancel_uuid_timer()
        self._pacer.remove(self)
        self._playback.clear()
        self._finish_inbox()
        transport = self._transport
        if transport is not None:
            if error:
                transport.abort()
            else:
                transport.close()
        self._log_end(reason, error, self.stats)
        self._on_end(self)


class Registered(Protocol):
    """What :class:`SessionRegistry` needs of a session."""

    @property
    def uuid_or_none(self) -> uuid.UUID | None: ...

    @property
    def stats(self) -> MediaStats: ...

    @property
    def handler_task(self) -> asyncio.Task[None] | None: ...

    async def hangup(self) -> None: ...


S = TypeVar("S", bound=Registered)


class SessionRegistry(Generic[S]):
    """A server's live connections (by a key of its own), its calls by UUID, and the totals
    of the connections that have ended: what both engines' servers keep alike."""

    def __init__(self) -> None:
        self._live: dict[Hashable, S] = {}
        self._by_uuid: dict[uuid.UUID, S] = {}
        self.ended = MediaStats()  # totals of the connections that have ended
        self.connections_total = 0

    def _session_started(self, session: S) -> bool:
        """Register the call a session's UUID names; False when another connection has it."""
        call = session.uuid_or_none
        if call is None or call in self._by_uuid:
            return False
        self._by_uuid[call] = session
        return True

    def _forget(self, key: Hashable, session: S) -> None:
        call = session.uuid_or_none
        if call is not None and self._by_uuid.get(call) is session:
            del self._by_uuid[call]
        if self._live.pop(key, None) is not None:
            self.ended.merge(session.stats)

    def session(self, call_uuid: uuid.UUID) -> S | None:
        """The live connection of a call, by the UUID it sent (None if not connected)."""
        return self._by_uuid.get(call_uuid)

    @property
    def sessions(self) -> int:
        """Connections open now."""
        return len(self._live)

    def live_sessions(self) -> list[S]:
        return list(self._live.values())

    def stats(self) -> MediaStats:
        """Totals over every connection, ended and live."""
        total = MediaStats()
        total.merge(self.ended)
        for session in self._live.values():
            total.merge(session.stats)
        return total

    async def _hang_up_all(self) -> None:
        """A server closing: hang every call up, then cancel and wait for their handlers."""
        sessions = self.live_sessions()
        tasks = [s.handler_task for s in sessions if s.handler_task is not None]
        for session in sessions:
            await session.hangup()
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


if TYPE_CHECKING:

    def _implements_media_session(session: AudioSocketSession) -> MediaSession:
        return session  # mypy proves the session satisfies the MediaSession protocol
