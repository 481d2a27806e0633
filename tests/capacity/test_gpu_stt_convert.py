"""The CTranslate2 → transformers Whisper converter used by ``bench/bench_gpu_stt.py``, on a
small model.bin written here in CTranslate2's binary layout (version 6), with numpy only."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.unit

BENCH = Path(__file__).resolve().parents[2] / "bench"
D, FFN, HEADS, VOCAB, MELS = 8, 16, 2, 11, 4


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_ct2", BENCH / "gpu_ct2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_ct2"] = module
    spec.loader.exec_module(module)
    return module


ct2 = _load()


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, value: np.ndarray[Any, Any], type_id: int) -> bytes:
    out = _string(name) + struct.pack("<B", value.ndim)
    out += b"".join(struct.pack("<I", d) for d in value.shape)
    data = value.tobytes()
    return out + struct.pack("<BI", type_id, len(data)) + data


def _whisper_variables(rng: np.random.Generator) -> dict[str, np.ndarray[Any, Any]]:
    def f16(*shape: int) -> np.ndarray[Any, Any]:
        return rng.standard_normal(shape).astype(np.float16)

    v: dict[str, np.ndarray[Any, Any]] = {
        "encoder/conv1/weight": f16(D, MELS, 3),
        "encoder/conv1/bias": f16(D),
        "encoder/conv2/weight": f16(D, D, 3),
        "encoder/conv2/bias": f16(D),
        "encoder/position_encodings/encodings": f16(6, D),
        "encoder/num_heads": np.array(HEADS, dtype=np.int16),
        "encoder/layer_norm/gamma": f16(D),
        "encoder/layer_norm/beta": f16(D),
        "decoder/embeddings/weight": f16(VOCAB, D),
        "decoder/position_encodings/encodings": f16(5, D),
        "decoder/num_heads": np.array(HEADS, dtype=np.int16),
        "decoder/layer_norm/gamma": f16(D),
        "decoder/layer_norm/beta": f16(D),
        "decoder/pre_norm": np.array(1, dtype=np.int8),
    }

    def attention(prefix: str, fused: int) -> None:
        bias = f16(fused * D)
        key = 1 if fused == 3 else 0  # CTranslate2 gives the key projection a zero bias
        bias[key * D : (key + 1) * D] = 0
        v[f"{prefix}/linear_0/weight"] = f16(fused * D, D)
        v[f"{prefix}/linear_0/bias"] = bias
        v[f"{prefix}/linear_1/weight"] = f16(D, D)
        v[f"{prefix}/linear_1/bias"] = f16(D)
        v[f"{prefix}/layer_norm/gamma"] = f16(D)
        v[f"{prefix}/layer_norm/beta"] = f16(D)

    def ffn(prefix: str) -> None:
        v[f"{prefix}/linear_0/weight"] = f16(FFN, D)
        v[f"{prefix}/linear_0/bias"] = f16(FFN)
        v[f"{prefix}/linear_1/weight"] = f16(D, FFN)
        v[f"{prefix}/linear_1/bias"] = f16(D)
        v[f"{prefix}/layer_norm/gamma"] = f16(D)
        v[f"{prefix}/layer_norm/beta"] = f16(D)

    for i in range(2):
        attention(f"encoder/layer_{i}/self_attention", 3)
        ffn(f"encoder/layer_{i}/ffn")
    attention("decoder/layer_0/self_attention", 3)
    ffn("decoder/layer_0/ffn")
    cross = "decoder/layer_0/attention"
    v[f"{cross}/linear_0/weight"], v[f"{cross}/linear_0/bias"] = f16(D, D), f16(D)
    kv_bias = f16(2 * D)
    kv_bias[:D] = 0
    v[f"{cross}/linear_1/weight"], v[f"{cross}/linear_1/bias"] = f16(2 * D, D), kv_bias
    v[f"{cross}/linear_2/weight"], v[f"{cross}/linear_2/bias"] = f16(D, D), f16(D)
    v[f"{cross}/layer_norm/gamma"], v[f"{cross}/layer_norm/beta"] = f16(D), f16(D)
    return v


def _model_bin(variables: dict[str, np.ndarray[Any, Any]], spec: str = "WhisperSpec") -> bytes:
    type_ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2}
    type_ids[np.dtype(np.float16)] = 4
    out = struct.pack("<I", 6) + _string(spec) + struct.pack("<II", 3, len(variables))
    for name, value in sorted(variables.items()):
        out += _variable(name, value, type_ids[value.dtype])
    alias = _string("decoder/projection/weight") + _string("decoder/embeddings/weight")
    return out + struct.pack("<I", 1) + alias


@pytest.fixture
def variables() -> dict[str, np.ndarray[Any, Any]]:
    return _whisper_variables(np.random.default_rng(7))


def test_parse_reads_every_variable_and_alias(
    variables: dict[str, np.ndarray[Any, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bin(variables))
    model = ct2.load_ct2(path)
    assert (model.spec, model.revision) == ("WhisperSpec", 3)
    assert set(model.variables) == set(variables)
    for name, value in variables.items():
        assert model.variables[name].dtype == value.dtype
        np.testing.assert_array_equal(model.variables[name], value)
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}


def test_shape_and_hf_names(variables: dict[str, np.ndarray[Any, Any]]) -> None:
    model = ct2.parse_ct2(_model_bin(variables))
    assert ct2.whisper_shape(model) == {
        "vocab_size": VOCAB,
        "d_model": D,
        "num_mel_bins": MELS,
        "encoder_layers": 2,
        "decoder_layers": 1,
        "encoder_attention_heads": HEADS,
        "decoder_attention_heads": HEADS,
        "encoder_ffn_dim": FFN,
        "decoder_ffn_dim": FFN,
        "max_source_positions": 6,
        "max_target_positions": 5,
    }
    state = ct2.to_hf_state_dict(model)
    qkv = variables["encoder/layer_1/self_attention/linear_0/weight"]
    enc = "model.encoder.layers.1.self_attn"
    np.testing.assert_array_equal(state[f"{enc}.q_proj.weight"], qkv[:D])
    np.testing.assert_array_equal(state[f"{enc}.k_proj.weight"], qkv[D : 2 * D])
    np.testing.assert_array_equal(state[f"{enc}.v_proj.weight"], qkv[2 * D :])
    assert f"{enc}.k_proj.bias" not in state  # transformers' Whisper has no key bias
    bias = variables["encoder/layer_1/self_attention/linear_0/bias"]
    np.testing.assert_array_equal(state[f"{enc}.v_proj.bias"], bias[2 * D :])
    kv = variables["decoder/layer_0/attention/linear_1/weight"]
    cross = "model.decoder.layers.0.encoder_attn"
    np.testing.assert_array_equal(state[f"{cross}.k_proj.weight"], kv[:D])
    np.testing.assert_array_equal(state[f"{cross}.v_proj.weight"], kv[D:])
    np.testing.assert_array_equal(
        state[f"{cross}.out_proj.weight"], variables["decoder/layer_0/attention/linear_2/weight"]
    )
    np.testing.assert_array_equal(
        state["model.decoder.layers.0.final_layer_norm.weight"],
        variables["decoder/layer_0/ffn/layer_norm/gamma"],
    )
    # every CTranslate2 tensor lands somewhere, nothing is invented: 2 encoder layers of 15
    # tensors, 1 decoder layer of 24, 7 more in the encoder and 4 in the decoder
    assert len(state) == 2 * 15 + 24 + 7 + 4


def test_nonzero_key_bias_is_refused(variables: dict[str, np.ndarray[Any, Any]]) -> None:
    variables["decoder/layer_0/attention/linear_1/bias"][0] = 1
    with pytest.raises(ct2.Ct2FormatError, match="key bias"):
        ct2.to_hf_state_dict(ct2.parse_ct2(_model_bin(variables)))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:-3], "truncated"),
        (lambda b: b + b"\0", "bytes left"),
        (lambda b: struct.pack("<I", 5) + b[4:], "binary version 5"),
    ],
)
def test_bad_files_say_why(
    variables: dict[str, np.ndarray[Any, Any]], mangle: Any, message: str
) -> None:
    with pytest.raises(ct2.Ct2FormatError, match=message):
        ct2.parse_ct2(mangle(_model_bin(variables)))


def test_not_whisper_and_bfloat16_are_refused(variables: dict[str, np.ndarray[Any, Any]]) -> None:
    with pytest.raises(ct2.Ct2FormatError, match="not a Whisper model"):
        ct2.whisper_shape(ct2.parse_ct2(_model_bin(variables, spec="TransformerSpec")))
    raw = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<II", 3, 1)
    raw += _string("x") + struct.pack("<BIBI", 1, 2, 5, 4) + b"\0" * 4
    with pytest.raises(ct2.Ct2FormatError, match="bfloat16"):
        ct2.parse_ct2(raw)


def test_int8_packing_round_trip(variables: dict[str, np.ndarray[Any, Any]]) -> None:
    state = ct2.to_hf_state_dict(ct2.parse_ct2(_model_bin(variables)))
    packed = ct2.pack_int8(state)
    name = "model.decoder.embed_tokens.weight"
    assert packed[f"{name}:q"].dtype == np.int8
    assert packed["model.encoder.embed_positions.weight:h"].dtype == np.float16
    back = ct2.unpack_int8(packed)
    assert set(back) == set(state)
    for key, value in state.items():
        x = value.astype(np.float32)
        rows = x.reshape(x.shape[0], -1)
        bound = np.abs(rows).max(axis=1, keepdims=True) / 254 + 1e-3 * np.abs(rows) + 1e-6
        assert np.all(np.abs(back[key].reshape(rows.shape) - rows) <= bound), key
