"""Stores on SQLite (a temp file) and on the local PostgreSQL (a schema of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from operadora.store import Database, Store
from support import port_open, require

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def open_store(kind: str, tmp_path: Path) -> tuple[Store, str | None]:
    if kind == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
        schema = None
    else:
        require(port_open("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432")
        schema = "opd_test_" + uuid.uuid4().hex[:12]
        db = Database(PG_URL, schema=schema)
    await db.upgrade()
    (tmp_path / "recordings").mkdir(exist_ok=True)
    return Store(db, tmp_path / "recordings"), schema


async def drop_schema(schema: str) -> None:
    db = Database(PG_URL)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened, schema = await open_store(request.param, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
        if schema is not None:
            await drop_schema(schema)
