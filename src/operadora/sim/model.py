"""The simulator's objects (channels, bridges, playbacks) and their ARI JSON snapshots.

Snapshots follow the shapes recorded from Asterisk 22.10.1 (``ari-traces/*.jsonl``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from operadora.sim.media import DeviceEvents

Json = dict[str, Any]
log = logging.getLogger(__name__)

PRESENTATION: dict[str, Any] = {
    "caller_presentation": 0,
    "caller_presentation_txt": "Presentation Allowed, Not Screened",
}

CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    23: "Redirected to new destination",
    27: "Destination out of order",
    28: "Invalid number format (incomplete number)",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    58: "Bearer capability not available",
}

# ARI ``reason`` of DELETE /channels/{id} -> Q.850 cause (res/ari/resource_channels.c)
REASON_CAUSE = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}


def ari_time(ts: float | None = None) -> str:
    """Asterisk's timestamp format: ``2026-11-25T20:41:14.998+0000``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


@dataclass(slots=True)
class Party:
    name: str = ""
    number: str = ""

    def json(self) -> Json:
        return {"name": self.name, "number": self.number}


def parse_caller_id(text: str) -> Party:
    """``Alice <5551000>`` -> name Alice, number 5551000; a bare number is a number."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return Party(name.strip().strip('"'), number.strip())
    return Party("", text)


@dataclass(eq=False)
class Channel:
    id: str
    name: str
    technology: str
    state: str
    context: str
    exten: str
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    caller: Party = field(default_factory=Party)
    connected: Party = field(default_factory=Party)
    creationtime: str = field(default_factory=ari_time)
    language: str = "en"
    variables: dict[str, str] = field(default_factory=dict)
    peer: Channel | None = None  # the other half of a Local channel
    pbx: bool = False  # runs a dialplan (PBX) thread of its own
    stasis_app: str | None = None
    stasis_args: list[str] = field(default_factory=list)
    apps: set[str] = field(default_factory=set)  # applications subscribed to this channel
    bridge: Bridge | None = None
    destroyed: bool = False
    hanging_up: bool = False
    hangup_cause: int = 0
    tech_cause: int | None = None  # e.g. 302 when a PJSIP redirect answered the INVITE
    continue_to: tuple[str, str, int] | None = None
    # media: what consumes the audio this channel reads, and where written audio goes
    consumer: Callable[[bytes], None] | None = None
    dtmf_consumer: Callable[[str, int], None] | None = None
    device_write: Callable[[bytes], None] | None = None
    device_dtmf: Callable[[str, int], None] | None = None
    device_events: DeviceEvents | None = None
    voice: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    # stasis control queue (play, dtmf run one at a time, like Asterisk's control thread)
    control: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending_controls: int = 0
    playbacks: list[Playback] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # connected-line frames a Local half has not read yet (deferred during Answer/Wait)
    defer_frames: bool = False
    pending_caller: Party | None = None
    dial_target: Channel | None = None  # created Local channel: the half to run on dial
    dial_endpoint: str | None = None  # POST /channels/create: what /dial will ring
    dialed: bool = False
    moh: str | None = None
    moh_task: asyncio.Task[Any] | None = None
    on_hold: bool = False
    mute_in: bool = False  # audio from the device is not passed on (ARI mute 'in')
    mute_out: bool = False  # audio to the device is dropped (ARI mute 'out')
    taps: list[Callable[[bytes], None]] = field(default_factory=list)  # recordings, snoop in
    out_taps: list[Callable[[bytes], None]] = field(default_factory=list)  # snoop out
    tx_frames: int = 0  # frames sent to / received from the device (rtp_statistics)
    rx_frames: int = 0
    playing: int = 0  # active playbacks: bridge audio is not written meanwhile
    terminating: bool = False
    stasis_done: asyncio.Future[None] | None = None
    control_task: asyncio.Task[Any] | None = None
    controls_drained: asyncio.Event = field(default_factory=asyncio.Event)
    close_device: Callable[[], None] | None = None
    on_ringing: Callable[[], None] | None = None
    on_answer: Callable[[], None] | None = None
    # a dialled channel that ends before it answered: Dial() / originate report its status
    on_unanswered_end: Callable[[int], None] | None = None
    refer_to: str | None = None  # the destination of the phone's last REFER
    device_transfer: Callable[[str], None] | None = None  # NOTIFY progress to the phone
    # a real SIP call (operadora.sim.sip): its Call-ID, the phone's address, RTP counters,
    # what runs before the hang-up request (RTPAUDIOQOS*) and the 302 of a redirect
    protocol_id: str = ""
    remote_addr: str | None = None
    rtp_stats: Callable[[], dict[str, float | int]] | None = None
    before_hangup: Callable[[], None] | None = None
    device_redirect: Callable[[str | None], None] | None = None

    @property
    def is_up(self) -> bool:
        return self.state == "Up"

    def json(self) -> Json:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": self.protocol_id,
            "caller": self.caller.json(),
            "connected": self.connected.json(),
            "accountcode": "",
            "dialplan": {
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
                "app_name": self.app_name,
                "app_data": self.app_data,
            },
            "creationtime": self.creationtime,
            "language": self.language,
        }

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "simulated channel %s: task failed",
                self.name,
                exc_info=task.exception(),
                extra={"channel_id": self.id},
            )

    # ----- audio routing -----
    def write(self, frame: bytes) -> None:
        """Audio towards this channel's device (or out of the other Local half)."""
        if self.destroyed or self.mute_out:
            return
        for tap in self.out_taps:
            tap(frame)
        if self.peer is not None:
            if not self.peer.destroyed:
                self.peer.receive(frame)
        elif self.device_write is not None:
            self.tx_frames += 1
            self.device_write(frame)

    def receive(self, frame: bytes) -> None:
        """Audio read from this channel (from its device or the other Local half)."""
        if self.destroyed or self.mute_in:
            return
        if self.peer is None:
            self.rx_frames += 1
        self.voice.set()
        for tap in self.taps:
            tap(frame)
        if self.consumer is not None:
            self.consumer(frame)


