"""API tokens, human agents, callbacks, conferences, recordings retention and the audit trail."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, select

from operadora.store.db import Database
from operadora.store.models import (
    ApiTokenRow,
    AuditRow,
    CallbackRow,
    ConferenceRow,
    HumanAgentRow,
    RecordingRow,
)
from operadora.store.schemas import (
    AuditOut,
    CallbackOut,
    ConferenceOut,
    HumanAgentOut,
    RecordingOut,
    TokenOut,
)

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")
TOKEN_PREFIX = "opd_"
AGENT_STATUSES = ("available", "busy", "on_call", "paused", "offline")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    id: int
    name: str
    role: Role


class TokenRepository:
    """Bearer tokens: only their SHA-256 is stored; the token itself is shown once."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, role: Role, name: str = "") -> tuple[str, TokenOut]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiTokenRow(
            name=name or role,
            role=role,
            token_hash=hash_token(token),
            prefix=token[:10],
            created_at=time.time(),
        )
        async with self.db.session() as s, s.begin():
            s.add(row)
        return token, TokenOut.model_validate(row)

    async def verify(self, token: str) -> TokenIdentity | None:
        async with self.db.session() as s:
            row = (
                await s.scalars(
                    select(ApiTokenRow).where(ApiTokenRow.token_hash == hash_token(token))
                )
            ).first()
        if row is None or row.revoked_at is not None or row.role not in ROLES:
            return None
        role: Role = "admin" if row.role == "admin" else "viewer"
        return TokenIdentity(row.id, row.name, role)

    async def all(self) -> list[TokenOut]:
        async with self.db.session() as s:
            rows = await s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))
            return [TokenOut.model_validate(r) for r in rows]

    async def revoke(self, token_id: int) -> bool:
        async with self.db.session() as s, s.begin():
            row = await s.get(ApiTokenRow, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = time.time()
            return True

    async def export(self) -> list[dict[str, Any]]:
        """Rows for a backup: hashes, never tokens."""
        async with self.db.session() as s:
            rows = await s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))
            return [
                {
                    "name": r.name,
                    "role": r.role,
                    "token_hash": r.token_hash,
                    "prefix": r.prefix,
                    "created_at": r.created_at,
                    "revoked_at": r.revoked_at,
                }
                for r in rows
            ]

    async def import_(self, rows: list[dict[str, Any]]) -> int:
        """Add backed-up token rows whose hash is not present yet."""
        added = 0
        async with self.db.session() as s, s.begin():
            known = set(await s.scalars(select(ApiTokenRow.token_hash)))
            for r in rows:
                if r["token_hash"] in known or r["role"] not in ROLES:
                    continue
                s.add(
                    ApiTokenRow(
                        name=str(r["name"]),
                        role=str(r["role"]),
                        token_hash=str(r["token_hash"]),
                        prefix=str(r.get("prefix", "")),
                        created_at=float(r["created_at"]),
                        revoked_at=r.get("revoked_at"),
                    )
                )
                added += 1
        return added


class AdminRepository:
    """Human agents, callbacks, conferences, recordings and the audit trail."""

    def __init__(self, db: Database, recordings_dir: Path = Path("recordings")) -> None:
        self.db = db
        self.recordings_dir = recordings_dir

    def recording_file(self, stored_path: str, name: str) -> Path | None:
        """The recording's file, only if it lies inside the recordings directory."""
        root = self.recordings_dir.resolve()
        candidates = [Path(stored_path)] if stored_path else []
        candidates += [root / f"{name}.wav", root / name]
        for candidate in candidates:
            path = (root / candidate).resolve() if not candidate.is_absolute() else candidate
            path = path.resolve()
            if path.is_relative_to(root) and path.is_file():
                return path
        return None

    async def audit(
        self, actor: str, action: str, call_id: str | None = None, **details: Any
    ) -> None:
        async with self.db.session() as s, s.begin():
            s.add(
                AuditRow(
                    at=time.time(), actor=actor, action=action, call_id=call_id, details=details
                )
            )

    async def audit_trail(self, limit: int = 100, offset: int = 0) -> list[AuditOut]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(AuditRow).order_by(AuditRow.id.desc()).limit(limit).offset(offset)
            )
            return [AuditOut.model_validate(r) for r in rows]

    async def upsert_agent(
        self,
        agent_id: str,
        *,
        name: str | None = None,
        extension: str | None = None,
        status: str | None = None,
    ) -> HumanAgentOut:
        if status is not None and status not in AGENT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(AGENT_STATUSES)}")
        async with self.db.session() as s, s.begin():
            row = await s.get(HumanAgentRow, agent_id)
            if row is None:
                row = HumanAgentRow(id=agent_id, name=agent_id, extension="", status="offline")
                s.add(row)
            row.name = name if name is not None else row.name
            row.extension = extension if extension is not None else row.extension
            row.status = status if status is not None else row.status
            row.updated_at = time.time()
            await s.flush()
            return HumanAgentOut.model_validate(row)

    async def get_agent(self, agent_id: str) -> HumanAgentOut | None:
        async with self.db.session() as s:
            row = await s.get(HumanAgentRow, agent_id)
            return None if row is None else HumanAgentOut.model_validate(row)

    async def agents(self) -> list[HumanAgentOut]:
        async with self.db.session() as s:
            rows = await s.scalars(select(HumanAgentRow).order_by(HumanAgentRow.id))
            return [HumanAgentOut.model_validate(r) for r in rows]

    async def add_callback(
        self, number: str, *, call_id: str | None, due_at: float | None, note: str = ""
    ) -> CallbackOut:
        row = CallbackRow(
            call_id=call_id,
            number=number,
            due_at=due_at,
            note=note,
            state="requested",
            created_at=time.time(),
        )
        async with self.db.session() as s, s.begin():
            s.add(row)
        return CallbackOut.model_validate(row)

    async def callbacks(self, limit: int = 200) -> list[CallbackOut]:
        async with self.db.session() as s:
            rows = await s.scalars(select(CallbackRow).order_by(CallbackRow.id.desc()).limit(limit))
            return [CallbackOut.model_validate(r) for r in rows]

    async def conferences(self, limit: int = 200) -> list[ConferenceOut]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(ConferenceRow).order_by(ConferenceRow.started_at.desc()).limit(limit)
            )
            return [ConferenceOut.model_validate(r) for r in rows]

    async def recording(self, recording_id: int) -> tuple[RecordingOut, Path | None] | None:
        async with self.db.session() as s:
            row = await s.get(RecordingRow, recording_id)
            if row is None:
                return None
            path = self.recording_file(row.path, row.name)
            out = RecordingOut.model_validate(row)
            out.playable = path is not None
            return out, path

    async def enforce_retention(self, retention_days: int, now: float | None = None) -> int:
        """Delete recordings (rows and files) older than the retention limit."""
        cutoff = (time.time() if now is None else now) - retention_days * 86_400
        async with self.db.session() as s, s.begin():
            rows = list(
                await s.scalars(select(RecordingRow).where(RecordingRow.started_at < cutoff))
            )
            for row in rows:
                path = self.recording_file(row.path, row.name)
                if path is not None:
                    path.unlink(missing_ok=True)
            await s.execute(delete(RecordingRow).where(RecordingRow.started_at < cutoff))
        return len(rows)
