"""Bridges: membership events, connected-line updates, and real audio mixing.

A mixing bridge gives each member the sum of the other members' audio (and of a bridge
playback or music on hold). With two members and nothing else to mix, frames are forwarded
at once; otherwise a 20 ms clock mixes what arrived. A holding bridge lets participants hear
only its music on hold / playback, never each other.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from operadora.sim.clock import media_clock
from operadora.sim.media import mix
from operadora.sim.model import Bridge, Channel

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx

FrameSource = Callable[[], bytes | None]


class Mixer:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.inbox: dict[Channel, deque[bytes]] = {}
        self.extras: list[FrameSource] = []  # bridge playback / MOH: one frame per tick
        self._clock_key: int | None = None
        self._idle = 0

    def direct(self) -> bool:
        return (
            self.bridge.bridge_type == "mixing"
            and len(self.bridge.channels) <= 2
            and not self.extras
        )

    def push(self, member: Channel, frame: bytes) -> None:
        if self.bridge.destroyed:
            return
        if self.direct():
            for other in self.bridge.channels:
                if other is not member:
                    deliver(other, frame)
            return
        if self.bridge.bridge_type != "mixing" and member.id not in self.bridge.announcers:
            return  # holding bridge: participants hear only announcers and music
        queue = self.inbox.get(member)
        if queue is None:
            queue = self.inbox[member] = deque(maxlen=3)
        queue.append(frame)
        self.ensure_clock()

    def ensure_clock(self) -> None:
        if self._clock_key is None:
            self._idle = 0
            self._clock_key = media_clock().add(self._on_tick)

    def stop(self) -> None:
        if self._clock_key is not None:
            media_clock().remove(self._clock_key)
            self._clock_key = None

    def _on_tick(self) -> bool:
        if self.bridge.destroyed:
            self._clock_key = None
            return False
        if self.tick():
            self._idle = 0
            return True
        self._idle += 1
        if self._idle > 25 and not self.extras:  # half a second of silence: sleep
            self._clock_key = None
            return False
        return True

    def tick(self) -> bool:
        frames: dict[Channel, bytes] = {}
        for member, queue in list(self.inbox.items()):
            if member not in self.bridge.channels:
                del self.inbox[member]
            elif queue:
                frames[member] = queue.popleft()
        extra = [f for f in (src() for src in list(self.extras)) if f is not None]
        if not frames and not extra:
            return False
        mixing = self.bridge.bridge_type == "mixing"
        for member in self.bridge.channels:
            parts = list(extra)
            if mixing or member.id not in self.bridge.announcers:
                parts.extend(f for c, f in frames.items() if c is not member)
            if parts:
                deliver(member, mix(parts))
        return True


def deliver(member: Channel, frame: bytes) -> None:
    """Bridge audio to a member, unless a channel playback is speaking to it."""
    if member.playing or member.on_hold:
        return
    member.write(frame)


def create_bridge(
    pbx: Pbx,
    bridge_type: str,
    *,
    bridge_id: str | None = None,
    name: str = "",
    app: str | None = None,
    bridge_class: str = "stasis",
) -> Bridge:
    if bridge_id and bridge_id in pbx.bridges:
        raise_conflict()
    bridge = Bridge(
        apps={app} if app else set(),
        id=bridge_id or pbx.new_uuid(),
        bridge_type="holding" if bridge_type == "holding" else "mixing",
        bridge_class=bridge_class,
        name=name,
        app=app,
        creator="Stasis" if bridge_class == "stasis" else "",
        video_mode="talker" if bridge_class == "stasis" else "none",
    )
    bridge.mixer = Mixer(bridge)
    pbx.bridges[bridge.id] = bridge
    pbx.emit("BridgeCreated", bridge=bridge, _app=app)
    return bridge


def raise_conflict() -> None:
    from operadora.sim.pbx import PbxError

    raise PbxError(409, "Bridge with id already exists")


def mixer_of(bridge: Bridge) -> Mixer:
    assert isinstance(bridge.mixer, Mixer)
    return bridge.mixer


def add_channels(
    pbx: Pbx, bridge: Bridge, channels: list[Channel], role: str = "participant"
) -> None:
    for ch in channels:
        if role == "announcer":
            bridge.announcers.add(ch.id)
        else:
            bridge.announcers.discard(ch.id)
        if ch.bridge is bridge:
            continue
        if ch.bridge is not None:
            remove_channel(pbx, ch.bridge, ch)
        ch.bridge = bridge
        bridge.channels.append(ch)
        bridge.apps |= ch.apps
        mixer = mixer_of(bridge)
        ch.consumer = lambda frame, member=ch, mx=mixer: mx.push(member, frame)
        ch.dtmf_consumer = lambda digit, ms, member=ch: _pass_dtmf(pbx, bridge, member, digit, ms)
        pbx.emit("ChannelEnteredBridge", bridge=bridge, channel=ch)
    _bridge_peers(pbx, bridge)


def _bridge_peers(pbx: Pbx, bridge: Bridge) -> None:
    if len(bridge.channels) != 2 or bridge.bridge_type != "mixing":
        return
    first, second = bridge.channels
    pbx.set_variable(first, "BRIDGEPEER", second.name)
    pbx.set_variable(second, "BRIDGEPEER", first.name)
    if bridge.bridge_class != "stasis":
        return  # Dial()/Queue() exchange connected line themselves
    pbx.update_connected(second, first.caller)
    pbx.update_connected(first, second.caller)


def _pass_dtmf(pbx: Pbx, bridge: Bridge, member: Channel, digit: str, ms: int) -> None:
    if bridge.bridge_type != "mixing":
        return
    for other in bridge.channels:
        if other is not member:
            pbx.send_dtmf(other, digit, ms)


def remove_channel(pbx: Pbx, bridge: Bridge, ch: Channel) -> None:
    if ch not in bridge.channels:
        return
    if bridge.bridge_type == "mixing" and len(bridge.channels) == 2:
        pbx.set_variable(ch, "BRIDGEPEER", "")
    bridge.channels.remove(ch)
    bridge.announcers.discard(ch.id)
    ch.bridge = None
    ch.consumer = None
    ch.dtmf_consumer = None
    pbx.emit("ChannelLeftBridge", bridge=bridge, channel=ch)
    if bridge.bridge_class == "basic" and not bridge.destroyed:
        # a dialplan (Dial/Queue) bridge dissolves when one side leaves
        for other in list(bridge.channels):
            bridge.channels.remove(other)
            other.bridge = None
            other.consumer = None
            other.dtmf_consumer = None
            pbx.emit("ChannelLeftBridge", bridge=bridge, channel=other)
        _destroyed(pbx, bridge)


def destroy_bridge(pbx: Pbx, bridge: Bridge) -> None:
    if bridge.destroyed:
        return
    for ch in list(bridge.channels):
        if bridge.bridge_type == "mixing" and len(bridge.channels) == 2:
            pbx.set_variable(ch, "BRIDGEPEER", "")
        bridge.channels.remove(ch)
        ch.bridge = None
        ch.consumer = None
        ch.dtmf_consumer = None
        pbx.emit("ChannelLeftBridge", bridge=bridge, channel=ch)
    _destroyed(pbx, bridge)


def _destroyed(pbx: Pbx, bridge: Bridge) -> None:
    bridge.destroyed = True
    mixer_of(bridge).stop()
    for stop in list(bridge.stoppers):
        with contextlib.suppress(Exception):
            stop()
    pbx.bridges.pop(bridge.id, None)
    pbx.emit("BridgeDestroyed", bridge=bridge, _app=bridge.app)
    bridge.dissolved.set()
