"""``/ari/bridges`` resources."""

from __future__ import annotations

from aiohttp import web

from operadora.sim import bridging, playback
from operadora.sim.model import Bridge, Channel
from operadora.sim.pbx import Pbx, PbxError
from operadora.sim.routes.params import Params, json_response, no_content, pbx_of

routes = web.RouteTableDef()
TYPES = {
    "mixing",
    "holding",
    "dtmf_events",
    "proxy_media",
    "video_sfu",
    "video_single",
    "sdp_label",
}


def _bridge(request: web.Request) -> tuple[Pbx, Bridge]:
    pbx = pbx_of(request)
    bridge = pbx.bridges.get(request.match_info["bridgeId"])
    if bridge is None or bridge.destroyed:
        raise PbxError(404, "Bridge not found")
    return pbx, bridge


def _bridge_type(params: Params) -> str:
    kinds = [k.strip() for k in params.text("type", "mixing").split(",") if k.strip()]
    for kind in kinds:
        if kind not in TYPES:
            raise PbxError(400, f"Invalid bridge type '{kind}'")
    return "holding" if "holding" in kinds else "mixing"


@routes.get("/ari/bridges")
async def list_bridges(request: web.Request) -> web.Response:
    pbx = pbx_of(request)
    return json_response([b.json() for b in pbx.bridges.values() if not b.destroyed])


async def _create(request: web.Request, bridge_id: str | None) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    if bridge_id and bridge_id in pbx.bridges:
        bridge = pbx.bridges[bridge_id]
        if params.get("name"):
            bridge.name = params.text("name")
        return json_response(bridge.json())
    bridge = bridging.create_bridge(
        pbx, _bridge_type(params), bridge_id=bridge_id, name=params.text("name")
    )
    return json_response(bridge.json())


@routes.post("/ari/bridges")
async def create(request: web.Request) -> web.Response:
    params = await Params.read(request)
    return await _create(request, params.get("bridgeId"))


@routes.post("/ari/bridges/{bridgeId}")
async def create_with_id(request: web.Request) -> web.Response:
    return await _create(request, request.match_info["bridgeId"])


@routes.get("/ari/bridges/{bridgeId}")
async def get_bridge(request: web.Request) -> web.Response:
    _pbx, bridge = _bridge(request)
    return json_response(bridge.json())


@routes.delete("/ari/bridges/{bridgeId}")
async def destroy(request: web.Request) -> web.Response:
    pbx, bridge = _bridge(request)
    bridging.destroy_bridge(pbx, bridge)
    return no_content()


def _members(pbx: Pbx, params: Params) -> list[Channel]:
    ids = [c.strip() for c in params.required("channel").split(",") if c.strip()]
    found = []
    for cid in ids:
        ch = pbx.channels.get(cid)
        if ch is None or ch.destroyed:
            raise PbxError(400, "Channel not found")
        found.append(ch)
    return found


@routes.post("/ari/bridges/{bridgeId}/addChannel")
async def add_channel(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx, bridge = _bridge(request)
    members = _members(pbx, params)
    for ch in members:
        if ch.stasis_app is None:
            raise PbxError(422, "Channel not in Stasis application")
        if ch.bridge is not None and ch.bridge is not bridge:
            raise PbxError(409, "Channel is already bridged")
    role = params.text("role", "participant") or "participant"
    bridging.add_channels(pbx, bridge, members, role)
    if params.flag("mute"):
        for ch in members:
            ch.mute_in = True
    return no_content()


@routes.post("/ari/bridges/{bridgeId}/removeChannel")
async def remove_channel(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx, bridge = _bridge(request)
    members = _members(pbx, params)
    for ch in members:
        if ch not in bridge.channels:
            raise PbxError(422, "Channel not in this bridge")
    for ch in members:
        bridging.remove_channel(pbx, bridge, ch)
    return no_content()


@routes.post("/ari/bridges/{bridgeId}/moh")
async def moh(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx, bridge = _bridge(request)
    moh_class = params.text("mohClass", "default")
    if moh_class not in pbx.config.moh_classes:
        raise PbxError(404, f"Music on hold class '{moh_class}' not found")
    playback.start_bridge_moh(bridge, moh_class)
    return no_content()


@routes.delete("/ari/bridges/{bridgeId}/moh")
async def moh_stop(request: web.Request) -> web.Response:
    _pbx, bridge = _bridge(request)
    playback.stop_bridge_moh(bridge)
    return no_content()


async def _play(request: web.Request, playback_id: str | None) -> web.Response:
    params = await Params.read(request)
    pbx, bridge = _bridge(request)
    media = [m for m in params.required("media").split(",") if m]
    for uri in media:
        if not playback.validate_media(uri):
            raise PbxError(400, f"Invalid media URI: {uri}")
    if playback_id and playback_id in pbx.playbacks:
        raise PbxError(409, "Playback with given id already exists")
    pb = playback.start_bridge_playback(pbx, bridge, media, playback_id, params.text("lang"))
    response = json_response(pb.json(), status=201)
    response.headers["Location"] = f"/playbacks/{pb.id}"
    return response


@routes.post("/ari/bridges/{bridgeId}/play")
async def play(request: web.Request) -> web.Response:
    params = await Params.read(request)
    return await _play(request, params.get("playbackId"))


@routes.post("/ari/bridges/{bridgeId}/play/{playbackId}")
async def play_with_id(request: web.Request) -> web.Response:
    return await _play(request, request.match_info["playbackId"])


@routes.post("/ari/bridges/{bridgeId}/record")
async def record(request: web.Request) -> web.Response:
    from operadora.sim import recording

    params = await Params.read(request)
    pbx, bridge = _bridge(request)
    rec = recording.start_bridge_recording(pbx, bridge, params)
    return json_response(rec.json(), status=201)
