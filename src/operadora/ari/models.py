"""Typed ARI resources and events (the subset Operadora reads), parsed from ARI JSON.

Field names and types follow the Swagger documents of Asterisk 22 (``ari-api-docs``);
``tests/ari/test_swagger_conformance.py`` checks every field here against them. Fields that
Asterisk marks required are still given defaults where a real trace showed them missing, so
one odd event never breaks the stream.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class AriType:
    """Marks a field whose Swagger type differs from the Python one (``Date``, ``long``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"AriType({self.name!r})"


Date = Annotated[str, AriType("Date")]
Long = Annotated[int, AriType("long")]


class AriModel(BaseModel):
    """Base of every ARI model: unknown fields are ignored, instances are immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    ari_model: ClassVar[str] = ""  # the Swagger model id


class CallerID(AriModel):
    ari_model: ClassVar[str] = "CallerID"
    name: str = ""
    number: str = ""


class DialplanCEP(AriModel):
    ari_model: ClassVar[str] = "DialplanCEP"
    context: str = ""
    exten: str = ""
    priority: Long = 0
    app_name: str = ""
    app_data: str = ""


class Channel(AriModel):
    ari_model: ClassVar[str] = "Channel"
    id: str
    name: str = ""
    state: str = ""
    protocol_id: str = ""
    caller: CallerID = Field(default_factory=CallerID)
    connected: CallerID = Field(default_factory=CallerID)
    accountcode: str = ""
    dialplan: DialplanCEP = Field(default_factory=DialplanCEP)
    creationtime: Date = ""
    language: str = ""
    channelvars: dict[str, Any] | None = None


class Bridge(AriModel):
    ari_model: ClassVar[str] = "Bridge"
    id: str
    technology: str = ""
    bridge_type: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: list[str] = Field(default_factory=list)
    creationtime: Date = ""


class Endpoint(AriModel):
    ari_model: ClassVar[str] = "Endpoint"
    technology: str
    resource: str
    state: str | None = None
    channel_ids: list[str] = Field(default_factory=list)


class Playback(AriModel):
    ari_model: ClassVar[str] = "Playback"
    id: str
    media_uri: str = ""
    target_uri: str = ""
    language: str | None = None
    state: str = ""


class LiveRecording(AriModel):
    ari_model: ClassVar[str] = "LiveRecording"
    name: str
    format: str = ""
    target_uri: str = ""
    state: str = ""
    duration: int | None = None
    cause: str | None = None


class Variable(AriModel):
    ari_model: ClassVar[str] = "Variable"
    value: str = ""


class RequiredDestination(AriModel):
    ari_model: ClassVar[str] = "RequiredDestination"
    protocol_id: str | None = None
    destination: str | None = None


class ReferTo(AriModel):
    ari_model: ClassVar[str] = "ReferTo"
    requested_destination: RequiredDestination = Field(default_factory=RequiredDestination)
    destination_channel: Channel | None = None
    connected_channel: Channel | None = None
    bridge: Bridge | None = None


class ReferredBy(AriModel):
    ari_model: ClassVar[str] = "ReferredBy"
    source_channel: Channel
    connected_channel: Channel | None = None
    bridge: Bridge | None = None
