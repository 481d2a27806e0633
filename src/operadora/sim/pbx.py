"""The simulated Asterisk core: channels, Local channel pairs, Stasis, answer and hang-up.

Event sequences follow ``../shared/asterisk/ari-traces``: e.g. a hang-up through ARI is
``ChannelHangupRequest`` (soft, 32) -> ``PlaybackFinished failed`` -> ``ChannelLeftBridge`` ->
``StasisEnd`` -> ``ChannelVarset STASISSTATUS`` -> (channel running a dialplan: another soft
``ChannelHangupRequest``) -> the other Local half's ``ChannelHangupRequest`` ->
``ChannelDestroyed`` (cause 16, "Normal Clearing"), then the other half is torn down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from operadora.sim import bridging, playback
from operadora.sim.dialplan.plan import Dialplan
from operadora.sim.dialplan.queues import QueueConfig
from operadora.sim.endpoints import EndpointRegistry
from operadora.sim.hub import EventHub
from operadora.sim.model import (
    CAUSE_TEXT,
    PRESENTATION,
    Bridge,
    Channel,
    LiveRecording,
    Party,
    Playback,
)

if TYPE_CHECKING:
    from operadora.sim.lines import DialHandler

log = logging.getLogger(__name__)


class PbxError(Exception):
    """A request the simulated Asterisk refuses: HTTP status and Asterisk's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class PbxConfig:
    dialplan: Dialplan
    queues: dict[str, QueueConfig]
    moh_classes: set[str]
    sounds_dir: Path
    globals: dict[str, str] = field(default_factory=dict)


