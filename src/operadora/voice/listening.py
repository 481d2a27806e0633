"""The caller's side of the pipeline, without I/O: audio cut into timestamped VAD windows, and
the utterance buffer that keeps a little audio from before speech was detected."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from operadora.audio.pcm import SAMPLE_BYTES
from operadora.audio.vad_pcm import PcmVadRunner
from operadora.voice.engines import Float32Audio
from operadora.voice.pcm import resample


class VoiceActivity(Protocol):
    """What the pipeline needs of a VAD (``operadora.audio.vad.VoiceActivityDetector``)."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def window_samples(self) -> int: ...

    def speech_probability(self, window: Float32Audio) -> float: ...


class VadWindows:
    """Feeds audio of any chunk size to the VAD one window at a time.

    Each window is stamped with the time its last sample arrived (the arrival time of the chunk
    that completed it, less the samples of that chunk that came after it).
    """

    def __init__(self, vad: VoiceActivity) -> None:
        self._vad = vad
        self.rate = vad.sample_rate
        self._window = np.zeros(vad.window_samples, dtype=np.float32)
        self._fill = 0

    def feed(self, audio: Float32Audio, received_at: float) -> Iterator[tuple[float, float, float]]:
        """Yields (speech probability, window start, window end) for every window completed."""
        window = self._window
        size = window.size
        span = size / self.rate
        pos, n = 0, audio.size
        while pos < n:
            take = min(size - self._fill, n - pos)
            window[self._fill : self._fill + take] = audio[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == size:
                self._fill = 0
                end = received_at - (n - pos) / self.rate
                yield self._vad.speech_probability(window), end - span, end


class BatchedVad:
    """A call's Silero VAD through the process's shared :class:`PcmVadRunner`: slin in,
    ``on_window(start, end, probability)`` out, each window stamped as :class:`VadWindows`
    stamps it (the arrival time of the chunk that completed it, less the samples of that
    chunk that came after it), a few ms later, when its batch has run."""

    def __init__(self, runner: PcmVadRunner, on_window: Callable[[float, float, float], None]):
        self._runner = runner
        self._stream = runner.stream(self._on_result)
        self.rate = runner.sample_rate
        self._window = runner.window_samples
        self._span = self._window / self.rate
        self._fed = 0  # samples fed so far
        self._stamps: deque[tuple[int, float]] = deque()  # (samples fed after a chunk, its time)
        self._on_window = on_window

    def feed(self, pcm: bytes, received_at: float) -> None:
        if not pcm:
            return
        self._fed += len(pcm) // SAMPLE_BYTES
        self._stamps.append((self._fed, received_at))
        self._runner.feed(self._stream, pcm)

    def _on_result(self, index: int, probability: float) -> None:
        last = (index + 1) * self._window  # the window's end, in samples fed
        stamps = self._stamps
        while stamps[0][0] < last:  # the chunk that completed it is still here
            stamps.popleft()
        fed, at = stamps[0]
        end = at - (fed - last) / self.rate
        self._on_window(end - self._span, end, probability)

    def close(self) -> None:
        """The call ended: its pending audio is dropped and no more windows come back."""
        self._runner.close_stream(self._stream)


class UtteranceBuffer:
    """Keeps the last ``preroll_s`` of audio while the caller is quiet; from a speech onset on,
    keeps everything until the turn is taken."""

    def __init__(self, rate: int, preroll_s: float = 0.3) -> None:
        self.rate = rate
        self._preroll: deque[Float32Audio] = deque()
        self._preroll_len = 0
        self._max_preroll = int(preroll_s * rate)
        self._utterance: list[Float32Audio] = []
        self.recording = False

    def add(self, audio: Float32Audio) -> None:
        if self.recording:
            self._utterance.append(audio)
            return
        self._preroll.append(audio)
        self._preroll_len += audio.size
        while self._preroll and self._preroll_len - self._preroll[0].size >= self._max_preroll:
            self._preroll_len -= self._preroll.popleft().size

    def start(self) -> None:
        """Speech may have begun: the utterance starts with the pre-roll."""
        self._utterance = list(self._preroll)
        self._preroll.clear()
        self._preroll_len = 0
        self.recording = True

    def drop(self) -> None:
        """It was not speech."""
        self._utterance = []
        self.recording = False

    def audio(self, out_rate: int) -> Float32Audio:
        """The utterance so far, at ``out_rate``."""
        if not self._utterance:
            return np.zeros(0, np.float32)
        return resample(np.concatenate(self._utterance), self.rate, out_rate)

    def take(self, out_rate: int) -> Float32Audio:
        """The whole utterance; the buffer goes back to keeping a pre-roll."""
        audio = self.audio(out_rate)
        self.drop()
        return audio
