"""``/ari/playbacks``, ``/ari/recordings``, ``/ari/endpoints``, ``/ari/asterisk``,
``/ari/applications``, ``/ari/deviceStates`` and ``/ari/sounds``."""

from __future__ import annotations

import platform
import time

from aiohttp import web

from operadora.sim import playback, recording
from operadora.sim.hub import ASTERISK_ID
from operadora.sim.model import LiveRecording, ari_time
from operadora.sim.pbx import PbxError
from operadora.sim.routes.params import Params, json_response, no_content, pbx_of
from operadora.sim.sounds import KNOWN_DURATIONS

routes = web.RouteTableDef()
ASTERISK_VERSION = "22.10.1"


# ----- playbacks -----
@routes.get("/ari/playbacks/{playbackId}")
async def get_playback(request: web.Request) -> web.Response:
    pb = pbx_of(request).playbacks.get(request.match_info["playbackId"])
    if pb is None:
        raise PbxError(404, "Playback not found")
    return json_response(pb.json())


@routes.delete("/ari/playbacks/{playbackId}")
async def stop_playback(request: web.Request) -> web.Response:
    pbx = pbx_of(request)
    pb = pbx.playbacks.get(request.match_info["playbackId"])
    if pb is None:
        raise PbxError(404, "Playback not found")
    playback.stop_playback(pbx, pb, "done")
    return no_content()


