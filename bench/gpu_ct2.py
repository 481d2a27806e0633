"""CTranslate2 Whisper ``model.bin`` → Hugging Face transformers weight names, with numpy only.

faster-whisper keeps Whisper as a CTranslate2 model (``model.bin``, binary version 6): a
header, then each variable as name, shape, dtype id and raw bytes, then aliases. CTranslate2
fuses the attention projections (self-attention q|k|v in one ``linear_0``, cross-attention
k|v in ``linear_1``) and gives the key projection a zero bias that Hugging Face's Whisper does
not have; ``to_hf_state_dict`` splits them back into transformers'
``WhisperForConditionalGeneration`` names. ``pack_int8``/``unpack_int8`` store the matrices
per-row int8 so a converted model travels small (tiny.en: 75 MB fp16 → 39 MB).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

BINARY_VERSION = 6
# CTranslate2's DataType enum order (include/ctranslate2/types.h)
DTYPES: tuple[Any, ...] = (np.float32, np.int8, np.int16, np.int32, np.float16, None)
DTYPE_NAMES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


class Ct2FormatError(ValueError):
    """The file is not a CTranslate2 model this parser understands."""


@dataclass(frozen=True, slots=True)
class Ct2Model:
    spec: str
    revision: int
    variables: dict[str, npt.NDArray[Any]]
    aliases: dict[str, str]


class _Reader:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise Ct2FormatError(f"truncated at byte {self.pos} (wanted {n} more)")
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> int:
        value: int = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]
        return value

    def string(self) -> str:
        n = self.unpack("H")
        raw = bytes(self.take(n))
        if n == 0 or raw[-1] != 0:
            raise Ct2FormatError(f"string at byte {self.pos - n} is not NUL-terminated")
        return raw[:-1].decode("utf-8")


def parse_ct2(data: bytes | memoryview) -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` (binary version 6) held in memory."""
    r = _Reader(data)
    version = r.unpack("I")
    if version != BINARY_VERSION:
        raise Ct2FormatError(f"binary version {version}, only {BINARY_VERSION} is supported")
    spec = r.string()
    revision = r.unpack("I")
    variables: dict[str, npt.NDArray[Any]] = {}
    for _ in range(r.unpack("I")):
        name = r.string()
        shape = tuple(r.unpack("I") for _ in range(r.unpack("B")))
        type_id = r.unpack("B")
        if type_id >= len(DTYPES) or DTYPES[type_id] is None:
            label = DTYPE_NAMES[type_id] if type_id < len(DTYPE_NAMES) else str(type_id)
            raise Ct2FormatError(f"{name}: dtype {label} is not supported")
        dtype = np.dtype(DTYPES[type_id])
        nbytes = r.unpack("I")
        count = int(np.prod(shape, dtype=np.int64))
        if nbytes != count * dtype.itemsize:
            raise Ct2FormatError(f"{name}: {nbytes} bytes for shape {shape} of {dtype}")
        variables[name] = np.frombuffer(r.take(nbytes), dtype=dtype).reshape(shape)
    aliases = {}
    for _ in range(r.unpack("I")):
        alias = r.string()
        aliases[alias] = r.string()
    if r.pos != len(r.data):
        raise Ct2FormatError(f"{len(r.data) - r.pos} bytes left after the aliases")
    return Ct2Model(spec, revision, variables, aliases)


def load_ct2(path: Path) -> Ct2Model:
    if not path.is_file():
        raise FileNotFoundError(f"no CTranslate2 model at {path}")
    return parse_ct2(path.read_bytes())


def whisper_shape(model: Ct2Model) -> dict[str, int]:
    """The transformers ``WhisperConfig`` shape arguments this model needs."""
    if model.spec != "WhisperSpec":
        raise Ct2FormatError(f"spec {model.spec!r} is not a Whisper model")
    v = model.variables
    layers = {
        side: 1 + max(int(m.group(1)) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k)))
        for side in ("encoder", "decoder")
    }
    vocab, d_model = v["decoder/embeddings/weight"].shape
    return {
        "vocab_size": int(vocab),
        "d_model": int(d_model),
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "encoder_layers": layers["encoder"],
        "decoder_layers": layers["decoder"],
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
    }


def _linear(out: dict[str, npt.NDArray[Any]], hf: str, v: dict[str, Any], ct2: str) -> None:
    out[f"{hf}.weight"] = v[f"{ct2}/weight"]
    out[f"{hf}.bias"] = v[f"{ct2}/bias"]


def _split(
    out: dict[str, npt.NDArray[Any]], hf: str, names: tuple[str, ...], v: dict[str, Any], ct2: str
) -> None:
    weight, bias = v[f"{ct2}/weight"], v[f"{ct2}/bias"]
    if weight.shape[0] % len(names):
        raise Ct2FormatError(f"{ct2}: {weight.shape[0]} rows do not split into {names}")
    for name, w, b in zip(
        names, np.split(weight, len(names)), np.split(bias, len(names)), strict=True
    ):
        out[f"{hf}.{name}.weight"] = w
        if name == "k_proj":
            if np.any(b):
                raise Ct2FormatError(f"{ct2}: the key bias is not zero")
        else:
            out[f"{hf}.{name}.bias"] = b


