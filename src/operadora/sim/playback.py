"""Playbacks (channel and bridge), music on hold, and queued DTMF, with real paced audio.

A channel in Stasis runs one control at a time, as Asterisk's control thread does: a DTMF
request made while a playback runs waits for it to end (trace f1).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from operadora.sim.clock import run_until_done
from operadora.sim.media import FRAME_MS
from operadora.sim.model import Bridge, Channel, Playback
from operadora.sim.sounds import load_prompt, media_name, synthesize, tone_frames

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx


async def paced(frames: Sequence[bytes], sink: Callable[[bytes], None]) -> None:
    """Send frames at exactly one per 20 ms on the media clock; returns one tick after the last."""
    position = 0

    def tick() -> bool:
        nonlocal position
        if position >= len(frames):
            return False
        sink(frames[position])
        position += 1
        return True

    await run_until_done(tick)


def media_frames(pbx: Pbx, uri: str) -> tuple[bytes, ...]:
    scheme, name = media_name(uri)
    if scheme == "tone":
        return tone_frames(2.0)
    if scheme == "recording":
        data = pbx.stored_recordings.get(name)
        if data is not None:
            return tuple(data[i : i + 640] for i in range(0, len(data), 640)) or (bytes(640),)
    if scheme == "digits" or scheme == "number":
        return synthesize(0.6 * max(1, len(name)), seed=len(name))
    return load_prompt(name, pbx.config.sounds_dir).frames


def validate_media(uri: str) -> bool:
    scheme, name = media_name(uri)
    return bool(name) and scheme in ("sound", "recording", "tone", "digits", "number")


async def play_controlled(
    pb: Playback, frames: Sequence[bytes], sink: Callable[[bytes], None], offset: int = 0
) -> None:
    """Paced playback that honours ``/playbacks/{id}/control`` (pause, restart, skips)."""
    pb.position = max(0, offset)

    def tick() -> bool:
        if pb.position >= len(frames):
            return False
        if pb.running.is_set():
            sink(frames[pb.position])
            pb.position += 1
        return True

    await run_until_done(tick)


def control(pb: Playback, operation: str) -> None:
    if operation == "pause":
        pb.running.clear()
        pb.state = "paused"
    elif operation == "unpause":
        pb.running.set()
        pb.state = "playing"
    elif operation == "restart":
        pb.position = 0
    elif operation == "reverse":
        pb.position = max(0, pb.position - pb.skip_frames)
    elif operation == "forward":
        pb.position += pb.skip_frames


def start_channel_playback(
    pbx: Pbx,
    ch: Channel,
    media: list[str],
    playback_id: str | None,
    language: str,
    *,
    offset_ms: int = 0,
    skip_ms: int = 3000,
) -> Playback:
    pb = Playback(
        id=playback_id or pbx.new_uuid(),
        media_uri=media[0],
        target_uri=f"channel:{ch.id}",
        language=language or ch.language,
    )
    pb.skip_frames = max(1, skip_ms // FRAME_MS)
    pbx.playbacks[pb.id] = pb
    ch.playbacks.append(pb)
    pb.task = ch.spawn(_run_channel_playback(pbx, ch, pb, media, offset_ms // FRAME_MS))
    return pb


async def _run_channel_playback(
    pbx: Pbx, ch: Channel, pb: Playback, media: list[str], offset: int
) -> None:
    speaking = False
    try:
        async with ch.control:
            if pb.state != "queued":
                return
            pb.state = "playing"
            pbx.emit("PlaybackStarted", playback=pb, _app=ch.stasis_app)
            ch.playing += 1
            speaking = True
            for index, uri in enumerate(media):
                pb.media_uri = uri
                await play_controlled(
                    pb, media_frames(pbx, uri), ch.write, offset if not index else 0
                )
            finish(pbx, pb, "done", ch)
    finally:
        if speaking:
            ch.playing -= 1


def finish(pbx: Pbx, pb: Playback, state: str, ch: Channel | None = None) -> None:
    if pb.state in ("done", "failed", "cancelled"):
        return
    started = pb.state in ("playing", "paused")
    pb.state = state
    pbx.playbacks.pop(pb.id, None)
    if ch is not None and pb in ch.playbacks:
        ch.playbacks.remove(pb)
    if started:
        pbx.emit("PlaybackFinished", playback=pb, _app=ch.stasis_app if ch else None)


def stop_playback(pbx: Pbx, pb: Playback, state: str = "done") -> None:
    ch = _target_channel(pbx, pb)
    finish(pbx, pb, state, ch)
    if pb.task is not None and pb.task is not asyncio.current_task():
        pb.task.cancel()


def _target_channel(pbx: Pbx, pb: Playback) -> Channel | None:
    kind, _, target = pb.target_uri.partition(":")
    if kind != "channel":
        return None
    return pbx.channels.get(target)


def stop_channel_playbacks(pbx: Pbx, ch: Channel, state: str) -> None:
    for pb in list(ch.playbacks):
        finish(pbx, pb, state if pb.state == "playing" else "cancelled", ch)
        if pb.task is not None and pb.task is not asyncio.current_task():
            pb.task.cancel()
    ch.playbacks.clear()


def start_bridge_playback(
    pbx: Pbx, bridge: Bridge, media: list[str], playback_id: str | None, language: str
) -> Playback:
    from operadora.sim.bridging import mixer_of

    pb = Playback(
        id=playback_id or pbx.new_uuid(),
        media_uri=media[0],
        target_uri=f"bridge:{bridge.id}",
        language=language or "en",
    )
    pbx.playbacks[pb.id] = pb
    frames: Iterator[bytes] = itertools.chain.from_iterable(media_frames(pbx, m) for m in media)
    done = asyncio.Event()

    def source() -> bytes | None:
        frame = next(frames, None)
        if frame is None:
            done.set()
        return frame

    mixer = mixer_of(bridge)

    async def run() -> None:
        try:
            pb.state = "playing"
            pbx.emit("PlaybackStarted", playback=pb, _app=bridge.app)
            mixer.extras.append(source)
            mixer.ensure_clock()
            await done.wait()
            finish(pbx, pb, "done")
        finally:
            with contextlib.suppress(ValueError):
                mixer.extras.remove(source)

    pb.task = asyncio.get_running_loop().create_task(run())
    bridge.stoppers.append(lambda: stop_playback(pbx, pb, "done"))
    return pb


# ----- music on hold -----
def moh_frames() -> Iterator[bytes]:
    music = synthesize(8.0, seed=7)
    return itertools.cycle(music)


def start_moh(ch: Channel) -> None:
    stop_moh(ch)
    frames = moh_frames()

    def tick() -> bool:
        ch.write(next(frames))
        return not ch.destroyed

    ch.moh_task = ch.spawn(run_until_done(tick))


def stop_moh(ch: Channel) -> None:
    if ch.moh_task is not None:
        ch.moh_task.cancel()
        ch.moh_task = None


def start_bridge_moh(bridge: Bridge, moh_class: str) -> None:
    from operadora.sim.bridging import mixer_of

    stop_bridge_moh(bridge)
    bridge.moh_class = moh_class
    frames = moh_frames()

    def source() -> bytes | None:
        return next(frames)

    mixer = mixer_of(bridge)
    mixer.extras.append(source)
    mixer.ensure_clock()
    bridge.moh_source = source


def stop_bridge_moh(bridge: Bridge) -> None:
    from operadora.sim.bridging import mixer_of

    source = bridge.moh_source
    bridge.moh_source = None
    bridge.moh_class = None
    if source is not None:
        with contextlib.suppress(ValueError):
            mixer_of(bridge).extras.remove(source)


# ----- DTMF -----
def queue_dtmf(
    pbx: Pbx,
    ch: Channel,
    dtmf: str,
    *,
    before_ms: int,
    between_ms: int,
    duration_ms: int,
    after_ms: int,
) -> None:
    ch.pending_controls += 1
    ch.controls_drained.clear()
    ch.spawn(_run_dtmf(pbx, ch, dtmf, before_ms, between_ms, duration_ms, after_ms))


async def _run_dtmf(
    pbx: Pbx, ch: Channel, dtmf: str, before: int, between: int, duration: int, after: int
) -> None:
    started = False
    try:
        async with ch.control:
            started = True
            ch.pending_controls -= 1
            ch.control_task = asyncio.current_task()
            await asyncio.sleep(before / 1000)
            for digit in dtmf:
                if digit == ",":
                    await asyncio.sleep(0.5)
                    continue
                await asyncio.sleep(between / 1000)
                await asyncio.sleep(duration / 1000)
                pbx.send_dtmf(ch, digit, duration)
            await asyncio.sleep(after / 1000)
    finally:
        if not started:
            ch.pending_controls -= 1
        if ch.control_task is asyncio.current_task():
            ch.control_task = None
        if ch.pending_controls <= 0:
            ch.controls_drained.set()
