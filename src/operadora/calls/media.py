"""The voice agent's view of a call's audio: the AudioSocket session plus DTMF seen by ARI.

Asterisk reports a caller's key presses as ``ChannelDtmfReceived`` and may also pass them to
the AudioSocket leg as DTMF frames; the agent gets each press once whichever way it came.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from operadora.media import DtmfIn, InboundItem, MediaSession

_END = object()


class CallMedia:
    """A :class:`~operadora.media.MediaSession` that also delivers ARI DTMF to the agent."""

    def __init__(self, session: MediaSession, dedupe_window_s: float = 0.5) -> None:
        self.session = session
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._window = dedupe_window_s
        self._recent: dict[str, float] = {}  # digit -> when it was last delivered
        self.first_audio_at: float | None = None

    @property
    def call_uuid(self) -> uuid.UUID:
        return self.session.call_uuid

    @property
    def sample_rate(self) -> int:
        return self.session.sample_rate

    @property
    def queued_ms(self) -> float:
        return self.session.queued_ms

    @property
    def played_ms(self) -> float:
        return self.session.played_ms

    @property
    def closed(self) -> bool:
        return self.session.closed

    def play(self, pcm: bytes, sample_rate: int | None = None) -> None:
        self.session.play(pcm, sample_rate)

    def clear(self) -> int:
        return self.session.clear()

    async def hangup(self) -> None:
        await self.session.hangup()
        self.stop()

    def inject_dtmf(self, digit: str) -> bool:
        """Deliver a digit ARI reported; False when the socket already delivered it."""
        if self._duplicate(digit):
            return False
        self._queue.put_nowait(DtmfIn(digit, time.monotonic()))
        return True

    def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self._queue.put_nowait(_END)

    def _duplicate(self, digit: str) -> bool:
        now = time.monotonic()
        last = self._recent.get(digit)
        self._recent[digit] = now
        return last is not None and now - last < self._window

    async def _run_pump(self) -> None:
        try:
            async for item in self.session.inbound():
                if isinstance(item, DtmfIn):
                    if self._duplicate(item.digit):
                        continue
                elif self.first_audio_at is None:
                    self.first_audio_at = time.monotonic()
                self._queue.put_nowait(item)
        finally:
            self._queue.put_nowait(_END)

    def start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run_pump())

    async def inbound(self) -> AsyncIterator[InboundItem]:
        self.start()
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            assert isinstance(item, InboundItem)
            yield item