class Pbx:
    def __init__(self, config: PbxConfig, endpoints: EndpointRegistry) -> None:
        self.config = config
        self.endpoints = endpoints
        self.hub = EventHub()
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.playbacks: dict[str, Playback] = {}
        self.recordings: dict[str, LiveRecording] = {}
        self.stored_recordings: dict[str, bytes] = {}
        self._name_counter = itertools.count(0)
        self._id_counter = itertools.count(1)
        self._epoch = int(time.time())
        self.dial_handler: DialHandler | None = None
        self.started_at = time.time()
        self.user_agent = "Operadora PBX simulator"  # pjsip.conf [global] user_agent

    # ----- identities -----
    def new_id(self) -> str:
        return f"{self._epoch}.{next(self._id_counter)}"

    def next_counter(self) -> str:
        return f"{next(self._name_counter):08x}"

    def emit(self, event_type: str, /, **fields: Any) -> None:
        self.hub.emit(event_type, **fields)

    def check_id_free(self, *ids: str | None) -> None:
        for cid in ids:
            if cid and cid in self.channels:
                raise PbxError(409, "Channel with given unique ID already exists")

    def new_channel(
        self,
        name: str,
        technology: str,
        *,
        channel_id: str | None = None,
        state: str = "Down",
        context: str = "default",
        exten: str = "s",
        priority: int = 1,
    ) -> Channel:
        ch = Channel(
            id=channel_id or self.new_id(),
            name=name,
            technology=technology,
            state=state,
            context=context,
            exten=exten,
            priority=priority,
        )
        self.channels[ch.id] = ch
        log.debug("channel created: %s", name, extra={"channel_id": ch.id})
        return ch

    def channel(self, channel_id: str) -> Channel:
        ch = self.channels.get(channel_id)
        if ch is None or ch.destroyed:
            raise PbxError(404, "Channel not found")
        return ch

    def stasis_channel(self, channel_id: str) -> Channel:
        ch = self.channel(channel_id)
        if ch.stasis_app is None:
            raise PbxError(409, "Channel not in Stasis application")
        return ch

    # ----- Local channels -----
    def create_local_pair(
        self,
        resource: str,
        *,
        id1: str | None = None,
        id2: str | None = None,
        caller: Party | None = None,
    ) -> tuple[Channel, Channel]:
        """``Local/<exten>@<context>[/n]``: ;1 (Down) and ;2 (Ring, runs the dialplan)."""
        target = resource.split("/", 1)[0]
        exten, _, context = target.partition("@")
        context = context or "default"
        counter = self.next_counter()
        one = self.new_channel(
            f"Local/{target}-{counter};1", "Local", channel_id=id1, context=context, exten=exten
        )
        two = self.new_channel(
            f"Local/{target}-{counter};2",
            "Local",
            channel_id=id2,
            state="Ring",
            context=context,
            exten=exten,
        )
        one.peer, two.peer = two, one
        two.pbx = True
        self.emit("ChannelCreated", channel=one)
        self.emit("ChannelCreated", channel=two)
        return one, two

    def set_caller_ids(self, one: Channel, two: Channel, caller: Party) -> None:
        """Caller ID given at originate: events on both halves, as Asterisk sends them."""
        one.caller = Party(caller.name, caller.number)
        self.emit("ChannelCallerId", channel=one, **PRESENTATION)
        one.connected = Party(caller.name, caller.number)
        self.emit("ChannelConnectedLine", channel=one)
        two.caller = Party(caller.name, caller.number)
        two.connected = Party(caller.name, caller.number)
        self.emit("ChannelCallerId", channel=two, **PRESENTATION)
        self.emit("ChannelConnectedLine", channel=two)

    # ----- state -----
    def set_state(self, ch: Channel, state: str) -> None:
        if ch.state == state or ch.destroyed:
            return
        ch.state = state
        self.emit("ChannelStateChange", channel=ch)

    def answer(self, ch: Channel) -> None:
        """Answer ``ch``; for a Local half the other half comes up too (its dial is answered)."""
        if ch.state == "Up":
            return
        self.set_state(ch, "Up")
        ch.answered.set()
        peer = ch.peer
        if peer is not None and not peer.destroyed and peer.state != "Up":
            self.set_state(peer, "Up")
            peer.answered.set()
            if peer.on_answer is not None:
                callback, peer.on_answer = peer.on_answer, None
                callback()
        if ch.on_answer is not None:
            callback, ch.on_answer = ch.on_answer, None
            callback()

    def ring(self, ch: Channel) -> None:
        peer = ch.peer
        if peer is not None and not peer.destroyed and peer.state not in ("Up", "Ringing"):
            self.set_state(peer, "Ringing")
            if peer.on_ringing is not None:
                peer.on_ringing()

    # ----- Stasis -----
    def enter_stasis(
        self, ch: Channel, app: str, args: list[str], *, replace_channel: Channel | None = None
    ) -> None:
        ch.app_name = "Stasis"
        ch.app_data = ",".join([app, *args])
        ch.stasis_app = app
        ch.stasis_args = list(args)
        ch.apps.add(app)
        ch.variables["STASISSTATUS"] = ""
        self.emit("ChannelVarset", channel=ch, variable="STASISSTATUS", value="")
        extra = {"replace_channel": replace_channel} if replace_channel is not None else {}
        self.emit("StasisStart", channel=ch, args=list(args), **extra)

    def leave_stasis(self, ch: Channel) -> None:
        if ch.stasis_app is None:
            return
        self.emit("StasisEnd", channel=ch)
        app = ch.stasis_app
        ch.stasis_app = None
        ch.variables["STASISSTATUS"] = "SUCCESS"
        self.emit("ChannelVarset", channel=ch, variable="STASISSTATUS", value="SUCCESS")
        if not ch.hanging_up:  # it left the app alive (continue): the app stops following it
            ch.apps.discard(app)
        if ch.stasis_done is not None and not ch.stasis_done.done():
            ch.stasis_done.set_result(None)

    def set_variable(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value
        self.emit("ChannelVarset", channel=ch, variable=name, value=value)

    # ----- connected line -----
    def update_connected(self, ch: Channel, party: Party) -> None:
        if ch.connected.number == party.number and ch.connected.name == party.name:
            return
        ch.connected = Party(party.name, party.number)
        self.emit("ChannelConnectedLine", channel=ch)
        peer = ch.peer
        if peer is not None and not peer.destroyed:
            peer.pending_caller = Party(party.name, party.number)
            if not peer.defer_frames:
                self.flush_caller(peer)

    def flush_caller(self, ch: Channel) -> None:
        if self.apply_pending_caller(ch):
            self.emit("ChannelCallerId", channel=ch, **PRESENTATION)

    def apply_pending_caller(self, ch: Channel) -> bool:
        """Read a queued connected-line frame: the caller changes (its event comes after the
        channel's next event, as Asterisk publishes them)."""
        party = ch.pending_caller
        if party is None or ch.destroyed:
            return False
        ch.pending_caller = None
        if ch.caller.number == party.number and ch.caller.name == party.name:
            return False
        ch.caller = party
        return True

    # ----- DTMF -----
    def send_dtmf(self, ch: Channel, digit: str, duration_ms: int) -> None:
        """A digit written to ``ch``: the other Local half or the device receives it."""
        if ch.destroyed:
            return
        if ch.peer is not None:
            self.receive_dtmf(ch.peer, digit, duration_ms)
        elif ch.device_dtmf is not None:
            ch.device_dtmf(digit, duration_ms)

    def receive_dtmf(self, ch: Channel, digit: str, duration_ms: int) -> None:
        """A digit read from ``ch`` (its device pressed it)."""
        if ch.destroyed:
            return
        self.emit("ChannelDtmfReceived", channel=ch, digit=digit, duration_ms=duration_ms)
        if ch.dtmf_consumer is not None:
            ch.dtmf_consumer(digit, duration_ms)

    # ----- hang-up -----
    async def ari_hangup(self, ch: Channel, cause: int) -> None:
        """``DELETE /channels/{id}``: soft hang-up; queued controls (DTMF) still run."""
        if ch.hanging_up:
            return
        ch.hanging_up = True
        if ch.before_hangup is not None:
            ch.before_hangup()
        self.emit("ChannelHangupRequest", channel=ch, cause=32, soft=True)
        running = ch.control_task
        playback.stop_channel_playbacks(self, ch, "failed")
        if running is not None and not running.done():
            running.cancel()
        if ch.pending_controls:
            ch.controls_drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ch.controls_drained.wait(), timeout=10)
            await asyncio.sleep(0.1)
        self.terminate(ch, cause)

    def hangup_from_device(self, ch: Channel, cause: int = 16) -> None:
        """The device (phone, AudioSocket server) hung up."""
        if ch.hanging_up or ch.destroyed:
            return
        ch.hanging_up = True
        self.emit("ChannelHangupRequest", channel=ch, cause=cause)
        self.terminate(ch, cause)

    def terminate(self, ch: Channel, cause: int) -> None:
        """Tear ``ch`` down (synchronously, in Asterisk's event order), then its Local peer."""
        if ch.destroyed or ch.terminating:
            return
        ch.terminating = True
        ch.hanging_up = True
        ch.hangup_cause = cause
        current = asyncio.current_task()
        for task in list(ch.tasks):
            if task is not current:
                task.cancel()
        playback.stop_channel_playbacks(self, ch, "failed")
        playback.stop_moh(ch)
        if ch.bridge is not None:
            bridging.remove_channel(self, ch.bridge, ch)
        self.leave_stasis(ch)
        if ch.pbx:
            self.emit("ChannelHangupRequest", channel=ch, cause=cause or 16, soft=True)
        peer = ch.peer
        peer_alive = peer is not None and not peer.destroyed and not peer.hanging_up
        if peer_alive and peer is not None:
            peer.hanging_up = True
            self.emit("ChannelHangupRequest", channel=peer, cause=cause)
        unanswered = ch.on_unanswered_end
        ch.on_unanswered_end = None
        if unanswered is not None and ch.state != "Up":
            unanswered(cause)  # Dial BUSY/CONGESTION/...: after the request, before destroy
        late_caller = self.apply_pending_caller(ch)
        ch.destroyed = True
        ch.consumer = None
        ch.dtmf_consumer = None
        extra = {"tech_cause": ch.tech_cause} if ch.tech_cause is not None else {}
        self.emit("ChannelDestroyed", channel=ch, cause=cause, cause_txt=cause_text(cause), **extra)
        if late_caller:
            self.emit("ChannelCallerId", channel=ch, **PRESENTATION)
        self.channels.pop(ch.id, None)
        log.debug(
            "channel destroyed: %s cause %s",
            ch.name,
            cause,
            extra={"channel_id": ch.id, "cause": cause},
        )
        if ch.close_device is not None:
            ch.close_device()
        if ch.device_events is not None:
            with contextlib.suppress(Exception):
                ch.device_events.ended(cause, cause_text(cause))
        ch.ended.set()
        ch.voice.set()
        ch.answered.set()
        if peer_alive and peer is not None:
            self.terminate(peer, cause)

    async def close(self) -> None:
        for ch in list(self.channels.values()):
            with contextlib.suppress(Exception):
                self.terminate(ch, 16)
        for br in list(self.bridges.values()):
            bridging.destroy_bridge(self, br)
        await asyncio.sleep(0)

    def new_uuid(self) -> str:
        return str(uuid.uuid4())


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")
