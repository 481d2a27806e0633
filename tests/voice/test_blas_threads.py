"""The engines' process keeps numpy's BLAS on one thread, and Whisper's CTranslate2 threads
default to half the cores: an idle OpenBLAS worker spins after every small product."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from operadora.config import SttSettings
from operadora.voice.factory import build_stt
from operadora.voice.stt import whisper
from operadora.voice.stt.whisper import WhisperStt, default_cpu_threads

BLAS_THREADS = (
    "from threadpoolctl import threadpool_info\n"
    "print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))\n"
)


def _blas_threads_after(setup: str) -> int:
    """numpy's BLAS threads in a fresh process after ``setup`` ran (the limit is process-wide,
    so it is not taken in the test process)."""
    code = "import numpy\n" + setup + "\n" + BLAS_THREADS
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return int(done.stdout.split()[-1])


def test_the_engines_process_holds_blas_to_one_thread() -> None:
    free = _blas_threads_after("")
    held = _blas_threads_after(
        "from operadora.config import VoiceSettings\n"
        "from operadora.voice.factory import build_engines\n"
        "settings = VoiceSettings.model_validate({'stt': {'engine': 'fake'}, "
        "'tts': {'engine': 'fake'}, 'vad': {'engine': 'energy'}})\n"
        "build_engines(settings, 'en')"
    )
    assert held == 1
    if (free_cores := len(os.sched_getaffinity(0))) > 1:
        assert free == free_cores  # without it OpenBLAS keeps a thread per core


def test_ctranslate2_threads_default_to_half_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, threads in ((None, 1), (1, 1), (2, 1), (4, 2), (8, 4), (64, 4)):
        monkeypatch.setattr(whisper.os, "cpu_count", lambda cores=cores: cores)
        assert default_cpu_threads() == threads


def test_the_setting_reaches_whisper(tmp_path: Path) -> None:
    stt = build_stt(SttSettings(cpu_threads=3), tmp_path, "en")
    assert isinstance(stt, WhisperStt) and stt.cpu_threads == 3
    auto = build_stt(SttSettings(), tmp_path, "en")
    assert isinstance(auto, WhisperStt) and auto.cpu_threads == default_cpu_threads()
