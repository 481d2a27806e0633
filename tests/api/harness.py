"""Test harness shared by the API, browser tests and the benchmark: a fake call control and
the API served by uvicorn on a free port (``from api.harness import ...``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from operadora import events as ev
from operadora.api.actions import CallNotFound
from operadora.api.app import ApiServer, create_app
from operadora.config import Settings
from operadora.events import EventBus
from operadora.store import Database, Store
from operadora.store.recorder import CallRecorder
from support import free_port


class FakeCallControl:
    """Implements CallActions the way call control reports what it did: through events."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.live: set[str] = set()
        self.hangups: list[str] = []
        self.recordings: list[tuple[str, str]] = []
        self._queue = bus.subscribe()

    def track(self) -> None:
        while not self._queue.empty():
            e = self._queue.get_nowait()
            if isinstance(e, ev.CallArrivedEvent):
                self.live.add(e.call_id)
            elif isinstance(e, ev.CallEndedEvent):
                self.live.discard(e.call_id)

    async def hangup(self, call_id: str) -> None:
        self.track()
        if call_id not in self.live:
            raise CallNotFound(call_id)
        self.hangups.append(call_id)
        self.bus.publish(ev.CallEndedEvent(call_id, disposition="resolved", ended_by="api"))

    async def record(self, call_id: str, reason: str) -> str:
        self.track()
        if call_id not in self.live:
            raise CallNotFound(call_id)
        name = f"{call_id}-{len(self.recordings)}"
        self.recordings.append((call_id, reason))
        self.bus.publish(ev.RecordingEvent(call_id, name=name, state="started", reason=reason))
        return name


@dataclass
class Running:
    url: str
    app: FastAPI
    store: Store
    bus: EventBus
    actions: FakeCallControl
    recorder: CallRecorder
    admin: str
    viewer: str

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


async def start_server(app: FastAPI) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = ApiServer(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task, f"http://127.0.0.1:{port}"


async def start_running(
    tmp_path: Path, db: Database | None = None
) -> tuple[Running, uvicorn.Server, asyncio.Task[None]]:
    """The API over ``db`` (default: a SQLite file in ``tmp_path``)."""
    settings = Settings(
        store={
            "url": f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
            "recordings_dir": str(tmp_path / "recordings"),
        }
    )
    (tmp_path / "recordings").mkdir(exist_ok=True)
    db = db or Database(settings.store.url.get_secret_value())
    await db.upgrade()
    store = Store(db, settings.store.recordings_dir)
    bus = EventBus()
    actions = FakeCallControl(bus)
    recorder = CallRecorder(store, bus, actions=actions)
    await recorder.start()
    app = create_app(settings, store, bus, actions)
    admin, _ = await store.tokens.create("admin", "ops")
    viewer, _ = await store.tokens.create("viewer", "wall")
    server, task, url = await start_server(app)
    return Running(url, app, store, bus, actions, recorder, admin, viewer), server, task


async def stop_running(running: Running, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await task
    await running.recorder.stop()
    await running.store.close()
