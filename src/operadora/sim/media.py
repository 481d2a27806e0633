"""Audio inside the PBX simulator, and the hook through which simulated devices attach to it.

Every simulated channel has two audio directions:

* what the channel **reads** (audio coming *from* its device: a caller's voice, the AudioSocket
  server's frames, the other half of a Local channel), consumed by whatever owns the channel
  now (a bridge, a dialplan application such as ``AudioSocket()``, or nobody);
* what the channel **writes** (audio going *to* its device: the mix of a bridge, a playback,
  what ``Echo()`` sends back).

Inside the simulator audio is 20 ms frames of signed 16-bit little-endian mono PCM at
:data:`INTERNAL_RATE` (640 bytes). Edges convert: AudioSocket at 8 kHz (``slin``) or 16 kHz
(``slin16``), devices at their own rate.

A simulated device (a persona calling in, a queue member answering) attaches with an
:class:`AudioSource` (what it sends) and an :class:`AudioSink` (what it hears). Both match
``operadora.sim.callers.audio.CallerAudio``:

* the simulator calls ``source.next_frame()`` once every 20 ms while the channel is up; it
  returns one frame at ``source.sample_rate`` or ``None`` to send nothing for that slot (like a
  Local channel in ``Wait()`` or a phone with silence suppression);
* the simulator calls ``sink.hear(pcm)`` with each 20 ms frame written to the channel, at
  ``sink.sample_rate``. It must not block.

DTMF and hang-up travel through :class:`DeviceEvents` (optional), and the device acts on its
channel through the :class:`~operadora.sim.lines.Line` handle it was given.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

INTERNAL_RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = INTERNAL_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
SILENCE = bytes(FRAME_BYTES)


@runtime_checkable
class AudioSource(Protocol):
    """What a simulated device sends into its channel, pulled one 20 ms slot at a time."""

    sample_rate: int

    def next_frame(self) -> bytes | None:
        """One 20 ms frame at ``sample_rate``, or ``None`` to send nothing in this slot."""
        ...


@runtime_checkable
class AudioSink(Protocol):
    """What a simulated device hears: every frame written to its channel."""

    sample_rate: int

    def hear(self, pcm: bytes) -> None:
        """One frame (normally 20 ms) at ``sample_rate``; called on the event loop, never blocks."""
        ...


class DeviceEvents(Protocol):
    """Optional callbacks for a device: DTMF sent to it and the end of its call."""

    def dtmf(self, digit: str, duration_ms: int) -> None: ...

    def ended(self, cause: int, cause_txt: str) -> None: ...


def to_internal(pcm: bytes, rate: int) -> bytes:
    """Convert a frame at ``rate`` to the internal rate (linear interpolation, cheap)."""
    if rate == INTERNAL_RATE or not pcm:
        return pcm
    src = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    n_out = len(src) * INTERNAL_RATE // rate
    if n_out <= 0:
        return b""
    x_out = np.arange(n_out, dtype=np.float32) * (rate / INTERNAL_RATE)
    out = np.interp(x_out, np.arange(len(src), dtype=np.float32), src)
    return np.asarray(np.round(out), dtype="<i2").tobytes()


def from_internal(pcm: bytes, rate: int) -> bytes:
    """Convert a frame at the internal rate to ``rate``."""
    if rate == INTERNAL_RATE or not pcm:
        return pcm
    src = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if INTERNAL_RATE == 2 * rate:
        # [1/4, 1/2, 1/4] around the even samples: low-pass without a delay
        padded = np.concatenate((src[:1], src, src[-1:]))
        out = 0.25 * padded[0:-2:2] + 0.5 * padded[1:-1:2] + 0.25 * padded[2::2]
    else:
        n_out = len(src) * rate // INTERNAL_RATE
        x_out = np.arange(n_out, dtype=np.float32) * (INTERNAL_RATE / rate)
        out = np.interp(x_out, np.arange(len(src), dtype=np.float32), src)
    return np.asarray(np.round(out), dtype="<i2").tobytes()


def mix(frames: list[bytes]) -> bytes:
    """Sum frames of equal length with saturation (what a mixing bridge does)."""
    if len(frames) == 1:
        return frames[0]
    acc = np.zeros(FRAME_SAMPLES, dtype=np.int32)
    for frame in frames:
        samples = np.frombuffer(frame, dtype="<i2")
        n = min(len(samples), FRAME_SAMPLES)
        acc[:n] += samples[:n]
    return np.clip(acc, -32768, 32767).astype("<i2").tobytes()


def fit_frame(pcm: bytes) -> bytes:
    """Pad or cut an internal-rate frame to exactly 20 ms."""
    if len(pcm) == FRAME_BYTES:
        return pcm
    if len(pcm) > FRAME_BYTES:
        return pcm[:FRAME_BYTES]
    return pcm + SILENCE[len(pcm) :]
