"""The agent's voice on the line: feeds one reply's audio to the media session a little ahead of
the wire, pauses the moment the caller may be speaking, and knows what the caller has heard."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from operadora.media import MediaSession
from operadora.voice.pcm import resample_pcm

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Clause:
    start: int  # byte offsets in the reply's audio at the media rate
    end: int
    text: str


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(np.square(samples)))) / 32768 if samples.size else 0.0


class Speaker:
    """Plays one reply at a time; the media session paces it onto the wire."""

    def __init__(
        self,
        media: MediaSession,
        lookahead_ms: float = 60.0,
        on_first_audio: Callable[[], None] | None = None,
        tick_ms: float = 20.0,
    ) -> None:
        self._media = media
        self._on_first_audio = on_first_audio
        self._rate = media.sample_rate  # fixed per reply; the media resamples if its rate changes
        self._lookahead_ms = lookahead_ms
        self._tick_s = tick_ms / 1000
        self._audio = bytearray()
        self._clauses: list[_Clause] = []
        self._sent = 0  # bytes handed to the media session
        self._base_played_ms: float | None = None
        self._paused = False
        self._finished = False  # no more audio will come for this reply
        self._active = False
        self._feeder: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self.first_audio_at: float | None = None
        self.paused_at: float | None = None
        self._levels: deque[float] = deque(maxlen=10)

    @property
    def active(self) -> bool:
        """A reply is being played (or paused mid-way)."""
        return self._active

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def rate(self) -> int:
        """The rate the current reply is played at (the media's, when it started)."""
        return self._rate

    def start(self) -> None:
        self.stop()
        self._rate = self._media.sample_rate
        self._audio.clear()
        self._clauses.clear()
        self._levels.clear()
        self._sent = 0
        self._base_played_ms = None
        self._paused = self._finished = False
        self._active = True
        self.first_audio_at = self.paused_at = None
        self._drained.clear()
        self._feeder = asyncio.get_running_loop().create_task(self._feed_loop())

    def add(self, pcm: bytes, sample_rate: int, text: str) -> None:
        """Append audio for ``text`` (one clause, possibly in several chunks)."""
        if not self._active:
            return
        if sample_rate != self._rate:
            pcm = resample_pcm(pcm, sample_rate, self._rate)
        start = len(self._audio)
        self._audio += pcm
        if self._clauses and self._clauses[-1].text is text:
            self._clauses[-1].end = len(self._audio)
        else:
            self._clauses.append(_Clause(start, len(self._audio), text))
        self._feed()

    def finish(self) -> None:
        """No more audio for this reply; :meth:`wait` returns once it has been played."""
        self._finished = True
        self._feed()

    async def wait(self) -> None:
        await self._drained.wait()

    def pause(self) -> None:
        """Stop the audio on the wire now, keeping the rest to resume from what was heard."""
        if not self._active or self._paused:
            return
        self._paused = True
        self.paused_at = asyncio.get_running_loop().time()
        self._media.clear()
        self._sent = self.heard_bytes()

    def resume(self) -> None:
        if self._active and self._paused:
            self._paused = False
            self._feed()

    def stop(self) -> None:
        """End the reply: what is queued is dropped."""
        if self._feeder is not None:
            self._feeder.cancel()
            self._feeder = None
        if self._active:
            self._media.clear()
            self._active = False
        self._drained.set()

    def heard_bytes(self) -> int:
        if self._base_played_ms is None:
            return 0
        played_ms = max(0.0, self._media.played_ms - self._base_played_ms)
        heard = int(played_ms * self._rate / 1000) * 2
        return min(heard, self._sent)

    def heard_text(self) -> str:
        """The words the caller heard: whole clauses, then the share of the clause cut off."""
        heard = self.heard_bytes()
        words: list[str] = []
        for clause in self._clauses:
            if clause.end <= heard:
                words.append(clause.text)
                continue
            if clause.start < heard:
                parts = clause.text.split()
                share = (heard - clause.start) / max(1, clause.end - clause.start)
                cut = int(len(parts) * share)
                if cut:
                    words.append(" ".join(parts[:cut]))
            break
        return " ".join(words)

    def _feed(self) -> None:
        if not self._active or self._paused or self._media.closed:
            return
        frame = int(self._rate * self._tick_s) * 2
        while self._sent < len(self._audio) and self._media.queued_ms < self._lookahead_ms:
            chunk = bytes(self._audio[self._sent : self._sent + frame])
            first = self._base_played_ms is None
            if first:
                self._base_played_ms = self._media.played_ms
                self.first_audio_at = asyncio.get_running_loop().time()
            self._media.play(chunk, self._rate)
            self._sent += len(chunk)
            self._levels.append(_rms(chunk))
            if first and self._on_first_audio is not None:
                self._on_first_audio()

    @property
    def recent_level(self) -> float:
        """The loudest RMS (0..1) of the agent audio sent in the last ~200 ms: what an echo of it
        on the caller's side could at most be."""
        return max(self._levels, default=0.0) if self._active else 0.0

    def _done(self) -> bool:
        return (
            self._finished
            and not self._paused
            and self._sent >= len(self._audio)
            and self._media.queued_ms <= 0
        )

    async def _feed_loop(self) -> None:
        while True:
            self._feed()
            if self._done() or self._media.closed:
                self._active = False
                self._drained.set()
                return
            await asyncio.sleep(self._tick_s)
