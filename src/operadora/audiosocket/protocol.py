"""AudioSocket framing without I/O: bytes in, typed frames out, and frames back to bytes.

Every message is ``kind (1 byte) | length (2 bytes, big-endian) | payload``; audio payloads
are slin, signed 16-bit little-endian. See ``shared/asterisk/AUDIOSOCKET.md`` and the capture
in ``audiosocket-capture.md``. :class:`Parser` never touches a socket: feed it what was read,
then pull frames until it returns ``None``. A protocol error poisons the parser (it raises the
same error again) so the connection owner ends that one call; frames before it are kept.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum
from typing import Final


class Kind(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    SLIN = 0x10
    SLIN12 = 0x11
    SLIN16 = 0x12
    SLIN24 = 0x13
    SLIN32 = 0x14
    SLIN44 = 0x15
    SLIN48 = 0x16
    SLIN96 = 0x17
    SLIN192 = 0x18
    ERROR = 0xFF


AUDIO_RATES: Final[dict[int, int]] = {
    Kind.SLIN: 8000,
    Kind.SLIN12: 12000,
    Kind.SLIN16: 16000,
    Kind.SLIN24: 24000,
    Kind.SLIN32: 32000,
    Kind.SLIN44: 44100,
    Kind.SLIN48: 48000,
    Kind.SLIN96: 96000,
    Kind.SLIN192: 192000,
}
RATE_KINDS: Final[dict[int, int]] = {rate: kind for kind, rate in AUDIO_RATES.items()}
HEADER_SIZE: Final = 3
MAX_WIRE_PAYLOAD: Final = 0xFFFF
HANGUP_BYTES: Final = b"\x00\x00\x00"
_HEADER = struct.Struct(">BH")
_KNOWN_KINDS: Final = frozenset(int(k) for k in Kind)


# --- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HangupFrame:
    """``00 00 00``: end the session (Asterisk itself just closes the socket)."""


@dataclass(frozen=True, slots=True)
class UuidFrame:
    """The first frame from Asterisk: the 16 raw bytes of the call's UUID."""

    uuid: uuid.UUID


@dataclass(frozen=True, slots=True)
class DtmfFrame:
    """One DTMF digit, sent by Asterisk when the digit ends."""

    digit: str


@dataclass(slots=True)
class AudioFrame:
    """slin audio at ``sample_rate`` (kind 0x10 for 8 kHz ... 0x18 for 192 kHz).

    Not frozen, unlike the other frames: one is parsed for every 20 ms of every call, and a
    frozen dataclass's ``__init__`` costs ~3x as much. Treat it as immutable all the same.
    """

    pcm: bytes
    sample_rate: int

    @property
    def kind(self) -> int:
        return RATE_KINDS[self.sample_rate]


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """Kind 0xff; the payload is an application-defined error code (possibly empty)."""

    payload: bytes = b""


Frame = HangupFrame | UuidFrame | DtmfFrame | AudioFrame | ErrorFrame


# --- errors ---------------------------------------------------------------------------------


class ProtocolError(Exception):
    """The peer broke the AudioSocket framing; end this connection."""


class UnknownKindError(ProtocolError):
    def __init__(self, kind: int) -> None:
        super().__init__(f"unknown AudioSocket kind 0x{kind:02x}")
        self.kind = kind


class PayloadTooLargeError(ProtocolError):
    def __init__(self, kind: int, length: int, limit: int) -> None:
        super().__init__(
            f"AudioSocket kind 0x{kind:02x} announces {length} payload bytes, cap {limit}"
        )
        self.kind = kind
        self.length = length
        self.limit = limit


class EmptyAudioError(ProtocolError):
    def __init__(self, kind: int) -> None:
        super().__init__(f"AudioSocket audio kind 0x{kind:02x} with a zero-length payload")
        self.kind = kind


class InvalidPayloadError(ProtocolError):
    def __init__(self, kind: int, reason: str) -> None:
        super().__init__(f"AudioSocket kind 0x{kind:02x}: {reason}")
        self.kind = kind


class TruncatedFrameError(ProtocolError):
    def __init__(self, buffered: int, needed: int) -> None:
        super().__init__(
            f"connection ended inside an AudioSocket frame ({buffered} of {needed} bytes)"
        )
        self.buffered = buffered
        self.needed = needed


# --- parsing --------------------------------------------------------------------------------


def _decode(kind: int, payload: bytes) -> Frame:
    rate = AUDIO_RATES.get(kind)
    if rate is not None:
        if not payload:
            raise EmptyAudioError(kind)
        if len(payload) % 2:
            raise InvalidPayloadError(kind, f"odd audio length {len(payload)} (16-bit samples)")
        return AudioFrame(payload, rate)
    if kind == Kind.UUID:
        if len(payload) != 16:
            raise InvalidPayloadError(kind, f"UUID must be 16 raw bytes, got {len(payload)}")
        return UuidFrame(uuid.UUID(bytes=payload))
    if kind == Kind.DTMF:
        if len(payload) != 1 or not 0x21 <= payload[0] <= 0x7E:
            raise InvalidPayloadError(kind, f"DTMF must be one printable byte, got {payload!r}")
        return DtmfFrame(chr(payload[0]))
    if kind == Kind.HANGUP:
        if payload:
            raise InvalidPayloadError(kind, f"hangup with a {len(payload)}-byte payload")
        return HangupFrame()
    if kind == Kind.ERROR:
        return ErrorFrame(payload)
    raise UnknownKindError(kind)


