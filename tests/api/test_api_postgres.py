"""The API over PostgreSQL: a call from live to history, searched and detailed."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from api.harness import start_running, stop_running
from operadora import events as ev
from operadora.store import Database
from support import port_open, require

pytestmark = pytest.mark.integration
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def test_history_and_detail_on_postgresql(tmp_path: Path) -> None:
    require(port_open("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432")
    schema = "opd_api_" + uuid.uuid4().hex[:12]
    db = Database(PG_URL, schema=schema)
    await db.upgrade()
    running, server, task = await start_running(tmp_path, db)
    try:
        bus = running.bus
        bus.publish(ev.CallArrivedEvent("pg1", caller_id="+4930123", did="200"))
        bus.publish(
            ev.TurnEvent("pg1", speaker="caller", text="Mi factura_100% está mal", latency_ms=None)
        )
        bus.publish(
            ev.TurnEvent(
                "pg1", speaker="agent", text="Lo reviso", latency_ms=710.0, timings={"stt_ms": 90.0}
            )
        )
        bus.publish(
            ev.TransferEvent(
                "pg1", transfer_id="tp", kind="queue", target="billing", state="queued"
            )
        )
        bus.publish(ev.CallEndedEvent("pg1", disposition="transferred", cause=16))
        await running.recorder.drain()
        async with httpx.AsyncClient(
            base_url=running.url, headers={"Authorization": f"Bearer {running.viewer}"}
        ) as c:
            found = (await c.get("/api/calls", params={"q": "factura_100%"})).json()
            assert [i["id"] for i in found["items"]] == ["pg1"]
            assert (await c.get("/api/calls", params={"q": "factura_1000"})).json()["total"] == 0
            detail = (await c.get("/api/calls/pg1")).json()
            assert detail["turns"][1]["timings"] == {"stt_ms": 90.0}
            assert detail["transfers"][0]["history"][0]["state"] == "queued"
            stats = (await c.get("/api/stats")).json()
            assert stats["outcomes"] == {"transferred": 1}
            assert stats["latency_ms"]["p50"] == 710.0
            assert stats["containment_rate"] == 0.0
    finally:
        await stop_running(running, server, task)
        drop = Database(PG_URL)
        async with drop.engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await drop.dispose()
