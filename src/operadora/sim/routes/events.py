"""``GET /ari/events?app=a,b&subscribeAll=true``: the events WebSocket, registering apps."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from operadora.sim.pbx import PbxError
from operadora.sim.routes.params import Params, pbx_of

routes = web.RouteTableDef()


@routes.get("/ari/events")
async def events(request: web.Request) -> web.StreamResponse:
    apps = [a for a in request.query.get("app", "").split(",") if a]
    if not apps:
        raise PbxError(400, "app is required")
    subscribe_all = request.query.get("subscribeAll", "false").lower() in ("true", "1", "yes")
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    hub = pbx_of(request).hub
    sub = hub.subscribe(apps, subscribe_all)

    async def sender() -> None:
        while True:
            event = await sub.queue.get()
            if event is None:
                await ws.close()
                return
            await ws.send_str(json.dumps(event, separators=(",", ":")))

    task = asyncio.get_running_loop().create_task(sender())
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        return ws
    finally:
        hub.unsubscribe(sub)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await task


@routes.post("/ari/events/user/{eventName}")
async def user_event(request: web.Request) -> web.Response:
    params = await Params.read(request)
    pbx = pbx_of(request)
    application = params.required("application")
    if not pbx.hub.registered(application):
        raise PbxError(404, f"Application '{application}' not found")
    fields: dict[str, object] = {}
    for source in [s for s in params.text("source").split(",") if s]:
        kind, _, ident = source.partition(":")
        if kind == "channel":
            fields["channel"] = pbx.channel(ident)
        elif kind == "bridge":
            bridge = pbx.bridges.get(ident)
            if bridge is None:
                raise PbxError(422, "Bridge not found")
            fields["bridge"] = bridge
        else:
            raise PbxError(400, f"Invalid source: {source}")
    pbx.emit(
        "ChannelUserevent",
        eventname=request.match_info["eventName"],
        userevent=params.variables(),
        _app=application,
        **fields,
    )
    return web.Response(status=204)