class Parser:
    """Incremental AudioSocket parser.

    ``feed(data)`` then ``next_frame()`` until it returns ``None`` (more bytes needed);
    ``feed_eof()`` at end of stream makes a partial frame raise :class:`TruncatedFrameError`.
    """

    __slots__ = ("_buf", "_eof", "_error", "_pos", "max_payload")

    def __init__(self, max_payload: int = 8192) -> None:
        if not 0 < max_payload <= MAX_WIRE_PAYLOAD:
            raise ValueError(f"max_payload must be 1..{MAX_WIRE_PAYLOAD}, got {max_payload}")
        self.max_payload = max_payload
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof:
            raise RuntimeError("feed() after feed_eof()")
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def feed_eof(self) -> None:
        self._eof = True

    def take(self, data: bytes) -> Frame | None:
        """The frame ``data`` holds when nothing is buffered and ``data`` is exactly one
        well-formed frame (the usual case: Asterisk writes one frame per send), without
        copying it through the buffer; otherwise ``feed(data)`` and ``None`` (then pull the
        frames with :meth:`next_frame`). Raises :class:`ProtocolError` like ``next_frame``."""
        if self._error is None and self._pos == len(self._buf) and not self._eof:
            size = len(data)
            if size >= HEADER_SIZE and size == ((data[1] << 8) | data[2]) + HEADER_SIZE:
                kind = data[0]
                if kind in _KNOWN_KINDS and size - HEADER_SIZE <= self.max_payload:
                    try:
                        return _decode(kind, data[HEADER_SIZE:])
                    except ProtocolError as exc:
                        self._error = exc
                        raise
        self.feed(data)
        return None

    def next_frame(self) -> Frame | None:
        """The next complete frame, ``None`` when more bytes are needed (or the stream ended
        cleanly at a frame boundary); raises :class:`ProtocolError` on bad input."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except ProtocolError as exc:
            self._error = exc
            raise

    def _next(self) -> Frame | None:
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < HEADER_SIZE:
            if self._eof and available:
                raise TruncatedFrameError(available, HEADER_SIZE)
            return None
        kind, length = _HEADER.unpack_from(buf, pos)
        if kind not in _KNOWN_KINDS:
            raise UnknownKindError(kind)
        if length > self.max_payload:
            raise PayloadTooLargeError(kind, length, self.max_payload)
        end = pos + HEADER_SIZE + length
        if end > len(buf):
            if self._eof:
                raise TruncatedFrameError(available, HEADER_SIZE + length)
            return None
        frame = _decode(kind, bytes(buf[pos + HEADER_SIZE : end]))
        if end == len(buf):
            buf.clear()
            self._pos = 0
        elif end > 65536:
            del buf[:end]
            self._pos = 0
        else:
            self._pos = end
        return frame


def parse_all(data: bytes, max_payload: int = 8192) -> list[Frame]:
    """Every frame in a complete byte string (raises on bad or truncated input)."""
    parser = Parser(max_payload)
    parser.feed(data)
    parser.feed_eof()
    frames: list[Frame] = []
    while (frame := parser.next_frame()) is not None:
        frames.append(frame)
    return frames


# --- serialising ----------------------------------------------------------------------------


def header(kind: int, length: int) -> bytes:
    """The 3-byte header of a message of ``kind`` carrying ``length`` payload bytes."""
    if not 0 <= length <= MAX_WIRE_PAYLOAD:
        raise ValueError(f"AudioSocket payload must be 0..{MAX_WIRE_PAYLOAD} bytes, got {length}")
    return _HEADER.pack(kind, length)


def audio_kind(sample_rate: int) -> int:
    """The audio kind for ``sample_rate`` (0x10 for 8000, 0x12 for 16000, ...)."""
    try:
        return RATE_KINDS[sample_rate]
    except KeyError:
        raise ValueError(f"AudioSocket has no audio kind for {sample_rate} Hz") from None


def serialize(frame: Frame) -> bytes:
    """The wire bytes of one frame."""
    if isinstance(frame, AudioFrame):
        kind = audio_kind(frame.sample_rate)
        if not frame.pcm:
            raise EmptyAudioError(kind)
        if len(frame.pcm) % 2:
            raise InvalidPayloadError(kind, f"odd audio length {len(frame.pcm)}")
        return header(kind, len(frame.pcm)) + frame.pcm
    if isinstance(frame, UuidFrame):
        return header(Kind.UUID, 16) + frame.uuid.bytes
    if isinstance(frame, DtmfFrame):
        digit = frame.digit.encode("ascii")
        if len(digit) != 1:
            raise InvalidPayloadError(Kind.DTMF, f"DTMF must be one character, got {frame.digit!r}")
        return header(Kind.DTMF, 1) + digit
    if isinstance(frame, HangupFrame):
        return HANGUP_BYTES
    return header(Kind.ERROR, len(frame.payload)) + frame.payload
