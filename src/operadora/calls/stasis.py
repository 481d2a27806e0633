"""Routes one Asterisk server's ARI events to call control.

The router runs synchronously inside the WebSocket reader: it decides which call an event
belongs to, registers new calls at once (so a duplicated StasisStart cannot create two),
and hands the work to a task that takes the call's lock. Events for unknown channels, for
our own media legs, and repeats of what already happened are counted and dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from operadora.ari.events import (
    AriEvent,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
    StasisEnd,
    StasisStart,
)
from operadora.calls.actions import EngineCallActions
from operadora.calls.services import CallService

log = logging.getLogger(__name__)


# First StasisStart arg of the channels Operadora originates itself (consult legs,
# callbacks): they are not inbound calls, the component that made them handles them.
INTERNAL_ARG = "operadora"
OtherStasisStart = Callable[[StasisStart], None]


def did_of(event: StasisStart) -> str:
    """The number the caller dialled: ``Stasis(app,inbound,${EXTEN})`` args, else the exten."""
    args = event.args
    if len(args) >= 2 and args[0] == "inbound" and args[1]:
        return args[1]
    variables = event.channel.channelvars or {}
    for name in ("OPERADORA_DID", "DID"):
        if isinstance(variables.get(name), str) and variables[name]:
            return str(variables[name])
    return event.channel.dialplan.exten


class StasisRouter:
    """One per ARI connection (server)."""

    # the ARI event types this router acts on (the stream skips the others unparsed)
    wanted: frozenset[str] = frozenset(
        cls.ari_model
        for cls in (
            StasisStart,
            StasisEnd,
            ChannelDestroyed,
            ChannelDtmfReceived,
            ChannelHangupRequest,
            PlaybackFinished,
            RecordingFinished,
            RecordingFailed,
        )
    )

    def __init__(
        self,
        service: CallService,
        server: str,
        actions: EngineCallActions | None = None,
        *,
        others: OtherStasisStart | None = None,
        app: str | None = None,
    ) -> None:
        self.service = service
        self.server = server
        self.app = app  # our Stasis application: others' StasisStart (subscribeAll) is not ours
        self.actions = actions
        self.others = others  # gets StasisStart of channels that are not new inbound calls
        self.ignored: Counter[str] = Counter()

    def __call__(self, event: AriEvent) -> None:
        match event:
            case StasisStart():
                self._stasis_start(event)
            case StasisEnd():
                self._stasis_end(event)
            case ChannelDestroyed():
                self._destroyed(event)
            case ChannelDtmfReceived():
                call = self.service.call_for_channel(self.server, event.channel.id)
                if call is not None and call.channel_id == event.channel.id:
                    self.service.dtmf(call, event.digit)
                else:
                    self.ignored["dtmf"] += 1
            case ChannelHangupRequest():
                # a device's hang-up carries its Q.850 cause here (soft ones carry a flag);
                # kept in case ChannelDestroyed never reaches us (subscribeAll off)
                call = self.service.call_for_channel(self.server, event.channel.id)
                if call is not None and not event.soft and event.cause:
                    if call.channel_id == event.channel.id:
                        call.hangup_request_cause = event.cause
            case PlaybackFinished():
                if not self.service.playback_finished(event.playback.id):
                    self.ignored["playback"] += 1
            case RecordingFinished() | RecordingFailed():
                if self.actions is not None:
                    self.actions.recording_ended(
                        event.recording, isinstance(event, RecordingFailed)
                    )
            case _:
                pass

    def _stasis_start(self, event: StasisStart) -> None:
        channel = event.channel
        service = self.service
        plan = channel.dialplan
        if self.app and plan.app_name == "Stasis" and plan.app_data.split(",")[0] != self.app:
            self.ignored["another application"] += 1
            return
        if (
            service.is_media_channel(self.server, channel.id)
            or channel.name.startswith("AudioSocket/")
            or (event.args and service.is_call_id(event.args[0]))
        ):
            return  # our own externalMedia leg entering the application (args: [call uuid])
        if service.call_for_channel(self.server, channel.id) or service.has_ended(
            self.server, channel.id
        ):
            self.ignored["duplicate StasisStart"] += 1
            log.debug("ignored a repeated StasisStart for %s", channel.id)
            return
        if event.replace_channel is not None or (event.args and event.args[0] == INTERNAL_ARG):
            # a transfer's replacement channel (trace e3) or a leg we originated ourselves
            self.ignored["not an inbound call"] += 1
            if self.others is not None:
                self.others(event)
            return
        call = service.arrive(
            self.server,
            channel.id,
            caller_id=channel.caller.number,
            caller_name=channel.caller.name,
            did=did_of(event),
            args=event.args,
            variables=channel.channelvars,
        )
        log.info(
            "call %s arrived on %s: channel %s from %r to %r",
            call.call_id,
            self.server,
            channel.id,
            channel.caller.number,
            call.context.did,
            extra={"call_id": call.call_id, "channel_id": channel.id},
        )
        service.spawn(service.admit(call), name=f"setup-{call.call_id}")

    def _stasis_end(self, event: StasisEnd) -> None:
        call = self.service.call_for_channel(self.server, event.channel.id)
        if call is None:
            self.ignored["unknown channel"] += 1
            return
        if event.channel.id == call.channel_id:
            self.service.spawn(self.service.caller_left(call), name=f"left-{call.call_id}")
        else:
            self.service.spawn(self.service.media_leg_gone(call), name=f"media-{call.call_id}")

    def _destroyed(self, event: ChannelDestroyed) -> None:
        call = self.service.call_for_channel(self.server, event.channel.id)
        if call is None:
            self.ignored["unknown channel"] += 1
            return
        if event.channel.id == call.channel_id:
            self.service.spawn(
                self.service.caller_destroyed(call, event.cause, event.cause_txt),
                name=f"destroyed-{call.call_id}",
            )
        else:
            self.service.spawn(self.service.media_leg_gone(call), name=f"media-{call.call_id}")
