"""Prompts: real WAV files when installed, else synthesized audio of the real duration."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from operadora.sim.media import FRAME_BYTES, from_internal, mix, to_internal
from operadora.sim.sounds import KNOWN_DURATIONS, load_prompt

pytestmark = pytest.mark.unit


def test_a_wav_prompt_is_read_and_converted(tmp_path: Path) -> None:
    samples = (3000 * np.sin(2 * np.pi * 300 * np.arange(4000) / 8000)).astype("<i2")  # 0.5 s
    with wave.open(str(tmp_path / "hello-world.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(samples.tobytes())
    prompt = load_prompt("hello-world", tmp_path)
    assert len(prompt.frames) == 25 and {len(f) for f in prompt.frames} == {FRAME_BYTES}
    assert abs(prompt.duration - 0.5) < 1e-9
    back = np.frombuffer(from_internal(b"".join(prompt.frames), 8000), dtype="<i2")
    error = np.abs(back.astype(int) - samples.astype(int))[1:-1]  # the edges have no neighbours
    assert error.max() <= 30  # 1 % of the amplitude


def test_without_the_package_durations_match_the_traces(tmp_path: Path) -> None:
    for name in ("hello-world", "tt-weasels", "demo-congrats"):
        prompt = load_prompt(name, tmp_path)  # an empty folder: synthesized
        assert abs(prompt.duration - KNOWN_DURATIONS[name]) <= 0.02
        peak = max(int(np.abs(np.frombuffer(f, dtype="<i2")).max()) for f in prompt.frames)
        assert 3000 < peak < 8000  # speech-like level, like the real prompts (~7000)
    assert abs(load_prompt("no-such-prompt", tmp_path).duration - 2.0) < 1e-9


def test_installed_prompts_have_the_traced_lengths() -> None:
    folder = Path("/usr/share/asterisk/sounds/en")
    if not (folder / "hello-world.wav").is_file():
        pytest.skip("asterisk-core-sounds-en-wav is not installed (synthesized prompts are used)")
    assert abs(load_prompt("hello-world", folder).duration - 1.403) <= 0.02
    assert abs(load_prompt("tt-weasels", folder).duration - 2.949) <= 0.02


def test_rate_conversion_and_mixing() -> None:
    tone = (1000 * np.sin(np.arange(160) / 5)).astype("<i2").tobytes()
    up = to_internal(tone, 8000)
    assert len(up) == 640
    assert len(from_internal(up, 8000)) == 320
    a = np.full(320, 30000, dtype="<i2").tobytes()
    b = np.full(320, 10000, dtype="<i2").tobytes()
    assert set(np.frombuffer(mix([a, b]), dtype="<i2").tolist()) == {32767}  # saturates
    assert mix([a]) == a
