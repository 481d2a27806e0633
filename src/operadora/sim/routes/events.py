"""``GET /ari/events?app=a,b&subscribeAll=true``: the events WebSocket, registering apps."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from operadora.sim.pbx import PbxError
from operadora.sim.routes.params import pbx_of

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
