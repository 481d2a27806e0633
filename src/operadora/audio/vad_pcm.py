"""Silero VAD fed with the line's slin bytes: re-framing and scoring batched across calls.

:class:`~operadora.audio.vad_batch.SileroBatchRunner` takes ready-made float32 windows, so
every call pays per 20 ms frame for a re-framer (a window buffer, a float conversion, a
fresh array) and per window for a queued tuple, a context and a state to stack. Here a call
only appends its frame's bytes to its own buffer (:meth:`PcmVadRunner.feed`); when the batch
is due, the runner cuts the whole windows out of every call's buffer at once, converts them
to float32 in one operation, scores them in one model run, and keeps each buffer's last
samples as the next window's context. Same model, same arithmetic, same probabilities as a
:class:`~operadora.audio.vad_batch.SileroBatchStream` fed window by window.

Results come back on the event loop as ``on_result(index, probability)``, ``index``
counting the stream's windows from 0 (window ``i`` holds samples ``i * window_samples`` to
``(i + 1) * window_samples`` of what was fed), in order, at most ``wait_s`` after the window
was complete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from operadora.audio.pcm import SAMPLE_BYTES
from operadora.audio.vad_batch import NUMPY_CHUNK, SileroBatch
from operadora.runtime import has_urgent_work, run_urgent_work

log = logging.getLogger(__name__)

WindowResult = Callable[[int, float], None]
_SCALE = np.float32(1.0 / 32768.0)
# windows per model run: ~1 ms of the loop on a 2-core VM (13-27 us a window in a batch);
# a flush of more runs in chunks with the paced writes served between them
CHUNK_WINDOWS = 64
# with no urgent work on the loop (the native media engine paces from its own thread) the
# runs are as long as the model's own pieces: fewer runs, bigger matrix products
FREE_CHUNK_WINDOWS = NUMPY_CHUNK


class PcmVadStream:
    """One call's VAD: its pending slin, its recurrent state and where its results go."""

    __slots__ = ("_pcm", "closed", "on_result", "state", "windows")

    def __init__(self, context_bytes: int, on_result: WindowResult) -> None:
        self._pcm = bytearray(context_bytes)  # the context (silence at first), then new audio
        self.state = np.zeros((2, 128), dtype=np.float32)
        self.on_result = on_result
        self.windows = 0  # windows scored so far
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes held: the next window's context, then the audio not yet scored."""
        return len(self._pcm)


