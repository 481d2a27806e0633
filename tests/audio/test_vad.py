from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from operadora.audio.framing import Reframer
from operadora.audio.resample import resample
from operadora.audio.vad import EnergyVad, SileroVad, WebRtcVad, make_vad
from operadora.config import VadSettings
from support import require

pytestmark = pytest.mark.unit

SOUNDS = [
    Path("/usr/share/asterisk/sounds/en"),
    Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
    Path("/var/lib/asterisk/sounds/en"),
]


def speech_like(rate: int, seconds: float = 1.0) -> np.ndarray:
    """A voiced, formant-shaped buzz with syllable-rate amplitude modulation."""
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (voiced * envelope * 0.15).astype(np.float32)


def windows(audio: np.ndarray, size: int) -> list[np.ndarray]:
    return [audio[i : i + size].copy() for i in range(0, len(audio) - size + 1, size)]


def recorded_prompt(rate: int) -> np.ndarray:
    """Asterisk's recorded 'demo-congrats' prompt (a real voice), at ``rate``."""
    for folder in SOUNDS:
        path = folder / "demo-congrats.wav"
        if path.is_file():
            with wave.open(str(path)) as wav:
                pcm = wav.readframes(wav.getnframes())
                pcm = resample(pcm, wav.getframerate(), rate)
                return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    require(False, "Asterisk's recorded prompts (Debian asterisk-core-sounds-en-wav)")
    raise AssertionError("unreachable")


@pytest.mark.parametrize("rate", [8000, 16000])
def test_silero_tells_silence_from_a_voice(rate: int) -> None:
    vad = SileroVad(rate)
    assert vad.window_samples == rate * 32 // 1000
    silence = [vad.speech_probability(np.zeros(vad.window_samples, np.float32)) for _ in range(20)]
    assert max(silence) < 0.2
    vad.reset()
    probs = [vad.speech_probability(w) for w in windows(recorded_prompt(rate), vad.window_samples)]
    assert all(0.0 <= p <= 1.0 for p in probs)
    # the prompt is mostly speech: most windows are judged speech, and some very confidently
    assert max(probs) > 0.9
    assert sum(p > 0.5 for p in probs) > len(probs) / 3
    # a steady buzz is not a voice
    vad.reset()
    buzz = [vad.speech_probability(w) for w in windows(speech_like(rate), vad.window_samples)]
    assert max(buzz) < 0.5


def test_silero_accepts_read_only_and_non_contiguous_windows() -> None:
    vad = SileroVad(16000)
    window = np.zeros(1024, np.float32)[::2]
    assert 0.0 <= vad.speech_probability(window) <= 1.0
    ro = np.zeros(512, np.float32)
    ro.flags.writeable = False
    assert 0.0 <= vad.speech_probability(ro) <= 1.0
    with pytest.raises(ValueError, match="512"):
        vad.speech_probability(np.zeros(320, np.float32))
    with pytest.raises(ValueError):
        SileroVad(44100)


def test_webrtc_maps_decisions_to_zero_or_one_and_carries_samples() -> None:
    vad = WebRtcVad(16000, aggressiveness=1)
    assert vad.window_samples == 512
    silent = [vad.speech_probability(np.zeros(512, np.float32)) for _ in range(10)]
    assert silent == [0.0] * 10
    probs = [vad.speech_probability(w) for w in windows(speech_like(16000, 2.0), 512)]
    assert set(probs) <= {0.0, 1.0}
    assert sum(probs) > len(probs) / 2
    # 512 samples = 3 slices of 160 + 32 carried; 5 windows carry 160 = one more slice
    vad.reset()
    for _ in range(5):
        vad.speech_probability(np.zeros(512, np.float32))
    assert vad._carry.size == (5 * 512) % 160


def test_energy_vad_levels() -> None:
    vad = EnergyVad(8000)
    assert vad.speech_probability(np.zeros(256, np.float32)) == 0.0
    assert vad.speech_probability(np.full(256, 0.001, np.float32)) == 0.0  # -60 dBFS
    assert vad.speech_probability(np.full(256, 0.5, np.float32)) == 1.0  # -6 dBFS
    assert 0.0 < vad.speech_probability(np.full(256, 0.01, np.float32)) < 1.0  # -40 dBFS


@pytest.mark.parametrize(
    ("engine", "kind"), [("silero", SileroVad), ("webrtc", WebRtcVad), ("energy", EnergyVad)]
)
def test_make_vad_follows_settings(engine: str, kind: type) -> None:
    vad = make_vad(VadSettings(engine=engine), 16000)
    assert isinstance(vad, kind)
    assert vad.sample_rate == 16000


def test_reframer_feeds_vad_from_20ms_frames() -> None:
    vad = make_vad(VadSettings(engine="energy"), 8000)
    reframer = Reframer(vad.window_samples)
    audio = (speech_like(8000) * 32768).astype("<i2").tobytes()
    probs = []
    for i in range(0, len(audio), 320):
        probs += [vad.speech_probability(w) for w in reframer.push(audio[i : i + 320])]
    assert len(probs) == 8000 // 256
    assert max(probs) == 1.0
