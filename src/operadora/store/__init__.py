"""Call records: SQLAlchemy models, repositories, migrations and the event recorder."""

from __future__ import annotations

from pathlib import Path

from operadora.config import StoreSettings
from operadora.store.admin import AdminRepository, TokenRepository
from operadora.store.calls import CallFilter, CallRepository
from operadora.store.db import Database


class Store:
    """Everything persistent, over one database."""

    def __init__(
        self, db: Database, recordings_dir: Path = Path("recordings"), retention_days: int = 30
    ) -> None:
        self.db = db
        self.recording_retention_days = retention_days
        self.calls = CallRepository(db)
        self.tokens = TokenRepository(db)
        self.admin = AdminRepository(db, recordings_dir)

    @classmethod
    async def open(cls, settings: StoreSettings, *, upgrade: bool = True) -> Store:
        """Connect to ``settings.url`` and (by default) migrate the schema to the latest."""
        db = Database(settings.url.get_secret_value())
        if upgrade:
            await db.upgrade()
        return cls(db, settings.recordings_dir, settings.recording_retention_days)

    async def close(self) -> None:
        await self.db.dispose()


__all__ = ["CallFilter", "Database", "Store"]
