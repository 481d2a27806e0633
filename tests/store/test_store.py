"""The call records on SQLite and PostgreSQL: written as calls go, closed out after a crash."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from operadora import events as ev
from operadora.events import EventBus
from operadora.store import CallFilter, Store
from operadora.store.calls import containment_rate, percentile
from operadora.store.models import Base
from operadora.store.recorder import CallRecorder

pytestmark = pytest.mark.integration


class FakeActions:
    """Call control as the recorder sees it: records and reports through events."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.recorded: list[tuple[str, str]] = []

    async def hangup(self, call_id: str) -> None:
        self.bus.publish(ev.CallEndedEvent(call_id, disposition="resolved", ended_by="api"))

    async def record(self, call_id: str, reason: str) -> str:
        name = f"rec-{call_id}-{len(self.recorded)}"
        self.recorded.append((call_id, reason))
        self.bus.publish(ev.RecordingEvent(call_id, name=name, state="started", reason=reason))
        return name


def call_events(call_id: str, t0: float, caller: str = "+34600111222") -> list[ev.DomainEvent]:
    return [
        ev.CallArrivedEvent(
            call_id,
            at=t0,
            caller_id=caller,
            did="100",
            channel_id="ch-" + call_id,
            server="asterisk-1",
            instance="engine-a",
        ),
        ev.CallAnsweredEvent(call_id, at=t0 + 0.5),
        ev.MediaConnectedEvent(call_id, at=t0 + 0.7, sample_rate=16000),
        ev.TurnEvent(
            call_id,
            at=t0 + 2,
            speaker="agent",
            text="Hello, how can I help?",
            started_at=t0 + 1,
            ended_at=t0 + 2,
        ),
        ev.TurnEvent(
            call_id,
            at=t0 + 5,
            speaker="caller",
            text="I want to pay my bill",
            started_at=t0 + 3,
            ended_at=t0 + 5,
        ),
        ev.TurnEvent(
            call_id,
            at=t0 + 6,
            speaker="agent",
            text="Sure.",
            started_at=t0 + 5.6,
            ended_at=t0 + 6,
            latency_ms=600.0,
            timings={"stt_ms": 120, "llm_ms": 300},
        ),
    ]


async def test_migrations_create_exactly_the_models(store: Store) -> None:
    def diff(conn: object) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))  # type: ignore[arg-type]

    async with store.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await store.db.current_revision() == "0001"
    await store.db.upgrade()  # idempotent
    assert await store.db.current_revision() == "0001"


async def test_a_call_is_written_as_it_goes(store: Store) -> None:
    bus = EventBus()
    recorder = CallRecorder(store, bus, instance="engine-a")
    await recorder.start()
    t0 = time.time()
    for e in call_events("c1", t0):
        bus.publish(e)
    await recorder.drain()
    mid = await store.calls.get_call("c1")
    assert mid is not None and mid.ended_at is None and mid.state == "connected"
    assert [t.text for t in mid.turns] == [
        "Hello, how can I help?",
        "I want to pay my bill",
        "Sure.",
    ]
    bus.publish(
        ev.TransferEvent(
            "c1", at=t0 + 7, transfer_id="t1", kind="attended", target="200", state="ringing"
        )
    )
    bus.publish(
        ev.TransferEvent(
            "c1",
            at=t0 + 9,
            transfer_id="t1",
            kind="attended",
            target="200",
            state="completed",
            outcome="completed",
        )
    )
    bus.publish(
        ev.CallEndedEvent(
            "c1",
            at=t0 + 10,
            disposition="transferred",
            cause=16,
            cause_txt="Normal Clearing",
            ended_by="agent",
        )
    )
    bus.publish(ev.CallEndedEvent("c1", at=t0 + 11, disposition="failed", ended_by="system"))
    await recorder.stop()

    detail = await store.calls.get_call("c1")
    assert detail is not None
    assert (detail.caller_id, detail.did, detail.server, detail.instance) == (
        "+34600111222",
        "100",
        "asterisk-1",
        "engine-a",
    )
    assert detail.answered_at == pytest.approx(t0 + 0.5)
    assert detail.ended_at == pytest.approx(t0 + 10)  # the first end wins
    assert (detail.disposition, detail.hangup_cause, detail.ended_by) == (
        "transferred",
        16,
        "agent",
    )
    assert detail.turns[2].latency_ms == 600.0 and detail.turns[2].timings["llm_ms"] == 300
    [transfer] = detail.transfers
    assert [h["state"] for h in transfer.history] == ["ringing", "completed"]
    assert transfer.outcome == "completed"
    page = await store.calls.list_calls(CallFilter())
    assert page.total == 1  # exactly one record


