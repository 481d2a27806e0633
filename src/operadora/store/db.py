"""Database engine and programmatic Alembic migrations.

SQLite (``sqlite+aiosqlite:///file.db``) by default, PostgreSQL by URL
(``postgresql+asyncpg://user@host/db``). ``schema`` puts every table (and Alembic's version
table) in one PostgreSQL schema, which is how tests isolate themselves.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6F70_6472  # PostgreSQL advisory lock key: "opdr"


class Database:
    """One async engine and its session factory."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = url
        self.schema = schema
        connect_args: dict[str, Any] = {}
        if schema is not None:
            if not url.startswith("postgresql"):
                raise ValueError("a schema is only supported on PostgreSQL")
            connect_args["server_settings"] = {"search_path": schema}
        self.engine: AsyncEngine = create_async_engine(
            url, echo=echo, connect_args=connect_args, pool_pre_ping=True
        )
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def session(self) -> AsyncSession:
        return self.sessions()

    async def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with the migrations shipped in the package."""
        async with _migration_lock(), self.engine.begin() as conn:
            if not self.is_sqlite:  # instances starting together migrate one at a time
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            if self.schema is not None:
                await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.run_sync(_run_upgrade, revision)

    async def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        def _rev(conn: Connection) -> str | None:
            return MigrationContext.configure(conn).get_current_revision()

        async with self.engine.connect() as conn:
            return await conn.run_sync(_rev)

    async def dispose(self) -> None:
        await self.engine.dispose()


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _migration_lock() -> asyncio.Lock:
    """Alembic keeps its context in module globals: one migration at a time per process."""
    loop = asyncio.get_running_loop()
    lock = _LOCKS.get(loop)
    if lock is None:
        lock = _LOCKS[loop] = asyncio.Lock()
    return lock


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _run_upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes of the app
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