@routes.post("/ari/playbacks/{playbackId}/control")
async def control_playback(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    pb = pbx.playbacks.get(request.match_info["playbackId"])
    if pb is None:
        raise PbxError(404, "Playback not found")
    operation = params.required("operation")
    if operation not in ("restart", "pause", "unpause", "reverse", "forward"):
        raise PbxError(400, "Invalid operation parameter")
    if pb.state not in ("playing", "paused"):
        raise PbxError(409, "Playback not in a state to be controlled")
    playback.control(pb, operation)
    return no_content()


# ----- recordings -----
@routes.get("/ari/recordings/stored")
async def stored(request: web.Request) -> web.Response:
    pbx = pbx_of(request)
    return json_response([{"name": n, "format": "wav"} for n in sorted(pbx.stored_recordings)])


def _stored_name(request: web.Request) -> str:
    name = request.match_info["recordingName"]
    if name not in pbx_of(request).stored_recordings:
        raise PbxError(404, "Recording not found")
    return name


@routes.get("/ari/recordings/stored/{recordingName}")
async def get_stored(request: web.Request) -> web.Response:
    return json_response({"name": _stored_name(request), "format": "wav"})


@routes.delete("/ari/recordings/stored/{recordingName}")
async def delete_stored(request: web.Request) -> web.Response:
    name = _stored_name(request)
    del pbx_of(request).stored_recordings[name]
    return no_content()


@routes.get("/ari/recordings/stored/{recordingName}/file")
async def stored_file(request: web.Request) -> web.Response:
    name = _stored_name(request)
    data = recording.wav_bytes(pbx_of(request).stored_recordings[name])
    return web.Response(body=data, content_type="audio/wav")


@routes.post("/ari/recordings/stored/{recordingName}/copy")
async def copy_stored(request: web.Request) -> web.Response:
    params = await Params.read(request)
    name = _stored_name(request)
    pbx = pbx_of(request)
    dest = params.required("destinationRecordingName")
    if dest in pbx.stored_recordings:
        raise PbxError(409, "A recording with the same name already exists on the system")
    pbx.stored_recordings[dest] = pbx.stored_recordings[name]
    return json_response({"name": dest, "format": "wav"})


def _live(request: web.Request) -> LiveRecording:
    rec = pbx_of(request).recordings.get(request.match_info["recordingName"])
    if rec is None:
        raise PbxError(404, "Recording not found")
    return rec


@routes.get("/ari/recordings/live/{recordingName}")
async def get_live(request: web.Request) -> web.Response:
    return json_response(_live(request).json())


@routes.delete("/ari/recordings/live/{recordingName}")
async def cancel_live(request: web.Request) -> web.Response:
    rec = _live(request)
    recording.finish(pbx_of(request), rec, "canceled")
    return no_content()


@routes.post("/ari/recordings/live/{recordingName}/stop")
async def stop_live(request: web.Request) -> web.Response:
    rec = _live(request)
    recording.finish(pbx_of(request), rec, "done")
    return no_content()


@routes.post("/ari/recordings/live/{recordingName}/pause")
async def pause_live(request: web.Request) -> web.Response:
    rec = _live(request)
    if rec.state == "recording":
        rec.state = "paused"
    return no_content()


@routes.delete("/ari/recordings/live/{recordingName}/pause")
async def unpause_live(request: web.Request) -> web.Response:
    rec = _live(request)
    if rec.state == "paused":
        rec.state = "recording"
    return no_content()


@routes.post("/ari/recordings/live/{recordingName}/mute")
async def mute_live(request: web.Request) -> web.Response:
    _live(request)
    return no_content()


@routes.delete("/ari/recordings/live/{recordingName}/mute")
async def unmute_live(request: web.Request) -> web.Response:
    _live(request)
    return no_content()


# ----- endpoints -----
@routes.get("/ari/endpoints")
async def endpoints(request: web.Request) -> web.Response:
    pbx = pbx_of(request)
    channels = list(pbx.channels.values())
    return json_response([e.json(channels) for e in pbx.endpoints.all()])


@routes.get("/ari/endpoints/{tech}")
async def endpoints_by_tech(request: web.Request) -> web.Response:
    pbx = pbx_of(request)
    found = pbx.endpoints.by_technology(request.match_info["tech"])
    if not found:
        raise PbxError(404, "No Endpoints found - invalid tech " + request.match_info["tech"])
    channels = list(pbx.channels.values())
    return json_response([e.json(channels) for e in found])


@routes.get("/ari/endpoints/{tech}/{resource}")
async def endpoint(request: web.Request) -> web.Response:
    pbx = pbx_of(request)
    found = pbx.endpoints.get(request.match_info["tech"], request.match_info["resource"])
    if found is None:
        raise PbxError(404, "Endpoint not found")
    return json_response(found.json(list(pbx.channels.values())))


# ----- asterisk -----
@routes.get("/ari/asterisk/info")
async def info(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    body = {
        "build": {
            "os": platform.system(),
            "kernel": platform.release(),
            "machine": platform.machine(),
            "options": "",
            "date": "",
            "user": "operadora-sim",
        },
        "system": {"version": ASTERISK_VERSION, "entity_id": ASTERISK_ID},
        "config": {
            "name": "",
            "default_language": "en",
            "setid": {"user": "", "group": ""},
        },
        "status": {
            "startup_time": ari_time(pbx.started_at),
            "last_reload_time": ari_time(pbx.started_at),
        },
    }
    only = [o for o in params.text("only").split(",") if o]
    if only:
        body = {k: v for k, v in body.items() if k in only}
    return json_response(body)


@routes.get("/ari/asterisk/ping")
async def ping(request: web.Request) -> web.Response:
    return json_response(
        {"asterisk_id": ASTERISK_ID, "ping": "pong", "timestamp": ari_time(time.time())}
    )


@routes.get("/ari/asterisk/variable")
async def get_global(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    name = params.required("variable")
    value = pbx.config.globals.get(name, pbx.config.dialplan.globals.get(name))
    if value is None:
        raise PbxError(404, "Provided variable was not found")
    return json_response({"value": value})


@routes.post("/ari/asterisk/variable")
async def set_global(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    pbx.config.globals[params.required("variable")] = params.text("value")
    return no_content()


# ----- applications -----
def _application(request: web.Request, name: str) -> dict[str, object]:
    pbx = pbx_of(request)
    return {
        "name": name,
        "channel_ids": [c.id for c in pbx.channels.values() if c.stasis_app == name],
        "bridge_ids": [
            b.id for b in pbx.bridges.values() if any(c.stasis_app == name for c in b.channels)
        ],
        "endpoint_ids": [],
        "device_names": [],
        "events_allowed": [],
        "events_disallowed": [],
    }


@routes.get("/ari/applications")
async def applications(request: web.Request) -> web.Response:
    apps = sorted(pbx_of(request).hub.apps)
    return json_response([_application(request, a) for a in apps])


@routes.get("/ari/applications/{applicationName}")
async def application(request: web.Request) -> web.Response:
    name = request.match_info["applicationName"]
    if not pbx_of(request).hub.registered(name):
        raise PbxError(404, "Application not found")
    return json_response(_application(request, name))


# ----- device states and sounds -----
@routes.get("/ari/deviceStates")
async def device_states(request: web.Request) -> web.Response:
    return json_response([])


@routes.get("/ari/sounds")
async def sounds(request: web.Request) -> web.Response:
    return json_response(
        [
            {"id": name, "text": "", "formats": [{"language": "en", "format": "wav"}]}
            for name in sorted(KNOWN_DURATIONS)
        ]
    )