async def test_crashed_engine_calls_are_closed_out_on_restart(store: Store) -> None:
    bus = EventBus()
    first = CallRecorder(store, bus, instance="engine-a")
    await first.start()
    t0 = time.time()
    for e in call_events("open-a", t0):
        bus.publish(e)
    bus.publish(ev.CallArrivedEvent("open-b", at=t0, instance="engine-b"))
    await first.drain()
    # the engine dies: no CallEndedEvent ever comes
    del first

    restarted = CallRecorder(store, EventBus(), instance="engine-a")
    assert await restarted.close_out_open_calls() == ["open-a"]
    closed = await store.calls.get_call("open-a")
    assert closed is not None
    assert (closed.state, closed.disposition, closed.ended_by, closed.closed_out) == (
        "ended",
        "failed",
        "system",
        True,
    )
    assert closed.ended_at == pytest.approx(t0 + 6)  # the last thing known to have happened
    other = await store.calls.get_call("open-b")
    assert other is not None and other.ended_at is None  # another instance's call
    assert await restarted.close_out_open_calls() == []


async def test_history_filters_and_pages(store: Store) -> None:
    recorder = CallRecorder(store, EventBus())
    t0 = time.time() - 100
    for i in range(7):
        for e in call_events(f"h{i}", t0 + i, caller="+1555000" + str(i % 2)):
            await recorder.handle(e)
        if i < 6:
            await recorder.handle(
                ev.CallEndedEvent(
                    f"h{i}", at=t0 + i + 8, disposition="resolved" if i % 3 else "abandoned"
                )
            )
    await recorder.handle(ev.TurnEvent("h3", speaker="caller", text="my router is broken"))

    page = await store.calls.list_calls(CallFilter(limit=3))
    assert page.total == 7 and [c.id for c in page.items] == ["h6", "h5", "h4"]
    page2 = await store.calls.list_calls(CallFilter(limit=3, offset=3))
    assert [c.id for c in page2.items] == ["h3", "h2", "h1"]
    assert (await store.calls.list_calls(CallFilter(state="live"))).total == 1
    assert (await store.calls.list_calls(CallFilter(caller_id="+15550001"))).total == 3
    assert (await store.calls.list_calls(CallFilter(disposition="abandoned"))).total == 2
    found = await store.calls.list_calls(CallFilter(text="ROUTER"))
    assert [c.id for c in found.items] == ["h3"]
    assert (await store.calls.list_calls(CallFilter(text="100%_"))).total == 0
    since = await store.calls.list_calls(CallFilter(since=t0 + 5))
    assert {c.id for c in since.items} == {"h5", "h6"}

    stats = await store.calls.stats(t0 - 1)
    assert stats.total_calls == 7
    assert stats.outcomes == {"resolved": 4, "abandoned": 2}
    assert stats.containment_rate == pytest.approx(4 / 6)
    assert stats.latency_ms["p50"] == 600.0
    assert sum(n for _, n in stats.calls_per_hour) == 7