def _norm(out: dict[str, npt.NDArray[Any]], hf: str, v: dict[str, Any], ct2: str) -> None:
    out[f"{hf}.weight"] = v[f"{ct2}/gamma"]
    out[f"{hf}.bias"] = v[f"{ct2}/beta"]


def to_hf_state_dict(model: Ct2Model) -> dict[str, npt.NDArray[Any]]:
    """transformers ``WhisperForConditionalGeneration`` state dict (``proj_out`` stays tied to
    the token embeddings, as in Whisper)."""
    shape = whisper_shape(model)
    v = model.variables
    out: dict[str, npt.NDArray[Any]] = {}
    qkv, kv = ("q_proj", "k_proj", "v_proj"), ("k_proj", "v_proj")
    enc, dec = "model.encoder", "model.decoder"
    for conv in ("conv1", "conv2"):
        out[f"{enc}.{conv}.weight"] = v[f"encoder/{conv}/weight"]
        out[f"{enc}.{conv}.bias"] = v[f"encoder/{conv}/bias"]
    out[f"{enc}.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    for i in range(shape["encoder_layers"]):
        hf, ct = f"{enc}.layers.{i}", f"encoder/layer_{i}"
        _split(out, f"{hf}.self_attn", qkv, v, f"{ct}/self_attention/linear_0")
        _linear(out, f"{hf}.self_attn.out_proj", v, f"{ct}/self_attention/linear_1")
        _norm(out, f"{hf}.self_attn_layer_norm", v, f"{ct}/self_attention/layer_norm")
        _linear(out, f"{hf}.fc1", v, f"{ct}/ffn/linear_0")
        _linear(out, f"{hf}.fc2", v, f"{ct}/ffn/linear_1")
        _norm(out, f"{hf}.final_layer_norm", v, f"{ct}/ffn/layer_norm")
    _norm(out, f"{enc}.layer_norm", v, "encoder/layer_norm")
    out[f"{dec}.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    out[f"{dec}.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    for i in range(shape["decoder_layers"]):
        hf, ct = f"{dec}.layers.{i}", f"decoder/layer_{i}"
        _split(out, f"{hf}.self_attn", qkv, v, f"{ct}/self_attention/linear_0")
        _linear(out, f"{hf}.self_attn.out_proj", v, f"{ct}/self_attention/linear_1")
        _norm(out, f"{hf}.self_attn_layer_norm", v, f"{ct}/self_attention/layer_norm")
        _linear(out, f"{hf}.encoder_attn.q_proj", v, f"{ct}/attention/linear_0")
        _split(out, f"{hf}.encoder_attn", kv, v, f"{ct}/attention/linear_1")
        _linear(out, f"{hf}.encoder_attn.out_proj", v, f"{ct}/attention/linear_2")
        _norm(out, f"{hf}.encoder_attn_layer_norm", v, f"{ct}/attention/layer_norm")
        _linear(out, f"{hf}.fc1", v, f"{ct}/ffn/linear_0")
        _linear(out, f"{hf}.fc2", v, f"{ct}/ffn/linear_1")
        _norm(out, f"{hf}.final_layer_norm", v, f"{ct}/ffn/layer_norm")
    _norm(out, f"{dec}.layer_norm", v, "decoder/layer_norm")
    projection = model.aliases.get("decoder/projection/weight")
    if projection != "decoder/embeddings/weight":
        raise Ct2FormatError("the output projection is not tied to the token embeddings")
    return out


def pack_int8(state: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """Matrices (2-D and more) as per-row symmetric int8 plus a float32 scale per row; the rest
    (biases, norms, position tables) as float16. Keys get a ``:q``/``:s``/``:h`` suffix."""
    packed: dict[str, npt.NDArray[Any]] = {}
    for name, value in state.items():
        x = np.asarray(value, dtype=np.float32)
        if x.ndim >= 2 and "embed_positions" not in name:
            rows = x.reshape(x.shape[0], -1)
            scale = np.abs(rows).max(axis=1) / 127.0
            scale[scale == 0] = 1.0
            packed[f"{name}:q"] = np.round(rows / scale[:, None]).astype(np.int8).reshape(x.shape)
            packed[f"{name}:s"] = scale.astype(np.float32)
        else:
            packed[f"{name}:h"] = x.astype(np.float16)
    return packed


def unpack_int8(packed: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[np.float32]]:
    state: dict[str, npt.NDArray[np.float32]] = {}
    for key, value in packed.items():
        name, _, kind = key.rpartition(":")
        if kind == "q":
            scale = packed[f"{name}:s"].astype(np.float32)
            rows = value.reshape(value.shape[0], -1).astype(np.float32) * scale[:, None]
            state[name] = rows.reshape(value.shape)
        elif kind == "h":
            state[name] = value.astype(np.float32)
        elif kind != "s":
            raise Ct2FormatError(f"{key}: unknown packed entry")
    return state