class PcmVadRunner:
    """Scores the windows of many calls' slin streams in batches, on the event loop.

    Create one per model and loop; :meth:`stream` makes a call's stream, :meth:`feed` takes
    its audio in chunks of any (whole-sample) size. A batch runs when ``wait_s`` has passed
    since the first window became ready, or at once when ``max_batch`` streams have one.
    A stream with several windows ready is scored in rounds, one window per stream per model
    run (its state carries from one window to the next), and a round of more than ``chunk``
    streams in several runs, with the loop's urgent work (the paced writes) between them.
    :meth:`close_stream` stops results for a call that has ended; a callback that raises is
    logged and the others still run.
    """

    def __init__(
        self,
        batch: SileroBatch,
        wait_s: float = 0.010,
        max_batch: int = 256,
        chunk: int = CHUNK_WINDOWS,
    ) -> None:
        if wait_s < 0:
            raise ValueError(f"wait_s must not be negative, got {wait_s}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        self.batch = batch
        self.wait_s = wait_s
        self.max_batch = max_batch
        self.chunk = chunk
        self.sample_rate = batch.sample_rate
        self.window_samples = batch.window_samples
        self._window_bytes = batch.window_samples * SAMPLE_BYTES
        self._context_bytes = batch.context_samples * SAMPLE_BYTES
        self._input_bytes = self._window_bytes + self._context_bytes
        self._loop = asyncio.get_running_loop()
        self._ready: dict[PcmVadStream, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    def stream(self, on_result: WindowResult) -> PcmVadStream:
        """A new call's stream (state zeroed, silence as its first context)."""
        return PcmVadStream(self._context_bytes, on_result)

    def feed(self, stream: PcmVadStream, pcm: bytes | bytearray | memoryview) -> None:
        """Append slin (int16 LE) to ``stream``; its whole windows are scored in the next batch."""
        if len(pcm) % SAMPLE_BYTES:
            raise ValueError(f"slin audio must be whole 16-bit samples, got {len(pcm)} bytes")
        if stream.closed:
            return
        buffer = stream._pcm
        buffer += pcm
        if len(buffer) < self._input_bytes or stream in self._ready:
            return
        ready = self._ready
        ready[stream] = None
        if len(ready) >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(self.wait_s, self.flush)

    def close_stream(self, stream: PcmVadStream) -> None:
        """The call ended: drop its pending audio; no more results are delivered to it."""
        stream.closed = True
        stream._pcm.clear()
        self._ready.pop(stream, None)

    def flush(self) -> None:
        """Score every whole window pending now, at most ``chunk`` windows per model run
        (with no urgent work on the loop, runs of the model's own pieces of 128).

        Between runs the loop's urgent work goes first (:func:`run_urgent_work`: the media
        server's paced writes), so a big batch (many calls, or a backlog after a stall) holds
        the writes back by one run's time, not the whole batch's."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        streams = list(self._ready)
        self._ready.clear()
        need = self._input_bytes
        chunk = self.chunk
        if chunk < FREE_CHUNK_WINDOWS and not has_urgent_work(self._loop):
            chunk = FREE_CHUNK_WINDOWS
        first = True
        while streams:
            for start in range(0, len(streams), chunk):
                if not first:
                    run_urgent_work()
                first = False
                self._score_part(streams[start : start + chunk])
            streams = [s for s in streams if len(s._pcm) >= need and not s.closed]

    def _score_part(self, streams: list[PcmVadStream]) -> None:
        """One window of each of ``streams``, scored and delivered."""
        try:
            probabilities = self._score(streams)
        except Exception:
            log.exception(
                "VAD batch of %d windows failed; those calls' whole windows are dropped",
                len(streams),
            )
            step = self._window_bytes
            for stream in streams:  # indices still count them: results keep their place
                dropped = (len(stream._pcm) - self._context_bytes) // step
                stream.windows += dropped
                del stream._pcm[: dropped * step]
            return
        for stream, probability in zip(streams, probabilities.tolist(), strict=True):
            index = stream.windows
            stream.windows = index + 1
            if stream.closed:
                continue
            try:
                stream.on_result(index, probability)
            except Exception:
                log.exception("VAD result callback failed")

    def _score(self, streams: list[PcmVadStream]) -> npt.NDArray[np.float32]:
        """One window of each stream (context + window from the front of its buffer)."""
        need = self._input_bytes
        step = self._window_bytes
        joined = b"".join([bytes(stream._pcm[:need]) for stream in streams])
        inputs = np.frombuffer(joined, dtype="<i2").reshape(len(streams), -1) * _SCALE
        state = np.stack([stream.state for stream in streams], axis=1)
        probabilities, new_state = self.batch._run(inputs, state)
        per_stream = new_state.transpose(1, 0, 2)
        for row, stream in enumerate(streams):
            stream.state = per_stream[row]
            del stream._pcm[:step]  # what is left starts with the next window's context
        self.batch.windows_scored += len(streams)
        self.batch.runs += 1
        return probabilities

    async def close(self) -> None:
        """Score what is pending (whole windows; a partial window's samples are dropped)."""
        self.flush()


_RUNNERS: dict[int, tuple[asyncio.AbstractEventLoop, PcmVadRunner]] = {}


def shared_pcm_runner(batch: SileroBatch, wait_s: float) -> PcmVadRunner:
    """The runner that scores every call of ``batch``'s model on the running loop (one per
    model, loop and wait, made on first use)."""
    loop = asyncio.get_running_loop()
    held = _RUNNERS.get(id(batch))
    if held is not None and held[0] is loop and held[1].wait_s == wait_s:
        return held[1]
    runner = PcmVadRunner(batch, wait_s)
    _RUNNERS[id(batch)] = (loop, runner)
    return runner