async def test_negative_sentiment_and_agent_requests_start_recordings(store: Store) -> None:
    bus = EventBus()
    actions = FakeActions(bus)
    recorder = CallRecorder(store, bus, actions=actions)
    await recorder.start()
    t0 = time.time()
    for e in call_events("angry", t0) + call_events("asks", t0):
        bus.publish(e)
    bus.publish(ev.TurnEvent("angry", speaker="caller", text="This is ridiculous"))
    bus.publish(ev.TurnEvent("angry", speaker="caller", text="Es inaceptable, estoy harto"))
    bus.publish(ev.TurnEvent("angry", speaker="caller", text="terrible, just terrible"))
    bus.publish(ev.ActionRequestedEvent("asks", action="record", params={"reason": "consent"}))
    bus.publish(ev.ActionRequestedEvent("asks", action="record"))  # already recording
    await recorder.drain()
    await asyncio.sleep(0)
    await recorder.drain()
    assert actions.recorded == [("angry", "negative-sentiment"), ("asks", "consent")]
    angry = await store.calls.get_call("angry")
    assert angry is not None
    assert [t.negative for t in angry.turns if t.speaker == "caller"] == [False, False, True, False]
    assert [(r.reason, r.state) for r in angry.recordings] == [("negative-sentiment", "started")]
    bus.publish(
        ev.RecordingEvent(
            "angry", name=angry.recordings[0].name, state="finished", reason="cause: hangup"
        )
    )
    bus.publish(ev.CallEndedEvent("angry", disposition="resolved"))
    await recorder.stop()
    ended = await store.calls.get_call("angry")
    assert ended is not None
    assert [(r.reason, r.state) for r in ended.recordings] == [("negative-sentiment", "finished")]
    trail = await store.admin.audit_trail()
    assert {(a.action, a.call_id) for a in trail} >= {("record", "angry"), ("record", "asks")}


async def test_callbacks_from_agent_actions(store: Store) -> None:
    recorder = CallRecorder(store, EventBus())
    await recorder.handle(ev.CallArrivedEvent("cb", caller_id="+5491100"))
    await recorder.handle(
        ev.ActionRequestedEvent(
            "cb", action="callback", params={"at": 1_900_000_000.0, "note": "tomorrow 10am"}
        )
    )
    [callback] = await store.admin.callbacks()
    assert (callback.number, callback.due_at, callback.note, callback.call_id) == (
        "+5491100",
        1_900_000_000.0,
        "tomorrow 10am",
        "cb",
    )


async def test_tokens_are_stored_hashed_and_can_be_revoked(store: Store) -> None:
    token, row = await store.tokens.create("viewer", "wallboard")
    assert token.startswith("opd_") and len(token) > 40
    listed = await store.tokens.all()
    assert [t.name for t in listed] == ["wallboard"]
    exported = await store.tokens.export()
    assert token not in str(exported) and exported[0]["token_hash"] != token
    who = await store.tokens.verify(token)
    assert who is not None and who.role == "viewer"
    assert await store.tokens.verify(token + "x") is None
    assert await store.tokens.revoke(row.id) is True
    assert await store.tokens.verify(token) is None
    assert await store.tokens.revoke(row.id) is False
    with pytest.raises(ValueError):
        await store.tokens.create("root")  # type: ignore[arg-type]


async def test_recording_retention_deletes_rows_and_files(store: Store, tmp_path: Path) -> None:
    recorder = CallRecorder(store, EventBus())
    old, new = time.time() - 40 * 86_400, time.time()
    for name, at in (("old", old), ("new", new)):
        await recorder.handle(ev.CallArrivedEvent(name, at=at))
        (tmp_path / "recordings" / f"{name}.wav").write_bytes(b"RIFF")
        await recorder.handle(
            ev.RecordingEvent(name, at=at, name=name, state="finished", reason="api")
        )
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(b"RIFF")
    await recorder.handle(
        ev.RecordingEvent("old", at=old, name="evil", state="finished", path=str(outside))
    )
    assert await store.admin.enforce_retention(30) == 2
    assert not (tmp_path / "recordings" / "old.wav").exists()
    assert (tmp_path / "recordings" / "new.wav").exists()
    assert outside.exists()  # never touches files outside the recordings folder
    [kept] = (await store.calls.get_call("new")).recordings  # type: ignore[union-attr]
    found = await store.admin.recording(kept.id)
    assert found is not None and found[0].playable and found[1] is not None


async def test_human_agents(store: Store) -> None:
    await store.admin.upsert_agent("a1", name="Ana", extension="201", status="available")
    await store.admin.upsert_agent("a1", status="on_call")
    [agent] = await store.admin.agents()
    assert (agent.name, agent.extension, agent.status) == ("Ana", "201", "on_call")
    with pytest.raises(ValueError):
        await store.admin.upsert_agent("a1", status="sleeping")


