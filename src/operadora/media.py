"""The contract between the AudioSocket media server and whatever runs a call on it.

The media server (``operadora.audiosocket``) accepts a connection, reads its UUID and hands a
:class:`MediaSession` to the :data:`SessionHandler` it was given. The voice pipeline
(``operadora.voice``) and call control (``operadora.calls``) only ever see this interface.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class AudioIn:
    """20 ms (usually) of caller audio, slin16 little-endian at ``sample_rate``.

    Not frozen, unlike the other items: one is made for every inbound frame of every call,
    and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) costs ~3x as
    much. Treat it as immutable all the same.
    """

    pcm: bytes
    sample_rate: int
    received_at: float  # time.monotonic() when the frame was read


@dataclass(frozen=True, slots=True)
class DtmfIn:
    digit: str
    received_at: float


InboundItem = AudioIn | DtmfIn


class MediaSession(Protocol):
    """One AudioSocket connection, i.e. the audio of one call."""

    @property
    def call_uuid(self) -> uuid.UUID: ...

    @property
    def sample_rate(self) -> int:
        """The rate of the audio Asterisk sends (8000 for kind 0x10, 16000 for 0x12, ...)."""
        ...

    def inbound(self) -> AsyncIterator[InboundItem]:
        """Caller audio and DTMF in arrival order; ends when the peer hangs up."""
        ...

    def play(self, pcm: bytes, sample_rate: int | None = None) -> None:
        """Queue agent audio (slin16 LE) for paced playback; resampled if the rate differs."""
        ...

    def clear(self) -> int:
        """Drop queued playback at once (barge-in); returns the bytes dropped."""
        ...

    @property
    def queued_ms(self) -> float:
        """Milliseconds of agent audio still queued for playback."""
        ...

    @property
    def played_ms(self) -> float:
        """Milliseconds of real (non-filler) agent audio written to the wire so far."""
        ...

    async def hangup(self) -> None:
        """Send ``00 00 00`` and close the connection."""
        ...

    @property
    def closed(self) -> bool: ...


SessionHandler = Callable[[MediaSession], Awaitable[None]]