@dataclass(eq=False)
class Bridge:
    id: str
    bridge_type: str  # mixing | holding
    bridge_class: str = "stasis"  # stasis | basic
    name: str = ""
    creator: str = "Stasis"
    creationtime: str = field(default_factory=ari_time)
    channels: list[Channel] = field(default_factory=list)
    video_mode: str = "talker"
    moh_class: str | None = None
    app: str | None = None
    apps: set[str] = field(default_factory=set)  # applications subscribed to this bridge
    announcers: set[str] = field(default_factory=set)  # holding bridge: heard by participants
    destroyed: bool = False
    mixer: Any = None  # operadora.sim.bridging.Mixer
    stoppers: list[Callable[[], None]] = field(default_factory=list)  # bridge playback / MOH
    dissolved: asyncio.Event = field(default_factory=asyncio.Event)
    moh_source: Callable[[], bytes | None] | None = None

    @property
    def technology(self) -> str:
        if self.bridge_type == "holding":
            return "holding_bridge"
        return "softmix" if len(self.channels) > 2 else "simple_bridge"

    def json(self) -> Json:
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": self.bridge_class,
            "creator": self.creator,
            "name": self.name,
            "channels": [c.id for c in self.channels],
            "creationtime": self.creationtime,
            "video_mode": self.video_mode,
        }


@dataclass(eq=False)
class Playback:
    id: str
    media_uri: str
    target_uri: str
    language: str = "en"
    state: str = "queued"
    task: asyncio.Task[Any] | None = None
    stop_state: str = "done"
    position: int = 0  # next 20 ms frame of the current media
    skip_frames: int = 150  # reverse/forward step (skipms, default 3000 ms)
    running: asyncio.Event = field(default_factory=asyncio.Event)  # cleared while paused

    def __post_init__(self) -> None:
        self.running.set()

    def json(self) -> Json:
        return {
            "id": self.id,
            "media_uri": self.media_uri,
            "target_uri": self.target_uri,
            "language": self.language,
            "state": self.state,
        }


@dataclass(eq=False)
class LiveRecording:
    name: str
    format: str
    target_uri: str
    state: str = "queued"
    duration: int = 0
    talking_duration: int = 0
    silence_duration: int = 0
    cause: str | None = None
    task: asyncio.Task[Any] | None = None
    data: bytearray = field(default_factory=bytearray)
    started_at: float = 0.0
    detach: Callable[[], object] | None = None

    def json(self) -> Json:
        out: Json = {
            "name": self.name,
            "format": self.format,
            "state": self.state,
            "target_uri": self.target_uri,
        }
        if self.state in ("done", "failed", "canceled"):
            out["duration"] = self.duration
        if self.cause:
            out["cause"] = self.cause
        return out
