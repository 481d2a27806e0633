"""Live and stored recordings: what a channel hears from its device, or a bridge's mix."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
import wave
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from operadora.sim.clock import run_until_done
from operadora.sim.media import FRAME_MS, INTERNAL_RATE, mix
from operadora.sim.model import Bridge, Channel, LiveRecording

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx
    from operadora.sim.routes.params import Params

NAME = re.compile(r"^[A-Za-z0-9_.\-/]+$")


def _check(pbx: Pbx, params: Params) -> tuple[str, str, str]:
    from operadora.sim.pbx import PbxError

    name = params.required("name")
    fmt = params.required("format")
    if not NAME.match(name) or ".." in name:
        raise PbxError(400, "Invalid recording name")
    if fmt not in ("wav", "wav16", "sln", "sln16", "gsm", "ulaw", "alaw"):
        raise PbxError(422, f"Format '{fmt}' not supported")
    if_exists = params.text("ifExists", "fail")
    if name in pbx.recordings:
        raise PbxError(409, "Recording with the same name is in progress")
    if name in pbx.stored_recordings and if_exists == "fail":
        raise PbxError(422, "Recording already exists")
    return name, fmt, if_exists


def start_channel_recording(pbx: Pbx, ch: Channel, params: Params) -> LiveRecording:
    name, fmt, if_exists = _check(pbx, params)
    rec = LiveRecording(name, fmt, f"channel:{ch.id}")
    if if_exists == "append":
        rec.data += pbx.stored_recordings.get(name, b"")

    def tap(frame: bytes) -> None:
        if rec.state == "recording":
            rec.data += frame

    ch.taps.append(tap)
    _start(pbx, rec, params, lambda: ch.taps.remove(tap) if tap in ch.taps else None, ch.ended)
    return rec


def start_bridge_recording(pbx: Pbx, bridge: Bridge, params: Params) -> LiveRecording:
    name, fmt, _ = _check(pbx, params)
    rec = LiveRecording(name, fmt, f"bridge:{bridge.id}")
    inbox: dict[Channel, deque[bytes]] = {}
    taps: dict[Channel, Callable[[bytes], None]] = {}

    def attach() -> None:
        for ch in bridge.channels:
            if ch not in taps:
                queue = inbox.setdefault(ch, deque(maxlen=5))
                taps[ch] = queue.append
                ch.taps.append(taps[ch])

    def tick() -> bool:
        attach()
        frames = [q.popleft() for q in inbox.values() if q]
        if rec.state == "recording":
            rec.data += mix(frames) if frames else bytes(FRAME_MS * INTERNAL_RATE // 500)
        return True

    task = asyncio.get_running_loop().create_task(run_until_done(tick))

    def detach() -> None:
        task.cancel()
        for ch, tap in taps.items():
            with contextlib.suppress(ValueError):
                ch.taps.remove(tap)

    _start(pbx, rec, params, detach, bridge.dissolved)
    return rec


def _start(
    pbx: Pbx,
    rec: LiveRecording,
    params: Params,
    detach: Callable[[], object],
    gone: asyncio.Event,
) -> None:
    pbx.recordings[rec.name] = rec
    max_s = params.integer("maxDurationSeconds", 0) or 0
    rec.detach = detach

    async def run() -> None:
        rec.state = "recording"
        rec.started_at = time.monotonic()
        pbx.emit("RecordingStarted", recording=rec.json())
        waiters = [asyncio.ensure_future(gone.wait())]
        try:
            await asyncio.wait(waiters, timeout=max_s or None)
            finish(pbx, rec, "done")
        finally:
            for waiter in waiters:
                waiter.cancel()

    rec.task = asyncio.get_running_loop().create_task(run())


def finish(pbx: Pbx, rec: LiveRecording, state: str) -> None:
    if rec.state in ("done", "failed", "canceled"):
        return
    if rec.detach is not None:
        rec.detach()
    rec.duration = int(len(rec.data) / 2 / INTERNAL_RATE)
    rec.state = state
    pbx.recordings.pop(rec.name, None)
    if state == "done":
        pbx.stored_recordings[rec.name] = bytes(rec.data)
        pbx.emit("RecordingFinished", recording=rec.json())
    else:
        pbx.emit("RecordingFailed", recording=rec.json())
    if rec.task is not None and rec.task is not asyncio.current_task():
        rec.task.cancel()


def wav_bytes(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(INTERNAL_RATE)
        wav.writeframes(pcm)
    return out.getvalue()
