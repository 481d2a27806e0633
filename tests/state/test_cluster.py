"""Two API instances sharing Redis: each one's dashboard feed shows the other's calls, each
call is recorded once (by its own instance), and the rate limit is shared."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from api.harness import start_server
from operadora import events as ev
from operadora.api.app import create_app
from operadora.config import Settings
from operadora.events import EventBus
from operadora.store import Database, Store
from operadora.store.calls import CallFilter
from operadora.store.recorder import CallRecorder
from support import port_open, require

pytestmark = pytest.mark.integration


async def test_instances_share_live_calls_and_limits(tmp_path: Path) -> None:
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    await db.upgrade()
    store = Store(db, tmp_path)
    token, _ = await store.tokens.create("viewer")
    tag = uuid.uuid4().hex[:8]
    apps, servers, buses, recorders = [], [], [], []
    for name in ("a", "b"):
        settings = Settings(
            state={
                "backend": "redis",
                "redis_url": "redis://127.0.0.1:6379/0",
                "instance_id": f"{name}-{tag}",
            },
            api={"rate_limit_calls": 2},
        )
        bus = EventBus()
        app = create_app(settings, store, bus)
        app.state.state.forwarder.channel = f"opd-test:{tag}"
        app.state.rate_limiter.prefix = f"opd-test:{tag}:"
        recorder = CallRecorder(store, bus, instance=f"{name}-{tag}")
        await recorder.start()
        apps.append(app)
        buses.append(bus)
        recorders.append(recorder)
        servers.append(await start_server(app))
    try:
        buses[0].publish(ev.CallArrivedEvent("on-a", caller_id="+1", instance="a"))
        buses[1].publish(ev.CallArrivedEvent("on-b", caller_id="+2", instance="b"))
        for _, _, url in servers:
            async with httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token}"}
            ) as c:
                for _ in range(300):
                    ids = {x["id"] for x in (await c.get("/api/live/calls")).json()}
                    if ids == {"on-a", "on-b"}:
                        break
                    await asyncio.sleep(0.02)
                assert ids == {"on-a", "on-b"}
        for recorder in recorders:
            await recorder.drain()
        page = await store.calls.list_calls(CallFilter())
        assert sorted(c.id for c in page.items) == ["on-a", "on-b"]  # once each

        limiters = [app.state.rate_limiter for app in apps]
        assert [await limiters[i % 2].allow("+1777") for i in range(3)] == [True, True, False]
    finally:
        await apps[0].state.rate_limiter.redis.delete(f"opd-test:{tag}:+1777")
        for server, task, _ in servers:
            server.should_exit = True
            await task
        for recorder in recorders:
            await recorder.stop()
        await store.close()
