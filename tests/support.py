"""Helpers shared by tests: ``from support import require, free_port``."""

from __future__ import annotations

import os
import socket
import wave

import numpy as np
import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str) -> None:
    """Skip locally, fail in CI, when a real service a test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} not available")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


RECORDED_PROMPTS = [
    "/usr/share/asterisk/sounds/en/demo-congrats.wav",
    "/usr/share/asterisk/sounds/en_US_f_Allison/demo-congrats.wav",
]


def recorded_prompt(rate: int) -> np.ndarray:
    """Asterisk's recorded 'demo-congrats' prompt (a real voice, ~30 s) as float32 at ``rate``."""
    from operadora.audio.resample import resample

    for path in RECORDED_PROMPTS:
        if os.path.isfile(path):
            with wave.open(path) as wav:
                pcm = resample(wav.readframes(wav.getnframes()), wav.getframerate(), rate)
                return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    require(False, "Asterisk's recorded prompts (Debian asterisk-core-sounds-en-wav)")
    raise AssertionError("unreachable")
