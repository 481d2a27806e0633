"""The REST routes under ``/api``."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from operadora import __version__
from operadora.api.actions import ActionFailed, CallActions, CallNotFound
from operadora.api.auth import Admin, TokenAuth, Viewer
from operadora.api.errors import ERROR_RESPONSES, ApiError
from operadora.api.live import LiveCall, LiveView
from operadora.store import Store
from operadora.store.admin import AGENT_STATUSES
from operadora.store.calls import CallFilter
from operadora.store.schemas import (
    AuditOut,
    CallbackOut,
    CallDetail,
    CallPage,
    ConferenceOut,
    HumanAgentOut,
    RecordingOut,
    Stats,
    TransferOut,
)

router = APIRouter(prefix="/api", responses=ERROR_RESPONSES)

CallId = Annotated[str, PathParam(min_length=1, max_length=64)]
RecordingId = Annotated[int, PathParam(ge=1, le=2**62)]
AgentStatus = Literal["available", "busy", "on_call", "paused", "offline"]
assert set(AGENT_STATUSES) == set(AgentStatus.__args__)  # type: ignore[attr-defined]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _live(request: Request) -> LiveView:
    live: LiveView = request.app.state.live
    return live


def _actions(request: Request) -> CallActions:
    actions: CallActions | None = request.app.state.actions
    if actions is None:
        raise ApiError(503, "actions_unavailable", "call control is not running here")
    return actions


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "error"]
    version: str
    live_calls: int


class Me(BaseModel):
    name: str
    role: str


class ActionResult(BaseModel):
    call_id: str
    action: str
    recording: str | None = None


class RecordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("api", min_length=1, max_length=64)


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=128)
    extension: str | None = Field(None, max_length=32)
    status: AgentStatus | None = None


@router.get("/health", response_model=Health, tags=["health"])
async def health(request: Request) -> Health:
    """Liveness and database reachability; needs no token."""
    ok = True
    try:
        await _store(request).db.current_revision()
    except Exception:
        ok = False
    return Health(
        status="ok" if ok else "degraded",
        database="ok" if ok else "error",
        version=__version__,
        live_calls=len(_live(request).calls),
    )


@router.get("/me", response_model=Me, tags=["auth"])
async def me(identity: Viewer) -> Me:
    return Me(name=identity.name, role=identity.role)


@router.get("/live/calls", response_model=list[LiveCall], tags=["live"])
async def live_calls(request: Request, _: Viewer) -> list[LiveCall]:
    """Calls in progress across every instance, with their transcript so far."""
    return _live(request).snapshot()


@router.get("/live/stream", tags=["live"], response_class=StreamingResponse)
async def live_stream(request: Request, _: Viewer) -> StreamingResponse:
    """Server-Sent Events: ``snapshot`` first, then one event per domain event; the stream
    ends within a heartbeat (15 s) of its token being revoked."""
    auth: TokenAuth = request.app.state.auth
    token: str = request.state.token

    async def allowed() -> bool:
        return await auth.identify(token) is not None

    return StreamingResponse(
        _live(request).stream(request.app.state.heartbeat_s, allowed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/calls", response_model=CallPage, tags=["calls"])
async def calls(
    request: Request,
    _: Viewer,
    caller_id: Annotated[str | None, Query(max_length=64)] = None,
    did: Annotated[str | None, Query(max_length=64)] = None,
    disposition: Annotated[str | None, Query(max_length=32)] = None,
    state: Annotated[str | None, Query(max_length=16, description="live, ended, ...")] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    q: Annotated[str | None, Query(max_length=200, description="text in the transcript")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CallPage:
    """Call history, newest first."""
    return await _store(request).calls.list_calls(
        CallFilter(caller_id, did, disposition, state, since, until, q, limit, offset)
    )


@router.get("/calls/{call_id}", response_model=CallDetail, tags=["calls"])
async def call_detail(request: Request, call_id: CallId, _: Viewer) -> CallDetail:
    """One call with its transcript, transfers and recordings."""
    store = _store(request)
    detail = await store.calls.get_call(call_id)
    if detail is None:
        raise ApiError(404, "call_not_found", f"no call {call_id}", call_id=call_id)
    for rec in detail.recordings:
        found = await store.admin.recording(rec.id)
        rec.playable = found is not None and found[1] is not None
    return detail


@router.post("/calls/{call_id}/hangup", response_model=ActionResult, tags=["actions"])
async def hangup(request: Request, call_id: CallId, identity: Admin) -> ActionResult:
    """Hang the call up now."""
    try:
        await _actions(request).hangup(call_id)
    except CallNotFound:
        raise ApiError(
            404, "call_not_live", f"call {call_id} is not live", call_id=call_id
        ) from None
    except ActionFailed as exc:
        raise ApiError(409, "action_failed", str(exc), call_id=call_id) from exc
    await _store(request).admin.audit(identity.name, "hangup", call_id)
    return ActionResult(call_id=call_id, action="hangup")


@router.post("/calls/{call_id}/record", response_model=ActionResult, tags=["actions"])
async def record(
    request: Request, call_id: CallId, identity: Admin, body: RecordRequest | None = None
) -> ActionResult:
    """Start recording the call's bridge."""
    reason = body.reason if body is not None else "api"
    try:
        name = await _actions(request).record(call_id, reason)
    except CallNotFound:
        raise ApiError(
            404, "call_not_live", f"call {call_id} is not live", call_id=call_id
        ) from None
    except ActionFailed as exc:
        raise ApiError(409, "action_failed", str(exc), call_id=call_id) from exc
    await _store(request).admin.audit(identity.name, "record", call_id, reason=reason, name=name)
    return ActionResult(call_id=call_id, action="record", recording=name)


