"""Prompts the simulator plays (``sound:hello-world``), with their real durations.

If Asterisk's core sounds are installed (Debian ``asterisk-core-sounds-en-wav``, files under
``/usr/share/asterisk/sounds/en``) the real recording is played. Otherwise the simulator
synthesizes a tone pattern of the prompt's real length: durations measured from the recorded
traces (``PlaybackStarted`` -> ``PlaybackFinished``), else a default.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from operadora.sim.media import FRAME_BYTES, FRAME_SAMPLES, INTERNAL_RATE, fit_frame, to_internal

DEFAULT_SOUNDS_DIR = Path("/usr/share/asterisk/sounds/en")

# Seconds. hello-world and tt-weasels as measured in ari-traces (PlaybackStarted ->
# PlaybackFinished: a 1.403 s, g 1.402 s, c1 2.949 s); the others are the lengths of the
# asterisk-core-sounds-en-wav 1.6.1 files (which also give 1.404 s and 2.951 s for those two).
KNOWN_DURATIONS = {
    "hello-world": 1.403,
    "tt-weasels": 2.949,
    "demo-congrats": 30.277,
    "beep": 0.25,
    "transfer": 2.392,
    "invalid": 4.112,
    "vm-goodbye": 0.865,
    "basic-pbx-ivr-main": 25.392,
    "silence/1": 1.0,
}
DEFAULT_DURATION = 2.0


@dataclass(frozen=True, slots=True)
class Prompt:
    name: str
    frames: tuple[bytes, ...]

    @property
    def duration(self) -> float:
        return len(self.frames) * 0.02


def media_name(uri: str) -> tuple[str, str]:
    """``sound:hello-world`` -> (``sound``, ``hello-world``)."""
    scheme, _, name = uri.partition(":")
    return scheme, name


@lru_cache(maxsize=128)
def load_prompt(name: str, sounds_dir: Path = DEFAULT_SOUNDS_DIR) -> Prompt:
    """The prompt's 20 ms frames at the internal rate (real file if installed)."""
    wav = sounds_dir / f"{name}.wav"
    if wav.is_file():
        try:
            return Prompt(name, _read_wav(wav))
        except (wave.Error, EOFError, ValueError):
            pass
    seconds = KNOWN_DURATIONS.get(name, DEFAULT_DURATION)
    return Prompt(name, synthesize(seconds, seed=sum(name.encode())))


def tone_frames(seconds: float, freq: float = 425.0, amplitude: int = 6000) -> tuple[bytes, ...]:
    n_frames = max(1, round(seconds / 0.02))
    t = np.arange(n_frames * FRAME_SAMPLES) / INTERNAL_RATE
    pcm = (amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()
    return tuple(pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES] for i in range(n_frames))


def synthesize(seconds: float, seed: int = 0) -> tuple[bytes, ...]:
    """A voice-like pattern: syllable-long tone bursts (peaks about 7000, like the prompts)."""
    n_frames = max(1, round(seconds / 0.02))
    total = n_frames * FRAME_SAMPLES
    t = np.arange(total) / INTERNAL_RATE
    rng = np.random.default_rng(seed)
    syllable = 0.18
    pitches = rng.uniform(140, 260, size=int(seconds / syllable) + 2)
    idx = (t / syllable).astype(int)
    f0 = pitches[idx]
    envelope = np.abs(np.sin(math.pi * (t / syllable)))
    wave_ = np.sin(2 * math.pi * f0 * t) + 0.5 * np.sin(4 * math.pi * f0 * t)
    pcm = (4700 * envelope * wave_).astype("<i2").tobytes()
    return tuple(pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES] for i in range(n_frames))


def _read_wav(path: Path) -> tuple[bytes, ...]:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError("only 16-bit mono WAV prompts are supported")
        rate = wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    pcm16 = to_internal(pcm, rate)
    return tuple(fit_frame(pcm16[i : i + FRAME_BYTES]) for i in range(0, len(pcm16), FRAME_BYTES))