def test_percentile_and_containment() -> None:
    assert percentile([], 95) is None
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile(list(range(1, 101)), 95) == 95
    assert containment_rate({}) is None
    assert containment_rate({"spam": 3}) is None
    assert containment_rate({"resolved": 3, "transferred": 1, "spam": 10}) == 0.75


async def test_the_recorder_enforces_retention_when_it_starts(store: Store, tmp_path: Path) -> None:
    old = time.time() - 31 * 86_400
    writer = CallRecorder(store, EventBus())
    await writer.handle(ev.CallArrivedEvent("aged", at=old))
    await writer.handle(ev.RecordingEvent("aged", at=old, name="aged", state="finished"))
    (tmp_path / "recordings" / "aged.wav").write_bytes(b"RIFF")
    recorder = CallRecorder(store, EventBus())
    await recorder.start()
    try:
        for _ in range(200):
            detail = await store.calls.get_call("aged")
            if detail is not None and not detail.recordings:
                break
            await asyncio.sleep(0.01)
        assert detail is not None and detail.recordings == []
        assert not (tmp_path / "recordings" / "aged.wav").exists()
    finally:
        await recorder.stop()


async def test_one_bad_event_in_a_batch_loses_nothing_else(store: Store) -> None:
    recorder = CallRecorder(store, EventBus())
    bad = ev.TurnEvent("b", speaker="caller", text="x", timings={"stt": {1, 2}})  # type: ignore[dict-item]
    await recorder.handle_batch(
        [
            ev.CallArrivedEvent("b", caller_id="+1"),
            ev.TurnEvent("b", speaker="agent", text="first"),
            bad,
            ev.TurnEvent("b", speaker="agent", text="after the bad one"),
            ev.CallEndedEvent("b", disposition="resolved"),
        ]
    )
    detail = await store.calls.get_call("b")
    assert detail is not None and detail.caller_id == "+1"
    assert [t.text for t in detail.turns] == ["first", "after the bad one"]
    assert detail.disposition == "resolved"


async def test_instances_migrating_together(store: Store) -> None:
    from operadora.store import Database

    others = [Database(store.db.url, schema=store.db.schema) for _ in range(3)]
    try:
        await asyncio.gather(*(db.upgrade() for db in others))
        assert {await db.current_revision() for db in others} == {"0001"}
    finally:
        for db in others:
            await db.dispose()


CRASHING_ENGINE = """
import asyncio, os, sys, time
from operadora import events as ev
from operadora.store import Database, Store
from operadora.store.recorder import CallRecorder

async def main(url, schema):
    store = Store(Database(url, schema=schema or None))
    bus = ev.EventBus()
    recorder = CallRecorder(store, bus, instance="crashy")
    await recorder.start()
    t0 = time.time()
    bus.publish(ev.CallArrivedEvent("mid", at=t0, caller_id="+1999", instance="crashy"))
    bus.publish(ev.CallAnsweredEvent("mid", at=t0 + 1))
    bus.publish(ev.TurnEvent("mid", at=t0 + 3, speaker="caller", text="hello?",
                             started_at=t0 + 2, ended_at=t0 + 3))
    await recorder.drain()
    print("written", flush=True)
    os._exit(9)  # the engine dies mid-call: no end event, no cleanup

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_killed_engine_leaves_one_complete_record(store: Store) -> None:
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_ENGINE,
        store.db.url,
        store.db.schema or "",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 9 and b"written" in out
    mid = await store.calls.get_call("mid")
    assert mid is not None and mid.ended_at is None  # it was written as it went

    restarted = CallRecorder(store, EventBus(), instance="crashy")
    await restarted.start()
    await restarted.stop()
    page = await store.calls.list_calls(CallFilter(caller_id="+1999"))
    assert page.total == 1
    [record] = page.items
    assert (record.state, record.disposition, record.ended_by, record.closed_out) == (
        "ended",
        "failed",
        "system",
        True,
    )
    assert record.ended_at is not None and record.ended_at >= record.arrived_at + 3
