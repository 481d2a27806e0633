"""Writing calls as they happen and reading them back (history, detail, stats)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from operadora import events as ev
from operadora.store.db import Database
from operadora.store.models import CallRow, RecordingRow, TransferRow, TurnRow
from operadora.store.schemas import (
    CallDetail,
    CallPage,
    CallSummary,
    RecordingOut,
    Stats,
    TransferOut,
    TurnOut,
)

OPEN_STATES = ("arrived", "answered", "connected")


@dataclass(frozen=True, slots=True)
class CallFilter:
    caller_id: str | None = None
    did: str | None = None
    disposition: str | None = None
    state: str | None = None  # "live" | "ended" | a call state
    since: float | None = None
    until: float | None = None
    text: str | None = None  # substring of the transcript
    limit: int = 50
    offset: int = 0


async def _call(session: AsyncSession, call_id: str, at: float) -> CallRow:
    """The call's row, created when an event arrives before CallArrivedEvent (rows are kept
    for the session: a batch of events touches few calls many times)."""
    rows: dict[str, CallRow] = session.info.setdefault("calls", {})
    row = rows.get(call_id)
    if row is None:
        row = await session.get(CallRow, call_id)
    if row is None:
        row = CallRow(id=call_id, arrived_at=at, state="arrived", disposition="")
        session.add(row)
        await session.flush()
    rows[call_id] = row
    return row


Written = tuple[ev.DomainEvent, bool]  # an event, and whether a caller turn is negative


async def _arrived(s: AsyncSession, e: ev.CallArrivedEvent) -> None:
    row = await _call(s, e.call_id, e.at)
    row.caller_id, row.did, row.channel_id = e.caller_id, e.did, e.channel_id
    row.server, row.instance, row.arrived_at = e.server, e.instance, e.at


async def _answered(s: AsyncSession, e: ev.CallAnsweredEvent) -> None:
    row = await _call(s, e.call_id, e.at)
    row.answered_at = e.at
    if row.state == "arrived":
        row.state = "answered"


async def _media_connected(s: AsyncSession, e: ev.MediaConnectedEvent) -> None:
    row = await _call(s, e.call_id, e.at)
    row.media_at = e.at
    if row.state in ("arrived", "answered"):
        row.state = "connected"


async def _turn(s: AsyncSession, e: ev.TurnEvent, negative: bool) -> None:
    await _call(s, e.call_id, e.at)
    s.add(
        TurnRow(
            call_id=e.call_id,
            speaker=e.speaker,
            text=e.text,
            started_at=e.started_at or e.at,
            ended_at=e.ended_at or e.at,
            interrupted=e.interrupted,
            latency_ms=e.latency_ms,
            timings=dict(e.timings),
            negative=negative,
        )
    )


async def _transfer(s: AsyncSession, e: ev.TransferEvent) -> None:
    await _call(s, e.call_id, e.at)
    tid = e.transfer_id or f"{e.call_id}:{e.kind}:{e.at}"
    row = await s.get(TransferRow, tid)
    step = {"state": e.state, "at": e.at}
    if row is None:
        s.add(
            TransferRow(
                id=tid,
                call_id=e.call_id,
                kind=e.kind,
                target=e.target,
                state=e.state,
                outcome=e.outcome,
                history=[step],
                started_at=e.at,
                updated_at=e.at,
            )
        )
        return
    row.history = [*row.history, step]
    row.state, row.updated_at = e.state, e.at
    row.kind, row.target = e.kind or row.kind, e.target or row.target
    if e.outcome is not None:
        row.outcome = e.outcome


async def _recording(s: AsyncSession, e: ev.RecordingEvent) -> None:
    await _call(s, e.call_id, e.at)
    found = await s.scalars(
        select(RecordingRow).where(RecordingRow.call_id == e.call_id, RecordingRow.name == e.name)
    )
    row = found.first()
    if row is None:
        row = RecordingRow(call_id=e.call_id, name=e.name, started_at=e.at)
        s.add(row)
    row.state = e.state or row.state
    row.reason = row.reason or e.reason  # why it started; later events carry causes
    row.path = e.path or row.path
    if e.state in ("finished", "failed"):
        row.ended_at = e.at


async def _ended(s: AsyncSession, e: ev.CallEndedEvent) -> None:
    row = await _call(s, e.call_id, e.at)
    if row.ended_at is not None and not row.closed_out:
        return  # the first end wins: one complete record per call
    row.state, row.ended_at = "ended", e.at
    row.disposition = e.disposition or "resolved"
    row.hangup_cause, row.hangup_cause_txt = e.cause, e.cause_txt
    row.ended_by, row.closed_out = e.ended_by, False
    await s.execute(
        update(RecordingRow)
        .where(RecordingRow.call_id == e.call_id, RecordingRow.ended_at.is_(None))
        .values(ended_at=e.at, state="finished")
    )


async def _apply(s: AsyncSession, e: ev.DomainEvent, negative: bool) -> None:
    match e:
        case ev.CallArrivedEvent():
            await _arrived(s, e)
        case ev.CallAnsweredEvent():
            await _answered(s, e)
        case ev.MediaConnectedEvent():
            await _media_connected(s, e)
        case ev.TurnEvent():
            await _turn(s, e, negative)
        case ev.TransferEvent():
            await _transfer(s, e)
        case ev.RecordingEvent():
            await _recording(s, e)
        case ev.CallEndedEvent():
            await _ended(s, e)
        case _:
            pass


class CallRepository:
    """Calls, turns, transfers and recordings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def write(self, events: Sequence[Written]) -> None:
        """Write events in order, in one transaction."""
        async with self.db.session() as s, s.begin():
            for event, negative in events:
                await _apply(s, event, negative)

    async def arrived(self, e: ev.CallArrivedEvent) -> None:
        await self.write([(e, False)])

    async def answered(self, e: ev.CallAnsweredEvent) -> None:
        await self.write([(e, False)])

    async def media_connected(self, e: ev.MediaConnectedEvent) -> None:
        await self.write([(e, False)])

    async def turn(self, e: ev.TurnEvent, *, negative: bool = False) -> None:
        await self.write([(e, negative)])

    async def transfer(self, e: ev.TransferEvent) -> None:
        await self.write([(e, False)])

    async def recording(self, e: ev.RecordingEvent) -> None:
        await self.write([(e, False)])

    async def ended(self, e: ev.CallEndedEvent) -> None:
        await self.write([(e, False)])

    async def close_out_open_calls(self, instance: str | None = None) -> list[str]:
        """End the calls a crashed engine left open; returns their ids."""
        async with self.db.session() as s, s.begin():
            query = select(CallRow).where(CallRow.ended_at.is_(None))
            if instance is not None:
                query = query.where(CallRow.instance == instance)
            rows = list(await s.scalars(query))
            for row in rows:
                last = await s.scalar(
                    select(func.max(TurnRow.ended_at)).where(TurnRow.call_id == row.id)
                )
                row.ended_at = max(
                    last or 0.0, row.media_at or 0.0, row.answered_at or 0.0, row.arrived_at
                )
                row.state, row.disposition, row.ended_by = "ended", "failed", "system"
                row.hangup_cause_txt = "engine stopped during the call"
                row.closed_out = True
            return [row.id for row in rows]

    async def list_calls(self, f: CallFilter) -> CallPage:
        query = select(CallRow)
        if f.caller_id:
            query = query.where(CallRow.caller_id == f.caller_id)
        if f.did:
            query = query.where(CallRow.did == f.did)
        if f.disposition:
            query = query.where(CallRow.disposition == f.disposition)
        if f.state == "live":
            query = query.where(CallRow.ended_at.is_(None))
        elif f.state:
            query = query.where(CallRow.state == f.state)
        if f.since is not None:
            query = query.where(CallRow.arrived_at >= f.since)
        if f.until is not None:
            query = query.where(CallRow.arrived_at < f.until)
        if f.text:
            pattern = "%" + f.text.replace("%", r"\%").replace("_", r"\_") + "%"
            sub = select(TurnRow.call_id).where(TurnRow.text.ilike(pattern, escape="\\"))
            query = query.where(CallRow.id.in_(sub))
        async with self.db.session() as s:
            total = await s.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = await s.scalars(
                query.order_by(CallRow.arrived_at.desc(), CallRow.id)
                .limit(f.limit)
                .offset(f.offset)
            )
            items = [CallSummary.model_validate(r) for r in rows]
        return CallPage(items=items, total=total, limit=f.limit, offset=f.offset)

    async def get_call(self, call_id: str) -> CallDetail | None:
        async with self.db.session() as s:
            row = await s.get(CallRow, call_id)
            if row is None:
                return None
            turns = await s.scalars(
                select(TurnRow).where(TurnRow.call_id == call_id).order_by(TurnRow.id)
            )
            transfers = await s.scalars(
                select(TransferRow)
                .where(TransferRow.call_id == call_id)
                .order_by(TransferRow.started_at)
            )
            recs = await s.scalars(
                select(RecordingRow)
                .where(RecordingRow.call_id == call_id)
                .order_by(RecordingRow.id)
            )
            summary = CallSummary.model_validate(row).model_dump()
            return CallDetail(
                **summary,
                turns=[TurnOut.model_validate(t) for t in turns],
                transfers=[TransferOut.model_validate(t) for t in transfers],
                recordings=[RecordingOut.model_validate(r) for r in recs],
            )

    async def active_transfers(self) -> list[TransferOut]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(TransferRow)
                .where(TransferRow.outcome.is_(None))
                .order_by(TransferRow.started_at.desc())
                .limit(200)
            )
            return [TransferOut.model_validate(r) for r in rows]

    async def stats(self, since: float | None = None) -> Stats:
        since = time.time() - 86_400 if since is None else since
        async with self.db.session() as s:
            arrivals = list(
                await s.scalars(select(CallRow.arrived_at).where(CallRow.arrived_at >= since))
            )
            outcome_rows = await s.execute(
                select(CallRow.disposition, func.count())
                .where(CallRow.arrived_at >= since, CallRow.ended_at.is_not(None))
                .group_by(CallRow.disposition)
            )
            latencies = list(
                await s.scalars(
                    select(TurnRow.latency_ms)
                    .join(CallRow, CallRow.id == TurnRow.call_id)
                    .where(CallRow.arrived_at >= since, TurnRow.latency_ms.is_not(None))
                    .order_by(TurnRow.id.desc())
                    .limit(20_000)
                )
            )
        outcomes = {str(d or "unknown"): int(n) for d, n in outcome_rows.all()}
        return Stats(
            since=since,
            calls_per_hour=_per_hour(arrivals),
            outcomes=outcomes,
            containment_rate=containment_rate(outcomes),
            latency_ms={
                f"p{q}": percentile([x for x in latencies if x is not None], q)
                for q in (50, 90, 95, 99)
            },
            total_calls=len(arrivals),
        )


def _per_hour(arrivals: list[float]) -> list[tuple[float, int]]:
    buckets: dict[float, int] = {}
    for at in arrivals:
        hour = math.floor(at / 3600) * 3600.0
        buckets[hour] = buckets.get(hour, 0) + 1
    return sorted(buckets.items())


def containment_rate(outcomes: dict[str, int]) -> float | None:
    """Share of ended calls (spam aside) the AI resolved without handing them to a person."""
    considered = sum(n for d, n in outcomes.items() if d != "spam")
    if considered == 0:
        return None
    return outcomes.get("resolved", 0) / considered


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])
