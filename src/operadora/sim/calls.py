"""Creating and moving channels: ARI originate, externalMedia, continue, redirect, move, and
inbound calls injected by simulated devices (a caller on ``PJSIP/gateway-fxo-1``)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

from operadora.sim import bridging
from operadora.sim.audiosocket_link import FORMAT_RATE, AudioSocketLink
from operadora.sim.dialplan.dial import attach_audiosocket, cause_dial_status, offer_to_device
from operadora.sim.dialplan.runner import start_dialplan
from operadora.sim.lines import Line
from operadora.sim.model import PRESENTATION, Channel, Json, Party, parse_caller_id
from operadora.sim.pbx import Pbx, PbxError


@dataclass
class Originate:
    endpoint: str
    app: str | None = None
    app_args: str = ""
    context: str | None = None
    extension: str | None = None
    priority: int | None = None
    label: str | None = None
    caller_id: str | None = None
    timeout: float = 30.0
    channel_id: str | None = None
    other_channel_id: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


def _split_args(text: str) -> list[str]:
    return text.split(",") if text else []


def originate(pbx: Pbx, req: Originate) -> Json:
    if not req.endpoint:
        raise PbxError(400, "Endpoint must be specified")
    if not req.app and not req.extension:
        raise PbxError(400, "Application or extension must be specified")
    pbx.check_id_free(req.channel_id, req.other_channel_id)
    tech, _, resource = req.endpoint.partition("/")
    if not resource:
        raise PbxError(400, "Invalid endpoint")
    if tech.lower() == "local":
        one, two = pbx.create_local_pair(resource, id1=req.channel_id, id2=req.other_channel_id)
        dialstring = resource
    else:
        one = pbx.new_channel(
            f"{tech}/{resource.split('/')[0]}-{pbx.next_counter()}", tech, channel_id=req.channel_id
        )
        two = None
        pbx.emit("ChannelCreated", channel=one)
        dialstring = resource
    one.app_name, one.app_data = "AppDial2", "(Outgoing Line)"
    pbx.emit(
        "ChannelDialplan", channel=one, dialplan_app="AppDial2", dialplan_app_data="(Outgoing Line)"
    )
    for name, value in req.variables.items():
        pbx.set_variable(one, name, value)
    if req.caller_id:
        party = parse_caller_id(req.caller_id)
        if two is not None:
            pbx.set_caller_ids(one, two, party)
        else:
            one.caller = Party(party.name, party.number)
            pbx.emit("ChannelCallerId", channel=one, **PRESENTATION)
    pbx.emit("Dial", peer=one, dialstatus="", forward="", dialstring=dialstring)
    snapshot = one.json()

    def answered() -> None:
        pbx.emit("Dial", peer=one, dialstatus="ANSWER", forward="", dialstring=dialstring)
        if req.app:
            pbx.enter_stasis(one, req.app, _split_args(req.app_args))
        else:
            one.pbx = True
            context = req.context or "default"
            extension = req.extension or "s"
            priority = req.priority or 1
            if req.label:
                found = pbx.config.dialplan.label(context, extension, req.label)
                priority = found or priority
            start_dialplan(pbx, one, context, extension, priority)

    def ringing() -> None:
        pbx.emit("Dial", peer=one, dialstatus="RINGING", forward="", dialstring=dialstring)

    def unanswered(cause: int) -> None:  # ast_dial reads the device's hang-up (busy, ...)
        status = cause_dial_status(cause)
        pbx.emit("Dial", peer=one, dialstatus=status, forward="", dialstring=dialstring)

    one.on_answer = answered
    one.on_ringing = ringing
    if two is None:
        one.on_unanswered_end = unanswered
    if two is not None:
        start_dialplan(pbx, two, two.context, two.exten, 1)
    else:
        offer_to_device(pbx, one, f"{tech}/{resource.split('/')[0]}")
    one.spawn(_no_answer(pbx, one, req.timeout))
    return snapshot


async def _no_answer(pbx: Pbx, ch: Channel, ring_s: float) -> None:
    if ring_s <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ch.answered.wait(), ring_s)
    if ch.state != "Up" and not ch.destroyed:
        ch.on_unanswered_end = None
        pbx.emit("Dial", peer=ch, dialstatus="NOANSWER", forward="", dialstring="")
        pbx.hangup_from_device(ch, 19)


async def external_media(
    pbx: Pbx,
    *,
    app: str,
    external_host: str,
    fmt: str,
    encapsulation: str,
    transport: str,
    data: str | None,
    channel_id: str | None,
    variables: dict[str, str],
) -> Json:
    if encapsulation != "audiosocket":
        raise PbxError(501, f"encapsulation '{encapsulation}' is not simulated (use audiosocket)")
    if transport != "tcp":
        raise PbxError(400, "AudioSocket encapsulation requires transport 'tcp'")
    rate = FORMAT_RATE.get(fmt)
    if rate is None:
        raise PbxError(400, f"Format '{fmt}' is not valid for AudioSocket")
    call_uuid = data or str(uuid.uuid4())
    try:
        uuid.UUID(call_uuid)
    except ValueError:
        raise PbxError(400, "AudioSocket data must be a UUID") from None
    pbx.check_id_free(channel_id)
    try:
        link = await AudioSocketLink.connect(external_host, call_uuid, rate)
    except (OSError, TimeoutError, ValueError):
        raise PbxError(500, "Failed to create external media channel") from None
    ch = pbx.new_channel(
        f"AudioSocket/{external_host}-{call_uuid}", "AudioSocket", channel_id=channel_id
    )
    attach_audiosocket(pbx, ch, link)
    pbx.emit("ChannelCreated", channel=ch)
    pbx.set_variable(ch, "AUDIOSOCKET_UUID", call_uuid)
    pbx.set_variable(ch, "AUDIOSOCKET_SERVICE", external_host)
    for name, value in variables.items():
        pbx.set_variable(ch, name, value)
    ch.app_name, ch.app_data = "AppDial2", "(Outgoing Line)"
    pbx.emit(
        "ChannelDialplan", channel=ch, dialplan_app="AppDial2", dialplan_app_data="(Outgoing Line)"
    )
    dialstring = f"{external_host}/{call_uuid}"
    pbx.emit("Dial", peer=ch, dialstatus="", forward="", dialstring=dialstring)
    snapshot = ch.json()
    pbx.answer(ch)
    pbx.emit("Dial", peer=ch, dialstatus="ANSWER", forward="", dialstring=dialstring)
    pbx.enter_stasis(ch, app, [call_uuid])
    return snapshot


def continue_in_dialplan(
    pbx: Pbx,
    ch: Channel,
    context: str | None,
    extension: str | None,
    priority: int | None,
    label: str | None,
) -> None:
    ctx = context or ch.context
    exten = extension or ch.exten
    if priority is None and label is None and context is None and extension is None:
        prio = ch.priority + 1
    else:
        prio = priority or 1
    if label:
        found = pbx.config.dialplan.label(ctx, exten, label)
        if found is None:
            raise PbxError(400, f"Requested label: {label} can not be resolved")
        prio = found
    if ch.bridge is not None:
        bridging.remove_channel(pbx, ch.bridge, ch)
    in_dialplan_stasis = ch.stasis_done is not None and not ch.stasis_done.done()
    ch.continue_to = (ctx, exten, prio)
    pbx.leave_stasis(ch)
    if not in_dialplan_stasis:
        ch.continue_to = None
        start_dialplan(pbx, ch, ctx, exten, prio)


def redirect(pbx: Pbx, ch: Channel, endpoint: str) -> None:
    tech, _, resource = endpoint.partition("/")
    if not tech or not resource:
        raise PbxError(400, "Invalid endpoint")
    if tech.lower() != ch.technology.lower():
        raise PbxError(
            422,
            f"Endpoint technology '{tech}' does not match channel technology '{ch.technology}'",
        )
    if ch.technology != "PJSIP":
        return  # only PJSIP supports transfer: Asterisk answers 204 and does nothing
    if ch.state != "Up":
        ch.tech_cause = 302  # 302 Moved Temporarily to the endpoint's contact (trace e2)
        if ch.device_redirect is not None:
            target = pbx.endpoints.get(tech, resource.split("/", 1)[0])
            ch.device_redirect(target.contact if target is not None else None)
        pbx.hangup_from_device(ch, 23)
    else:
        pbx.hangup_from_device(ch, 16)


def move(pbx: Pbx, ch: Channel, app: str, app_args: str) -> None:
    args = _split_args(app_args)
    if not pbx.hub.registered(app):
        pbx.emit("ApplicationMoveFailed", channel=ch, destination=app, args=args)
        return
    pbx.emit("StasisEnd", channel=ch)
    if ch.stasis_app is not None:
        ch.apps.discard(ch.stasis_app)
    ch.stasis_app = app
    ch.stasis_args = args
    ch.apps.add(app)
    ch.app_data = ",".join([app, *args])
    pbx.emit("StasisStart", channel=ch, args=args)


def inbound_call(
    pbx: Pbx,
    *,
    endpoint: str,
    context: str,
    extension: str,
    caller_id: str = "",
    variables: dict[str, str] | None = None,
) -> Line:
    """A call arrives on a device endpoint (``PJSIP/gateway-fxo-1``) and runs the dialplan."""
    tech, _, resource = endpoint.partition("/")
    if not resource:
        tech, resource = "PJSIP", endpoint
    ch = pbx.new_channel(
        f"{tech}/{resource}-{pbx.next_counter()}",
        tech,
        state="Ring",
        context=context,
        exten=extension,
    )
    party = parse_caller_id(caller_id) if caller_id else Party()
    ch.caller = Party(party.name, party.number)
    ch.pbx = True
    for name, value in (variables or {}).items():
        ch.variables[name] = value
    pbx.emit("ChannelCreated", channel=ch)
    if tech.upper() == "PJSIP":
        pbx.set_variable(ch, "SIPDOMAIN", "127.0.0.1")
    line = Line(pbx, ch, f"{tech}/{resource}")
    start_dialplan(pbx, ch, context, extension, 1)
    return line


def create_channel(pbx: Pbx, req: Originate) -> Json:
    """``POST /channels/create``: the channel exists (and is in the app) but is not dialled."""
    pbx.check_id_free(req.channel_id, req.other_channel_id)
    tech, _, resource = req.endpoint.partition("/")
    if not resource:
        raise PbxError(400, "Invalid endpoint")
    if tech.lower() == "local":
        one, two = pbx.create_local_pair(resource, id1=req.channel_id, id2=req.other_channel_id)
        one.dial_target = two
    else:
        one = pbx.new_channel(
            f"{tech}/{resource.split('/')[0]}-{pbx.next_counter()}", tech, channel_id=req.channel_id
        )
        pbx.emit("ChannelCreated", channel=one)
    one.stasis_app = req.app
    one.stasis_args = _split_args(req.app_args)
    if req.app:
        one.apps.add(req.app)
    one.app_name, one.app_data = "Stasis", ",".join([req.app or "", *one.stasis_args])
    pbx.emit("ChannelVarset", channel=one, variable="STASISSTATUS", value="")
    pbx.emit("StasisStart", channel=one, args=list(one.stasis_args))
    one.dial_endpoint = req.endpoint
    return one.json()


def dial_created(pbx: Pbx, ch: Channel, caller_id: str | None, timeout: float) -> None:
    """``POST /channels/{id}/dial``: ring the endpoint of a created channel."""
    if ch.state == "Up" or ch.dialed or not ch.dial_endpoint:
        raise PbxError(409, "Channel is not in a state to be dialed")
    ch.dialed = True
    caller = pbx.channels.get(caller_id) if caller_id else None
    endpoint = ch.dial_endpoint
    dialstring = endpoint.partition("/")[2]
    event_caller = {"caller": caller} if caller is not None else {}
    pbx.emit("Dial", peer=ch, dialstatus="", forward="", dialstring=dialstring, **event_caller)

    def answered() -> None:
        pbx.emit(
            "Dial", peer=ch, dialstatus="ANSWER", forward="", dialstring=dialstring, **event_caller
        )

    ch.on_answer = answered
    if ch.dial_target is not None:
        start_dialplan(pbx, ch.dial_target, ch.dial_target.context, ch.dial_target.exten, 1)
    else:
        offer_to_device(pbx, ch, endpoint.split("/", 2)[0] + "/" + dialstring.split("/")[0])
    ch.spawn(_no_answer(pbx, ch, timeout))


RTP_STAT_KEYS_INT = (
    "txcount",
    "rxcount",
    "txploss",
    "rxploss",
    "local_ssrc",
    "remote_ssrc",
    "txoctetcount",
    "rxoctetcount",
    "txmes",
    "rxmes",
)
RTP_STAT_KEYS_FLOAT = (
    "txjitter",
    "rxjitter",
    "remote_maxjitter",
    "remote_minjitter",
    "remote_normdevjitter",
    "remote_stdevjitter",
    "local_maxjitter",
    "local_minjitter",
    "local_normdevjitter",
    "local_stdevjitter",
    "remote_maxrxploss",
    "remote_minrxploss",
    "remote_normdevrxploss",
    "remote_stdevrxploss",
    "local_maxrxploss",
    "local_minrxploss",
    "local_normdevrxploss",
    "local_stdevrxploss",
    "rtt",
    "maxrtt",
    "minrtt",
    "normdevrtt",
    "stdevrtt",
    "remote_maxmes",
    "remote_minmes",
    "remote_normdevmes",
    "remote_stdevmes",
    "local_maxmes",
    "local_minmes",
    "local_normdevmes",
    "local_stdevmes",
)


def rtp_statistics(ch: Channel) -> Json:
    """The keys Asterisk reports (trace e1); counts are the packets (a SIP call's RTP) or
    frames (a simulated device) that really flowed."""
    out: Json = {key: 0 for key in RTP_STAT_KEYS_INT}
    out.update(txcount=ch.tx_frames, rxcount=ch.rx_frames)
    out.update(txoctetcount=ch.tx_frames * 160, rxoctetcount=ch.rx_frames * 160)
    out["channel_uniqueid"] = ch.id
    out.update({key: 0.0 for key in RTP_STAT_KEYS_FLOAT})
    if ch.rtp_stats is not None:
        out.update(ch.rtp_stats())
    return out
