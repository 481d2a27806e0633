"""The numpy Silero network against ONNX Runtime on the same model file, state carried."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from operadora.audio import vad_batch
from operadora.audio.resample import resample
from operadora.audio.silero_numpy import SileroNumpy
from operadora.audio.vad_batch import SileroBatch, silero_model_path
from support import require

pytestmark = pytest.mark.unit

SOUNDS = Path("/usr/share/asterisk/sounds/en")


def calls(rate: int) -> list[np.ndarray]:
    """Asterisk's 8 kHz prompts resampled to ``rate``, plus silence and two noise levels."""
    paths = sorted(SOUNDS.glob("*.wav"))[::6]
    require(bool(paths), "Asterisk's recorded prompts (Debian asterisk-core-sounds-en-wav)")
    audio = []
    for path in paths:
        with wave.open(str(path)) as wav:
            pcm = resample(wav.readframes(wav.getnframes()), wav.getframerate(), rate)
        audio.append(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768)
    rng = np.random.default_rng(7)
    seconds = rate * 3
    audio.append(np.zeros(seconds, np.float32))
    audio.append((rng.standard_normal(seconds) * 0.01).astype(np.float32))
    audio.append(np.clip(rng.standard_normal(seconds) * 0.5, -1, 1).astype(np.float32))
    return audio


@pytest.mark.parametrize(
    ("rate", "chunk"), [(16000, vad_batch.NUMPY_CHUNK), (8000, 128), (16000, 7)]
)
def test_numpy_backend_equals_onnx_runtime_over_real_audio(
    rate: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vad_batch, "NUMPY_CHUNK", chunk)  # 7: large batches scored in pieces
    fast = SileroBatch(rate, backend="numpy")
    onnx = SileroBatch(rate, backend="onnxruntime")
    size = fast.window_samples
    feeds = [
        [audio[i : i + size].copy() for i in range(0, len(audio) - size + 1, size)]
        for audio in calls(rate)
    ]
    pairs = [(fast.stream(), onnx.stream()) for _ in feeds]
    worst = 0.0
    for step in range(max(len(feed) for feed in feeds)):
        # calls end at different times: the batch shrinks, every stream keeps its own state
        live = [
            (pair, feed[step]) for pair, feed in zip(pairs, feeds, strict=True) if step < len(feed)
        ]
        got = fast.score([(pair[0], window) for pair, window in live])
        want = onnx.score([(pair[1], window) for pair, window in live])
        worst = max(worst, float(np.abs(got - want).max()))
        if step % 10 == 0:
            mine = np.stack([pair[0].state for pair, _ in live])
            theirs = np.stack([pair[1].state for pair, _ in live])
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)
            for pair, _ in live:
                assert np.array_equal(pair[0].context, pair[1].context)
    assert worst < 1e-4
    assert fast.windows_scored == onnx.windows_scored == sum(len(feed) for feed in feeds)


def test_numpy_network_takes_the_onnx_model_contract() -> None:
    model = SileroNumpy(silero_model_path(), 16000)
    rng = np.random.default_rng(1)
    inputs = (rng.standard_normal((3, 576)) * 0.2).astype(np.float32)
    probs, state = model.run(inputs, np.zeros((2, 3, 128), np.float32))
    assert probs.shape == (3,) and probs.dtype == np.float32
    assert state.shape == (2, 3, 128) and state.dtype == np.float32
    assert np.all((probs > 0) & (probs < 1))
    with pytest.raises(ValueError):
        SileroNumpy(silero_model_path(), 22050)
    with pytest.raises(ValueError, match="backend"):
        SileroBatch(16000, backend="torch")  # type: ignore[arg-type]
