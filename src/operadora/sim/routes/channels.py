"""``/ari/channels`` resources."""

from __future__ import annotations

from aiohttp import web

from operadora.sim import calls, playback, snoop, transfer
from operadora.sim.model import REASON_CAUSE, Channel
from operadora.sim.pbx import Pbx, PbxError
from operadora.sim.routes.params import Params, json_response, no_content, pbx_of

routes = web.RouteTableDef()
DTMF_CHARS = set("0123456789ABCD*#,")


def _originate_request(params: Params, channel_id: str | None) -> calls.Originate:
    return calls.Originate(
        endpoint=params.required("endpoint"),
        app=params.get("app"),
        app_args=params.text("appArgs"),
        context=params.get("context"),
        extension=params.get("extension"),
        priority=params.integer("priority"),
        label=params.get("label"),
        caller_id=params.get("callerId"),
        timeout=float(params.integer("timeout", 30) or 0),
        channel_id=channel_id,
        other_channel_id=params.get("otherChannelId"),
        variables=params.variables(),
    )


@routes.get("/ari/channels")
async def list_channels(request: web.Request) -> web.Response:
    pbx = pbx_of(request)
    return json_response([c.json() for c in pbx.channels.values() if not c.destroyed])


@routes.post("/ari/channels")
async def originate(request: web.Request) -> web.Response:
    params = await Params.read(request)
    req = _originate_request(params, params.get("channelId"))
    return json_response(calls.originate(pbx_of(request), req))


@routes.post("/ari/channels/externalMedia")
async def external_media(request: web.Request) -> web.Response:
    params = await Params.read(request)
    body = await calls.external_media(
        pbx_of(request),
        app=params.required("app"),
        external_host=params.required("external_host"),
        fmt=params.required("format"),
        encapsulation=params.text("encapsulation", "rtp"),
        transport=params.text("transport", "udp"),
        data=params.get("data"),
        channel_id=params.get("channelId"),
        variables=params.variables(),
    )
    return json_response(body)


@routes.post("/ari/channels/create")
async def create(request: web.Request) -> web.Response:
    params = await Params.read(request)
    req = calls.Originate(
        endpoint=params.required("endpoint"),
        app=params.required("app"),
        app_args=params.text("appArgs"),
        channel_id=params.get("channelId"),
        other_channel_id=params.get("otherChannelId"),
        variables=params.variables(),
    )
    return json_response(calls.create_channel(pbx_of(request), req))


@routes.get("/ari/channels/{channelId}")
async def get_channel(request: web.Request) -> web.Response:
    ch = pbx_of(request).channel(request.match_info["channelId"])
    return json_response(ch.json())


@routes.post("/ari/channels/{channelId}")
async def originate_with_id(request: web.Request) -> web.Response:
    params = await Params.read(request)
    req = _originate_request(params, request.match_info["channelId"])
    return json_response(calls.originate(pbx_of(request), req))


