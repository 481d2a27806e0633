"""Reading and writing mono 16-bit WAV files for the voice commands."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from operadora.voice.engines import Float32Audio
from operadora.voice.pcm import to_float32


def read_wav(path: Path) -> tuple[Float32Audio, int]:
    """Samples (mono float32) and rate of a 16-bit PCM WAV; stereo is mixed down."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
            channels, rate = wav.getnchannels(), wav.getframerate()
            audio = to_float32(wav.readframes(wav.getnframes()))
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a PCM WAV file ({exc})") from None
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1).astype(np.float32)
    return audio, rate


def write_wav(path: Path, pcm: bytes, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
