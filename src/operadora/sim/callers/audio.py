"""The caller's side of a channel's audio: what the persona says and what it hears.

:class:`CallerAudio` is both ends a line adapter needs: ``next_frame()`` is the audio source the
channel pulls one 20 ms frame from at a time, ``hear()`` is the sink that receives what the
channel hears (the agent). Personas queue speech with ``speak()`` and wait on the
:class:`AgentSpeechTracker` for the agent to stop talking, on the clock: frames may stop arriving
altogether while the far end is silent.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr

Clock = Callable[[], float]
MAX_HEARD_S = 120.0


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """slin16 LE mono from one rate to another (high-quality soxr)."""
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    out = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype="<i2").tobytes()


def rms_dbfs(pcm: bytes | memoryview) -> float:
    if len(pcm) < 2:
        return -math.inf
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2).astype(np.float64)
    power = float(np.mean(samples * samples))
    if power <= 0.0:
        return -math.inf
    return 10.0 * math.log10(power / (32768.0 * 32768.0))


def frame_bytes(sample_rate: int, frame_ms: int = 20) -> int:
    return sample_rate * frame_ms // 1000 * 2


class CallerAudio:
    """Queued caller speech out, agent audio in, at the line's sample rate."""

    def __init__(
        self,
        sample_rate: int = 8000,
        *,
        frame_ms: int = 20,
        send_silence: bool = True,
        clock: Clock = time.monotonic,
        threshold_dbfs: float = -45.0,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.send_silence = send_silence
        self._frame = frame_bytes(sample_rate, frame_ms)
        self._silence = bytes(self._frame)
        self._out = bytearray()
        self._clock = clock
        self._drained = asyncio.Event()
        self._drained.set()
        self.speech_ended_at: float | None = None
        self.tracker = AgentSpeechTracker(sample_rate, clock=clock, threshold_dbfs=threshold_dbfs)

    # --- the persona's side ---
    def speak(self, pcm: bytes) -> None:
        """Queue speech (slin16 LE at ``sample_rate``) to go out frame by frame."""
        if not pcm:
            return
        self._out += pcm
        self._drained.clear()

    def clear(self) -> int:
        dropped = len(self._out)
        self._out.clear()
        self._drained.set()
        return dropped

    @property
    def queued_ms(self) -> float:
        return len(self._out) / 2 / self.sample_rate * 1000.0

    @property
    def speaking(self) -> bool:
        return bool(self._out)

    async def wait_spoken(self) -> None:
        await self._drained.wait()

    # --- the channel's side ---
    def next_frame(self) -> bytes | None:
        """The next 20 ms the caller sends: speech, else silence (or nothing, if suppressed)."""
        if not self._out:
            return self._silence if self.send_silence else None
        frame = bytes(self._out[: self._frame])
        del self._out[: self._frame]
        if len(frame) < self._frame:
            frame += self._silence[len(frame) :]
        if not self._out:
            self.speech_ended_at = self._clock()
            self._drained.set()
        return frame

    def hear(self, pcm: bytes) -> None:
        """Audio the caller hears (the agent, through the bridge)."""
        self.tracker.feed(pcm)


@dataclass(slots=True)
class AgentUtterance:
    started_at: float
    ended_at: float
    pcm: bytes
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


class AgentSpeechTracker:
    """Finds where the agent starts and stops talking in what the caller hears.

    A frame is voiced when its level is above ``threshold_dbfs``. A turn ends when no voiced frame
    has been heard for ``silence_s``, measured on the clock, so it also ends when frames stop.
    """

    def __init__(
        self, sample_rate: int, *, clock: Clock = time.monotonic, threshold_dbfs: float = -45.0
    ) -> None:
        self.sample_rate = sample_rate
        self.threshold_dbfs = threshold_dbfs
        self._clock = clock
        self._buf = bytearray()
        self._first_voiced: float | None = None
        self._last_voiced: float | None = None
        self._voiced_end = 0  # byte offset in _buf just after the last voiced frame
        self._changed = asyncio.Event()
        self._max_bytes = int(MAX_HEARD_S * sample_rate) * 2
        self.frames_heard = 0

    @property
    def heard_speech(self) -> bool:
        return self._first_voiced is not None

    @property
    def first_voiced_at(self) -> float | None:
        return self._first_voiced

    def agent_speaking(self, silence_s: float) -> bool:
        last = self._last_voiced
        return last is not None and self._clock() - last < silence_s

    def feed(self, pcm: bytes) -> None:
        self.frames_heard += 1
        voiced = rms_dbfs(pcm) > self.threshold_dbfs
        if self._first_voiced is None and not voiced:
            return  # nothing said since the last turn: keep no leading silence
        if len(self._buf) + len(pcm) <= self._max_bytes:
            self._buf += pcm
        if voiced:
            now = self._clock()
            if self._first_voiced is None:
                self._first_voiced = now
            self._last_voiced = now
            self._voiced_end = len(self._buf)
            self._changed.set()

    def take(self) -> AgentUtterance | None:
        """Everything the agent said since the last ``take()``, trailing silence trimmed."""
        if self._first_voiced is None or self._last_voiced is None:
            return None
        utterance = AgentUtterance(
            started_at=self._first_voiced,
            ended_at=self._last_voiced,
            pcm=bytes(self._buf[: self._voiced_end]),
            sample_rate=self.sample_rate,
        )
        self._buf.clear()
        self._first_voiced = self._last_voiced = None
        self._voiced_end = 0
        return utterance

    async def wait_silence(self, silence_s: float, timeout_s: float) -> None:
        """Return once the agent has been quiet for ``silence_s`` (or after ``timeout_s``)."""
        deadline = self._clock() + timeout_s
        for _ in range(1_000_000):
            now = self._clock()
            last = self._last_voiced
            if last is None or now - last >= silence_s or now >= deadline:
                return
            await asyncio.sleep(min(silence_s - (now - last), deadline - now))

    async def wait_turn_end(self, silence_s: float, timeout_s: float) -> AgentUtterance | None:
        """Wait for the agent to speak and then be silent for ``silence_s``; None on timeout."""
        deadline = self._clock() + timeout_s
        while True:
            now = self._clock()
            last = self._last_voiced
            if last is not None and now - last >= silence_s:
                return self.take()
            remaining = deadline - now
            if remaining <= 0:
                return None
            wait = remaining if last is None else min(remaining, silence_s - (now - last))
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=max(wait, 0.001))
            except TimeoutError:
                pass
