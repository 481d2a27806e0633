"""Plain data read out of the store; the REST API serves these models as they are."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CallSummary(_Out):
    id: str
    caller_id: str
    did: str
    channel_id: str
    server: str
    instance: str
    state: str
    arrived_at: float
    answered_at: float | None
    ended_at: float | None
    disposition: str
    hangup_cause: int | None
    hangup_cause_txt: str
    ended_by: str
    closed_out: bool


class TurnOut(_Out):
    speaker: str
    text: str
    started_at: float
    ended_at: float
    interrupted: bool
    latency_ms: float | None
    timings: dict[str, float]
    negative: bool


class TransferOut(_Out):
    id: str
    call_id: str
    kind: str
    target: str
    state: str
    outcome: str | None
    history: list[dict[str, Any]]
    started_at: float
    updated_at: float


class RecordingOut(_Out):
    id: int
    call_id: str
    name: str
    state: str
    reason: str
    started_at: float
    ended_at: float | None
    playable: bool = False


class CallDetail(CallSummary):
    turns: list[TurnOut]
    transfers: list[TransferOut]
    recordings: list[RecordingOut]


class CallPage(BaseModel):
    items: list[CallSummary]
    total: int
    limit: int
    offset: int


class CallbackOut(_Out):
    id: int
    call_id: str | None
    number: str
    due_at: float | None
    state: str
    note: str
    created_at: float


class ConferenceOut(_Out):
    id: str
    name: str
    participants: list[str]
    started_at: float
    ended_at: float | None


class HumanAgentOut(_Out):
    id: str
    name: str
    extension: str
    status: str
    updated_at: float


class TokenOut(_Out):
    id: int
    name: str
    role: str
    prefix: str
    created_at: float
    revoked_at: float | None


class AuditOut(_Out):
    id: int
    at: float
    actor: str
    action: str
    call_id: str | None
    details: dict[str, Any]


class Stats(BaseModel):
    since: float
    calls_per_hour: list[tuple[float, int]]
    outcomes: dict[str, int]
    containment_rate: float | None
    latency_ms: dict[str, float | None]
    total_calls: int
