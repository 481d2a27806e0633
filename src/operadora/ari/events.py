"""ARI events as typed models, and the pure JSON → event parser.

Every event Operadora handles has a class here named as in ``events.json``; anything else
parses to :class:`UnknownEvent` so a new Asterisk event type never breaks the stream.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, ValidationError

from operadora.ari.models import (
    AriModel,
    Bridge,
    Channel,
    Date,
    LiveRecording,
    Playback,
    ReferredBy,
    ReferTo,
)


class AriEventError(ValueError):
    """A WebSocket message that is not a well-formed ARI event."""


class AriEvent(AriModel):
    """Fields every ARI event carries (``Message`` and ``Event`` in the Swagger)."""

    ari_model: ClassVar[str] = "Event"
    type: str
    timestamp: Date = ""
    application: str = ""
    asterisk_id: str | None = None

    def channel_ids(self) -> tuple[str, ...]:
        """Ids of the channels this event is about (for routing)."""
        return ()


class _ChannelEvent(AriEvent):
    channel: Channel

    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel.id,)


class StasisStart(_ChannelEvent):
    ari_model: ClassVar[str] = "StasisStart"
    args: list[str] = Field(default_factory=list)
    replace_channel: Channel | None = None


class StasisEnd(_ChannelEvent):
    ari_model: ClassVar[str] = "StasisEnd"


class ChannelCreated(_ChannelEvent):
    ari_model: ClassVar[str] = "ChannelCreated"


class ChannelStateChange(_ChannelEvent):
    ari_model: ClassVar[str] = "ChannelStateChange"


class ChannelDtmfReceived(_ChannelEvent):
    ari_model: ClassVar[str] = "ChannelDtmfReceived"
    digit: str
    duration_ms: int = 0


class ChannelHangupRequest(_ChannelEvent):
    ari_model: ClassVar[str] = "ChannelHangupRequest"
    cause: int | None = None
    soft: bool | None = None


class ChannelDestroyed(_ChannelEvent):
    ari_model: ClassVar[str] = "ChannelDestroyed"
    cause: int = 0
    cause_txt: str = ""


class ChannelEnteredBridge(AriEvent):
    ari_model: ClassVar[str] = "ChannelEnteredBridge"
    bridge: Bridge
    channel: Channel | None = None

    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel.id,) if self.channel else ()


class ChannelLeftBridge(_ChannelEvent):
    ari_model: ClassVar[str] = "ChannelLeftBridge"
    bridge: Bridge


class ChannelVarset(AriEvent):
    ari_model: ClassVar[str] = "ChannelVarset"
    variable: str
    value: str = ""
    channel: Channel | None = None

    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel.id,) if self.channel else ()


class PlaybackStarted(AriEvent):
    ari_model: ClassVar[str] = "PlaybackStarted"
    playback: Playback


class PlaybackFinished(AriEvent):
    ari_model: ClassVar[str] = "PlaybackFinished"
    playback: Playback


class RecordingStarted(AriEvent):
    ari_model: ClassVar[str] = "RecordingStarted"
    recording: LiveRecording


class RecordingFinished(AriEvent):
    ari_model: ClassVar[str] = "RecordingFinished"
    recording: LiveRecording


class RecordingFailed(AriEvent):
    ari_model: ClassVar[str] = "RecordingFailed"
    recording: LiveRecording


class BridgeCreated(AriEvent):
    ari_model: ClassVar[str] = "BridgeCreated"
    bridge: Bridge


class BridgeDestroyed(AriEvent):
    ari_model: ClassVar[str] = "BridgeDestroyed"
    bridge: Bridge


class ChannelTransfer(AriEvent):
    ari_model: ClassVar[str] = "ChannelTransfer"
    state: str | None = None
    refer_to: ReferTo
    referred_by: ReferredBy

    def channel_ids(self) -> tuple[str, ...]:
        return (self.referred_by.source_channel.id,)


class BridgeBlindTransfer(_ChannelEvent):
    ari_model: ClassVar[str] = "BridgeBlindTransfer"
    replace_channel: Channel | None = None
    transferee: Channel | None = None
    exten: str = ""
    context: str = ""
    result: str = ""
    is_external: bool = False
    bridge: Bridge | None = None


class BridgeAttendedTransfer(AriEvent):
    ari_model: ClassVar[str] = "BridgeAttendedTransfer"
    transferer_first_leg: Channel
    transferer_second_leg: Channel
    replace_channel: Channel | None = None
    transferee: Channel | None = None
    transfer_target: Channel | None = None
    result: str = ""
    is_external: bool = False
    destination_type: str = ""
    destination_bridge: str | None = None

    def channel_ids(self) -> tuple[str, ...]:
        return (self.transferer_first_leg.id, self.transferer_second_leg.id)


class Dial(AriEvent):
    ari_model: ClassVar[str] = "Dial"
    caller: Channel | None = None
    peer: Channel
    forward: str | None = None
    dialstring: str | None = None
    dialstatus: str = ""

    def channel_ids(self) -> tuple[str, ...]:
        return (self.peer.id,)


class ApplicationMoveFailed(_ChannelEvent):
    ari_model: ClassVar[str] = "ApplicationMoveFailed"
    destination: str = ""
    args: list[str] = Field(default_factory=list)


class UnknownEvent(AriEvent):
    """An event type Operadora does not handle; kept so it can be logged and counted."""

    ari_model: ClassVar[str] = ""


HANDLED_EVENTS: tuple[type[AriEvent], ...] = (
    StasisStart,
    StasisEnd,
    ChannelCreated,
    ChannelStateChange,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelDestroyed,
    ChannelEnteredBridge,
    ChannelLeftBridge,
    ChannelVarset,
    PlaybackStarted,
    PlaybackFinished,
    RecordingStarted,
    RecordingFinished,
    RecordingFailed,
    BridgeCreated,
    BridgeDestroyed,
    ChannelTransfer,
    BridgeBlindTransfer,
    BridgeAttendedTransfer,
    Dial,
    ApplicationMoveFailed,
)

_BY_TYPE: dict[str, type[AriEvent]] = {cls.ari_model: cls for cls in HANDLED_EVENTS}


def parse_event(data: dict[str, Any]) -> AriEvent:
    """Turn one decoded ARI event object into its typed model."""
    kind = data.get("type")
    if not isinstance(kind, str):
        raise AriEventError("ARI message without a 'type'")
    cls = _BY_TYPE.get(kind, UnknownEvent)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise AriEventError(f"malformed {kind} event: {exc.error_count()} error(s)") from exc


def parse_message(text: str | bytes) -> AriEvent:
    """Parse one WebSocket text message."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AriEventError("ARI message is not JSON") from exc
    if not isinstance(data, dict):
        raise AriEventError("ARI message is not a JSON object")
    return parse_event(data)
