"""Every ARI operation Operadora calls, declared once.

The client can only send what is declared here, and ``tests/ari/test_swagger_conformance.py``
checks each entry (path, method, nickname, parameter names, places and types, response model)
against the Swagger documents of Asterisk 22, so a typo or a renamed parameter fails a test
rather than a call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    data_type: str = "string"  # Swagger dataType: string, int, long, boolean
    where: str = "query"  # Swagger paramType: path | query
    multiple: bool = False  # allowMultiple: a list sent comma-separated


@dataclass(frozen=True, slots=True)
class Operation:
    resource: str  # the Swagger file: channels, bridges, ...
    nickname: str
    method: str
    path: str  # relative to the ARI base URL, with {placeholders}
    params: tuple[Param, ...] = ()
    response: str = "void"  # Swagger responseClass
    idempotent: bool = False  # safe to repeat after a 5xx or a timeout (the client retries)

    def param(self, name: str) -> Param | None:
        for param in self.params:
            if param.name == name:
                return param
        return None


def _path(name: str) -> Param:
    return Param(name, where="path")


CH = _path("channelId")
BR = _path("bridgeId")

ASTERISK_INFO = Operation(
    "asterisk",
    "getInfo",
    "GET",
    "/asterisk/info",
    (Param("only", multiple=True),),
    "AsteriskInfo",
    idempotent=True,
)
APPLICATION_GET = Operation(
    "applications",
    "get",
    "GET",
    "/applications/{applicationName}",
    (_path("applicationName"),),
    "Application",
    idempotent=True,
)
CHANNELS_LIST = Operation("channels", "list", "GET", "/channels", (), "List[Channel]", True)
CHANNEL_GET = Operation("channels", "get", "GET", "/channels/{channelId}", (CH,), "Channel", True)
CHANNEL_ORIGINATE = Operation(
    "channels",
    "originate",
    "POST",
    "/channels",
    (
        Param("endpoint"),
        Param("extension"),
        Param("context"),
        Param("priority", "long"),
        Param("app"),
        Param("appArgs"),
        Param("callerId"),
        Param("timeout", "int"),
        Param("channelId"),
        Param("otherChannelId"),
    ),
    "Channel",
)
CHANNEL_HANGUP = Operation(
    "channels",
    "hangup",
    "DELETE",
    "/channels/{channelId}",
    (CH, Param("reason")),
    idempotent=True,
)
CHANNEL_ANSWER = Operation(
    "channels", "answer", "POST", "/channels/{channelId}/answer", (CH,), idempotent=True
)
CHANNEL_RING = Operation(
    "channels", "ring", "POST", "/channels/{channelId}/ring", (CH,), idempotent=True
)
CHANNEL_CONTINUE = Operation(
    "channels",
    "continueInDialplan",
    "POST",
    "/channels/{channelId}/continue",
    (CH, Param("context"), Param("extension"), Param("priority", "int"), Param("label")),
)
CHANNEL_REDIRECT = Operation(
    "channels", "redirect", "POST", "/channels/{channelId}/redirect", (CH, Param("endpoint"))
)
CHANNEL_EXTERNAL_MEDIA = Operation(
    "channels",
    "externalMedia",
    "POST",
    "/channels/externalMedia",
    (
        Param("channelId"),
        Param("app"),
        Param("external_host"),
        Param("encapsulation"),
        Param("transport"),
        Param("format"),
        Param("direction"),
        Param("data"),
    ),
    "Channel",
    idempotent=True,  # we always pass channelId: a repeat cannot make a second channel
)
CHANNEL_GET_VAR = Operation(
    "channels",
    "getChannelVar",
    "GET",
    "/channels/{channelId}/variable",
    (CH, Param("variable")),
    "Variable",
    True,
)
CHANNEL_SET_VAR = Operation(
    "channels",
    "setChannelVar",
    "POST",
    "/channels/{channelId}/variable",
    (CH, Param("variable"), Param("value")),
    idempotent=True,
)
CHANNEL_PLAY = Operation(
    "channels",
    "play",
    "POST",
    "/channels/{channelId}/play",
    (CH, Param("media", multiple=True), Param("lang"), Param("playbackId")),
    "Playback",
)
CHANNEL_SEND_DTMF = Operation(
    "channels",
    "sendDTMF",
    "POST",
    "/channels/{channelId}/dtmf",
    (CH, Param("dtmf"), Param("duration", "int")),
)
CHANNEL_START_MOH = Operation(
    "channels",
    "startMoh",
    "POST",
    "/channels/{channelId}/moh",
    (CH, Param("mohClass")),
    idempotent=True,
)
CHANNEL_STOP_MOH = Operation(
    "channels", "stopMoh", "DELETE", "/channels/{channelId}/moh", (CH,), idempotent=True
)
CHANNEL_TRANSFER_PROGRESS = Operation(
    "channels",
    "transfer_progress",
    "POST",
    "/channels/{channelId}/transfer_progress",
    (CH, Param("states")),
)
BRIDGES_LIST = Operation("bridges", "list", "GET", "/bridges", (), "List[Bridge]", True)
BRIDGE_CREATE = Operation(
    "bridges",
    "create",
    "POST",
    "/bridges",
    (Param("type"), Param("bridgeId"), Param("name")),
    "Bridge",
    idempotent=True,  # we always pass bridgeId: a repeat cannot make a second bridge
)
BRIDGE_GET = Operation("bridges", "get", "GET", "/bridges/{bridgeId}", (BR,), "Bridge", True)
BRIDGE_DESTROY = Operation(
    "bridges", "destroy", "DELETE", "/bridges/{bridgeId}", (BR,), idempotent=True
)
BRIDGE_ADD_CHANNEL = Operation(
    "bridges",
    "addChannel",
    "POST",
    "/bridges/{bridgeId}/addChannel",
    (BR, Param("channel", multiple=True), Param("role")),
    idempotent=True,
)
BRIDGE_REMOVE_CHANNEL = Operation(
    "bridges",
    "removeChannel",
    "POST",
    "/bridges/{bridgeId}/removeChannel",
    (BR, Param("channel", multiple=True)),
    idempotent=True,
)
BRIDGE_RECORD = Operation(
    "bridges",
    "record",
    "POST",
    "/bridges/{bridgeId}/record",
    (BR, Param("name"), Param("format"), Param("ifExists"), Param("maxDurationSeconds", "int")),
    "LiveRecording",
)
BRIDGE_START_MOH = Operation(
    "bridges",
    "startMoh",
    "POST",
    "/bridges/{bridgeId}/moh",
    (BR, Param("mohClass")),
    idempotent=True,
)
BRIDGE_STOP_MOH = Operation(
    "bridges", "stopMoh", "DELETE", "/bridges/{bridgeId}/moh", (BR,), idempotent=True
)
PLAYBACK_STOP = Operation(
    "playbacks",
    "stop",
    "DELETE",
    "/playbacks/{playbackId}",
    (_path("playbackId"),),
    idempotent=True,
)
ENDPOINTS_LIST = Operation("endpoints", "list", "GET", "/endpoints", (), "List[Endpoint]", True)
ENDPOINT_GET = Operation(
    "endpoints",
    "get",
    "GET",
    "/endpoints/{tech}/{resource}",
    (_path("tech"), _path("resource")),
    "Endpoint",
    True,
)

OPERATIONS: tuple[Operation, ...] = tuple(
    value for value in dict(globals()).values() if isinstance(value, Operation)
)