@routes.delete("/ari/channels/{channelId}")
async def hangup(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    ch = pbx.channel(request.match_info["channelId"])
    reason = params.get("reason")
    code = params.integer("reason_code")
    if code is not None:
        cause = code
    elif reason is None:
        cause = 16
    elif reason in REASON_CAUSE:
        cause = REASON_CAUSE[reason]
    else:
        raise PbxError(400, "Invalid reason for hangup provided")
    if ch.pending_controls:
        ch.spawn(pbx.ari_hangup(ch, cause))  # queued DTMF still plays out first (trace f1)
    else:
        await pbx.ari_hangup(ch, cause)
    return no_content()


def _stasis(request: web.Request) -> tuple[Pbx, Channel]:
    pbx = pbx_of(request)
    return pbx, pbx.stasis_channel(request.match_info["channelId"])


@routes.post("/ari/channels/{channelId}/continue")
async def continue_(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx, ch = _stasis(request)
    calls.continue_in_dialplan(
        pbx,
        ch,
        params.get("context"),
        params.get("extension"),
        params.integer("priority"),
        params.get("label"),
    )
    return no_content()


@routes.post("/ari/channels/{channelId}/move")
async def move(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx, ch = _stasis(request)
    calls.move(pbx, ch, params.required("app"), params.text("appArgs"))
    return no_content()


@routes.post("/ari/channels/{channelId}/redirect")
async def redirect(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx, ch = _stasis(request)
    calls.redirect(pbx, ch, params.required("endpoint"))
    return no_content()


@routes.post("/ari/channels/{channelId}/answer")
async def answer(request: web.Request) -> web.Response:
    pbx, ch = _stasis(request)
    pbx.answer(ch)
    return no_content()


@routes.post("/ari/channels/{channelId}/ring")
async def ring(request: web.Request) -> web.Response:
    pbx, ch = _stasis(request)
    pbx.ring(ch)
    return no_content()


@routes.delete("/ari/channels/{channelId}/ring")
async def ring_stop(request: web.Request) -> web.Response:
    _stasis(request)
    return no_content()


@routes.post("/ari/channels/{channelId}/progress")
async def progress(request: web.Request) -> web.Response:
    _stasis(request)
    return no_content()


@routes.post("/ari/channels/{channelId}/dtmf")
async def dtmf(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx, ch = _stasis(request)
    digits = params.text("dtmf")
    if not digits:
        raise PbxError(400, "DTMF is required")
    if not set(digits.upper()) <= DTMF_CHARS:
        raise PbxError(400, "Invalid DTMF")
    playback.queue_dtmf(
        pbx,
        ch,
        digits.upper(),
        before_ms=params.integer("before", 0) or 0,
        between_ms=params.integer("between", 100) or 100,
        duration_ms=params.integer("duration", 100) or 100,
        after_ms=params.integer("after", 0) or 0,
    )
    return no_content()


def _directions(params: Params) -> tuple[bool, bool]:
    direction = params.text("direction", "both")
    if direction not in ("both", "in", "out"):
        raise PbxError(400, "Invalid direction specified")
    return direction in ("both", "in"), direction in ("both", "out")


@routes.post("/ari/channels/{channelId}/mute")
async def mute(request: web.Request) -> web.Response:
    params = await Params.read(request)
    _pbx, ch = _stasis(request)
    mute_in, mute_out = _directions(params)
    ch.mute_in = ch.mute_in or mute_in
    ch.mute_out = ch.mute_out or mute_out
    return no_content()


@routes.delete("/ari/channels/{channelId}/mute")
async def unmute(request: web.Request) -> web.Response:
    params = await Params.read(request)
    _pbx, ch = _stasis(request)
    unmute_in, unmute_out = _directions(params)
    ch.mute_in = ch.mute_in and not unmute_in
    ch.mute_out = ch.mute_out and not unmute_out
    return no_content()


@routes.post("/ari/channels/{channelId}/hold")
async def hold(request: web.Request) -> web.Response:
    pbx, ch = _stasis(request)
    if not ch.on_hold:
        ch.on_hold = True
        pbx.emit("ChannelHold", channel=ch)
    return no_content()


@routes.delete("/ari/channels/{channelId}/hold")
async def unhold(request: web.Request) -> web.Response:
    pbx, ch = _stasis(request)
    if ch.on_hold:
        ch.on_hold = False
        pbx.emit("ChannelUnhold", channel=ch)
    return no_content()


@routes.post("/ari/channels/{channelId}/moh")
async def moh(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx, ch = _stasis(request)
    moh_class = params.text("mohClass", "default")
    if moh_class not in pbx.config.moh_classes:
        raise PbxError(404, f"Music on hold class '{moh_class}' not found")
    ch.moh = moh_class
    playback.start_moh(ch)
    return no_content()


@routes.delete("/ari/channels/{channelId}/moh")
async def moh_stop(request: web.Request) -> web.Response:
    _pbx, ch = _stasis(request)
    ch.moh = None
    playback.stop_moh(ch)
    return no_content()


@routes.post("/ari/channels/{channelId}/silence")
async def silence(request: web.Request) -> web.Response:
    _stasis(request)
    return no_content()


@routes.delete("/ari/channels/{channelId}/silence")
async def silence_stop(request: web.Request) -> web.Response:
    _stasis(request)
    return no_content()


async def _play(request: web.Request, playback_id: str | None) -> web.Response:
    params = await Params.read(request)
    pbx, ch = _stasis(request)
    media = [m for m in params.required("media").split(",") if m]
    for uri in media:
        if not playback.validate_media(uri):
            raise PbxError(400, f"Invalid media URI: {uri}")
    if playback_id and playback_id in pbx.playbacks:
        raise PbxError(409, "Playback with given id already exists")
    pb = playback.start_channel_playback(
        pbx,
        ch,
        media,
        playback_id,
        params.text("lang"),
        offset_ms=params.integer("offsetms", 0) or 0,
        skip_ms=params.integer("skipms", 3000) or 3000,
    )
    response = json_response(pb.json(), status=201)
    response.headers["Location"] = f"/playbacks/{pb.id}"
    return response


@routes.post("/ari/channels/{channelId}/play")
async def play(request: web.Request) -> web.Response:
    params = await Params.read(request)
    return await _play(request, params.get("playbackId"))


@routes.post("/ari/channels/{channelId}/play/{playbackId}")
async def play_with_id(request: web.Request) -> web.Response:
    return await _play(request, request.match_info["playbackId"])


@routes.post("/ari/channels/{channelId}/record")
async def record(request: web.Request) -> web.Response:
    from operadora.sim import recording

    params = await Params.read(request)
    pbx, ch = _stasis(request)
    rec = recording.start_channel_recording(pbx, ch, params)
    return json_response(rec.json(), status=201)


@routes.get("/ari/channels/{channelId}/variable")
async def get_variable(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    ch = pbx.channel(request.match_info["channelId"])
    name = params.required("variable")
    value = channel_variable(pbx, ch, name)
    if value is None:
        raise PbxError(404, "Provided variable was not found")
    return json_response({"value": value})


def channel_variable(pbx: Pbx, ch: Channel, name: str) -> str | None:
    from operadora.sim.dialplan.runner import lookup_for

    upper = name.upper()
    if upper.startswith("CHANNEL(") and upper.endswith(")"):
        item = name[8:-1].strip().lower()
        values = {
            "name": ch.name,
            "language": ch.language,
            "state": ch.state,
            "uniqueid": ch.id,
            "linkedid": ch.id,
            "channeltype": ch.technology,
            "context": ch.context,
            "exten": ch.exten,
            "callerid": ch.caller.number,
            "musicclass": ch.moh or "default",
            "pjsip,remote_addr": ch.remote_addr
            or ch.variables.get("_REMOTE_ADDR", "127.0.0.1:5062"),
        }
        return values.get(item.replace(" ", ""))
    return lookup_for(pbx, ch)(name)


@routes.post("/ari/channels/{channelId}/variable")
async def set_variable(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    ch = pbx.channel(request.match_info["channelId"])
    name = params.required("variable")
    value = params.text("value")
    if name.endswith(")"):  # a function write (e4: PJSIP_TRANSFER_HANDLING()): no ChannelVarset
        from operadora.sim.dialplan.apps import write_function

        write_function(ch, name, value)
        return no_content()
    pbx.set_variable(ch, name, value)
    return no_content()


@routes.get("/ari/channels/{channelId}/variables")
async def get_variables(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    ch = pbx.channel(request.match_info["channelId"])
    names = [n for n in params.required("variables").split(",") if n]
    out = {}
    for name in names:
        value = channel_variable(pbx, ch, name)
        if value is not None:
            out[name] = value
    return json_response({"variables": out})


@routes.post("/ari/channels/{channelId}/variables")
async def set_variables(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    ch = pbx.channel(request.match_info["channelId"])
    variables = params.variables()
    if not variables:
        raise PbxError(400, "variables is required")
    for name, value in variables.items():
        pbx.set_variable(ch, name, value)
    return no_content()


@routes.post("/ari/channels/{channelId}/dial")
async def dial(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    ch = pbx.channel(request.match_info["channelId"])
    calls.dial_created(pbx, ch, params.get("caller"), float(params.integer("timeout", 0) or 0))
    return no_content()


@routes.get("/ari/channels/{channelId}/rtp_statistics")
async def rtp_statistics(request: web.Request) -> web.Response:
    pbx = pbx_of(request)
    ch = pbx.channel(request.match_info["channelId"])
    if ch.technology != "PJSIP":
        raise PbxError(404, "Channel does not have an RTP instance")
    return json_response(calls.rtp_statistics(ch))


@routes.post("/ari/channels/{channelId}/transfer_progress")
async def transfer_progress(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    ch = pbx.channel(request.match_info["channelId"])
    state = params.required("states")
    if state not in transfer.PROGRESS_STATES:
        raise PbxError(400, "Invalid states value")
    transfer.progress(pbx, ch, state)
    return no_content()


async def _snoop(request: web.Request, snoop_id: str | None) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    target = pbx.channel(request.match_info["channelId"])
    channel = snoop.start_snoop(
        pbx,
        target,
        app=params.required("app"),
        app_args=params.text("appArgs"),
        spy=params.text("spy", "none"),
        whisper=params.text("whisper", "none"),
        snoop_id=snoop_id,
    )
    return json_response(channel.json())


@routes.post("/ari/channels/{channelId}/snoop")
async def snoop_channel(request: web.Request) -> web.Response:
    params = await Params.read(request)
    return await _snoop(request, params.get("snoopId"))


@routes.post("/ari/channels/{channelId}/snoop/{snoopId}")
async def snoop_channel_with_id(request: web.Request) -> web.Response:
    return await _snoop(request, request.match_info["snoopId"])