@router.get("/transfers", response_model=list[TransferOut], tags=["calls"])
async def transfers(request: Request, _: Viewer) -> list[TransferOut]:
    """Transfers still in progress."""
    return await _store(request).calls.active_transfers()


@router.get("/callbacks", response_model=list[CallbackOut], tags=["calls"])
async def callbacks(request: Request, _: Viewer) -> list[CallbackOut]:
    return await _store(request).admin.callbacks()


@router.get("/conferences", response_model=list[ConferenceOut], tags=["calls"])
async def conferences(request: Request, _: Viewer) -> list[ConferenceOut]:
    return await _store(request).admin.conferences()


@router.get("/agents", response_model=list[HumanAgentOut], tags=["agents"])
async def agents(request: Request, _: Viewer) -> list[HumanAgentOut]:
    """Human agents and their status."""
    return await _store(request).admin.agents()


@router.put("/agents/{agent_id}", response_model=HumanAgentOut, tags=["agents"])
async def put_agent(
    request: Request,
    agent_id: Annotated[str, PathParam(min_length=1, max_length=64)],
    body: AgentUpdate,
    identity: Admin,
) -> HumanAgentOut:
    """Create a human agent or change its name, extension or status."""
    store = _store(request)
    out = await store.admin.upsert_agent(
        agent_id, name=body.name, extension=body.extension, status=body.status
    )
    await store.admin.audit(identity.name, "agent", None, agent=agent_id, status=out.status)
    return out


@router.get("/recordings/{recording_id}", response_model=RecordingOut, tags=["recordings"])
async def recording(request: Request, recording_id: RecordingId, _: Viewer) -> RecordingOut:
    found = await _store(request).admin.recording(recording_id)
    if found is None:
        raise ApiError(404, "recording_not_found", f"no recording {recording_id}")
    return found[0]


@router.get(
    "/recordings/{recording_id}/audio",
    tags=["recordings"],
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}}},
)
async def recording_audio(request: Request, recording_id: RecordingId, _: Viewer) -> FileResponse:
    """The recording's audio file, for playback."""
    found = await _store(request).admin.recording(recording_id)
    if found is None:
        raise ApiError(404, "recording_not_found", f"no recording {recording_id}")
    out, path = found
    if path is None:
        raise ApiError(404, "recording_file_missing", f"recording {out.name} has no file yet")
    media = "audio/wav" if path.suffix == ".wav" else "application/octet-stream"
    return FileResponse(path, media_type=media, filename=path.name)


@router.get("/stats", response_model=Stats, tags=["stats"])
async def stats(
    request: Request, _: Viewer, hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24
) -> Stats:
    """Calls per hour, outcomes, containment rate and voice-to-voice latency percentiles."""
    return await _store(request).calls.stats(time.time() - hours * 3600)


@router.get("/audit", response_model=list[AuditOut], tags=["audit"])
async def audit(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[AuditOut]:
    """Who did what, newest first (admins only)."""
    return await _store(request).admin.audit_trail(limit, offset)
