"""The live view's projection of events, and its fan-out to slow dashboards (no I/O)."""

import asyncio

import pytest

from operadora import events as ev
from operadora.api.live import MAX_LIVE_TURNS, LiveView, sse

pytestmark = pytest.mark.unit


def test_a_call_is_projected_from_its_events() -> None:
    view = LiveView(ev.EventBus())
    view.apply(ev.CallArrivedEvent("c", at=10.0, caller_id="+1", did="100", server="pbx"))
    view.apply(ev.CallAnsweredEvent("c", at=11.0))
    view.apply(ev.MediaConnectedEvent("c"))
    view.apply(ev.SpeakingEvent("c", speaker="caller", speaking=True))
    view.apply(ev.SpeakingEvent("c", speaker="agent", speaking=True))
    view.apply(ev.SpeakingEvent("c", speaker="caller", speaking=False))
    view.apply(
        ev.TransferEvent("c", transfer_id="t", kind="attended", target="201", state="ringing")
    )
    view.apply(ev.RecordingEvent("c", name="r1", state="started"))
    [call] = view.snapshot()
    assert (call.caller_id, call.state, call.answered_at, call.speaking) == (
        "+1",
        "connected",
        11.0,
        ["agent"],
    )
    assert call.transfer == {"id": "t", "kind": "attended", "target": "201", "state": "ringing"}
    assert call.recording == "r1"
    view.apply(
        ev.TransferEvent(
            "c", transfer_id="t", kind="attended", target="201", state="done", outcome="completed"
        )
    )
    view.apply(ev.RecordingEvent("c", name="r1", state="finished"))
    [call] = view.snapshot()
    assert call.transfer is None and call.recording is None
    view.apply(ev.CallEndedEvent("c"))
    assert view.snapshot() == []


def test_events_for_an_unknown_call_start_it_and_transcripts_are_capped() -> None:
    view = LiveView(ev.EventBus())
    for n in range(MAX_LIVE_TURNS + 5):
        view.apply(ev.TurnEvent("late", speaker="caller", text=f"t{n}"))
    [call] = view.snapshot()
    assert len(call.turns) == MAX_LIVE_TURNS and call.turns[-1].text == f"t{MAX_LIVE_TURNS + 4}"
    view.apply(ev.CallEndedEvent("never-seen"))  # harmless
    assert [c.id for c in view.snapshot()] == ["late"]


async def test_a_slow_dashboard_is_told_to_resync_instead_of_slowing_calls() -> None:
    bus = ev.EventBus()
    view = LiveView(bus, client_queue=3)
    await view.start()
    stream = view.stream()
    assert (await anext(stream)).startswith("event: snapshot")
    for n in range(10):
        bus.publish(ev.TurnEvent("c", text=f"t{n}"))
    await asyncio.sleep(0.05)
    # 10 events into a queue of 3: the backlog was dropped for a resync, more than once
    assert (await anext(stream)).startswith("event: resync")
    bus.publish(ev.TurnEvent("c", text="after"))
    await asyncio.sleep(0.05)
    assert '"text":"after"' in await anext(stream)
    view.close_streams()
    with pytest.raises(StopAsyncIteration):
        while True:
            await anext(stream)
    await view.stop()


def test_sse_framing() -> None:
    assert sse("TurnEvent", {"a": 1}) == 'event: TurnEvent\ndata: {"a":1}\n\n'
