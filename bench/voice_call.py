"""A fake Asterisk caller for the voice benchmark: talks to the agent over a real AudioSocket
connection in real time, barges in while it answers, and timestamps everything on the wire."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from operadora.audiosocket.peer import AsteriskPeer, Received
from operadora.audiosocket.protocol import AudioFrame
from operadora.voice.pcm import to_pcm16
from voice_corpus import Prompt, voiced_span

FRAME_MS = 20
AUDIBLE = 200  # |sample| above this (about -44 dBFS) is agent audio, not silence


@dataclass(slots=True)
class WireTurn:
    prompt: str
    last_voice_sent: float
    first_agent_audio: float | None = None
    barge_onset_sent: float | None = None
    agent_stopped: float | None = None


@dataclass(slots=True)
class CallerLog:
    turns: list[WireTurn] = field(default_factory=list)


def _audible(frame: AudioFrame) -> bool:
    samples = np.frombuffer(frame.pcm, dtype="<i2")
    return bool(samples.size) and int(np.abs(samples).max()) > AUDIBLE


def stopped_after(received: list[Received], since: float, quiet_frames: int = 10) -> float | None:
    """When agent audio stopped for good after ``since``: the first of ``quiet_frames`` frames in
    a row without agent audio."""
    run_start: float | None = None
    run = 0
    for item in received:
        frame = item.frame
        if item.at <= since or not isinstance(frame, AudioFrame):
            continue
        if _audible(frame):
            run, run_start = 0, None
        else:
            if run == 0:
                run_start = item.at
            run += 1
            if run >= quiet_frames:
                return run_start
    return None


class BenchCaller:
    """Streams prompts like a SIP phone (a frame every 20 ms, silence between utterances)."""

    def __init__(self, peer: AsteriskPeer, rate: int) -> None:
        self.peer = peer
        self.rate = rate
        self.frame_bytes = rate * FRAME_MS // 1000 * 2
        self._next = time.monotonic()
        self._silence = bytes(self.frame_bytes)

    async def _send(self, frame: bytes) -> float:
        self._next += FRAME_MS / 1000
        delay = self._next - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.peer.send_audio(frame, self.rate)
        return time.monotonic()

    async def silence_until(self, done: float) -> None:
        while time.monotonic() < done:
            await self._send(self._silence)

    async def speak(self, prompt: Prompt) -> tuple[float, float]:
        """Send one utterance; returns when its first and last voiced samples went out."""
        first, last = voiced_span(prompt.audio, prompt.rate)
        pcm = to_pcm16(prompt.audio)
        first_at = last_at = time.monotonic()
        for index, pos in enumerate(range(0, len(pcm), self.frame_bytes)):
            chunk = pcm[pos : pos + self.frame_bytes]
            chunk += bytes(self.frame_bytes - len(chunk))
            sent = await self._send(chunk)
            start_sample, end_sample = (
                index * self.frame_bytes // 2,
                (index + 1) * self.frame_bytes // 2,
            )
            if start_sample <= first < end_sample:
                first_at = sent
            if start_sample < last <= end_sample:
                last_at = sent
        return first_at, last_at

    def first_audible_after(self, since: float) -> float | None:
        for received in self.peer.received:
            frame = received.frame
            if received.at > since and isinstance(frame, AudioFrame) and _audible(frame):
                return received.at
        return None

    def audible_between(self, start: float, end: float) -> bool:
        return any(
            start < r.at <= end and isinstance(r.frame, AudioFrame) and _audible(r.frame)
            for r in self.peer.received
        )

    def stopped_after(self, since: float, quiet_frames: int = 10) -> float | None:
        return stopped_after(self.peer.received, since, quiet_frames)

    async def wait_for_agent(self, since: float, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            heard = self.first_audible_after(since)
            if heard is not None:
                return heard
            await self._send(self._silence)
        return None


async def converse(
    peer: AsteriskPeer, prompts: list[Prompt], rate: int, barge_after_s: float
) -> CallerLog:
    """Each prompt is a turn; every turn after the first barges in on the agent's reply."""
    caller = BenchCaller(peer, rate)
    log = CallerLog()
    await caller.silence_until(time.monotonic() + 0.5)
    previous: WireTurn | None = None
    for prompt in prompts:
        onset, last = await caller.speak(prompt)
        if previous is not None and previous.first_agent_audio is not None:
            previous.barge_onset_sent = onset
        turn = WireTurn(prompt.name, last)
        log.turns.append(turn)
        turn.first_agent_audio = await caller.wait_for_agent(last, timeout_s=10)
        if turn.first_agent_audio is None:
            continue
        await caller.silence_until(turn.first_agent_audio + barge_after_s)
        previous = turn
    await caller.silence_until(time.monotonic() + 1.0)
    for turn in log.turns:
        onset = turn.barge_onset_sent
        if onset is not None and not caller.audible_between(onset - 0.06, onset):
            turn.barge_onset_sent = None  # the agent had already finished: no barge-in
        elif onset is not None:
            turn.agent_stopped = caller.stopped_after(turn.barge_onset_sent - 0.001)
    return log
