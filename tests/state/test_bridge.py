import asyncio
import uuid

import pytest

from operadora import events as ev
from operadora.events import EventBus
from operadora.state.bridge import LocalForwarder, RedisEventBridge
from operadora.state.codec import EVENT_TYPES, event_from_dict, event_to_dict
from support import port_open, require


@pytest.mark.unit
def test_every_event_kind_round_trips() -> None:
    samples = [
        ev.TurnEvent("c", speaker="agent", text="hola", latency_ms=512.0, timings={"tts_ms": 80}),
        ev.ActionRequestedEvent("c", action="transfer", target="200", params={"x": [1, 2]}),
        ev.CallEndedEvent("c", disposition="spam", cause=16, ended_by="system"),
        ev.TransferEvent("c", transfer_id="t", kind="attended", target="200", state="ringing"),
    ] + [cls("c") for cls in EVENT_TYPES.values()]
    for event in samples:
        assert event_from_dict(event_to_dict(event)) == event


@pytest.mark.unit
def test_unknown_kinds_and_fields_are_refused() -> None:
    with pytest.raises(ValueError):
        event_from_dict({"event": "NopeEvent", "call_id": "c"})
    with pytest.raises(ValueError):
        event_from_dict({"event": "TurnEvent", "call_id": "c", "evil": 1})


@pytest.mark.unit
async def test_local_forwarder_feeds_the_cluster_bus() -> None:
    local, cluster = EventBus(), EventBus()
    forwarder = LocalForwarder(local, cluster)
    seen = cluster.subscribe()
    await forwarder.start()
    local.publish(ev.CallAnsweredEvent("c"))
    assert (await asyncio.wait_for(seen.get(), 2)).call_id == "c"
    await forwarder.stop()


@pytest.mark.integration
async def test_two_instances_see_each_others_events_once() -> None:
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    from redis.asyncio import Redis

    channel = f"opd-test:{uuid.uuid4().hex}"
    redis_a, redis_b = (
        Redis.from_url("redis://127.0.0.1:6379/0"),
        Redis.from_url("redis://127.0.0.1:6379/0"),
    )
    local_a, cluster_a, local_b, cluster_b = EventBus(), EventBus(), EventBus(), EventBus()
    a = RedisEventBridge(local_a, cluster_a, redis_a, "a", channel)
    b = RedisEventBridge(local_b, cluster_b, redis_b, "b", channel)
    seen_a, seen_b, local_seen_b = cluster_a.subscribe(), cluster_b.subscribe(), local_b.subscribe()
    await a.start()
    await b.start()
    try:
        local_a.publish(ev.TurnEvent("call-a", speaker="caller", text="hello"))
        local_b.publish(ev.CallArrivedEvent("call-b", caller_id="+1"))
        got_b = [await asyncio.wait_for(seen_b.get(), 3) for _ in range(2)]
        got_a = [await asyncio.wait_for(seen_a.get(), 3) for _ in range(2)]
        assert {e.call_id for e in got_a} == {e.call_id for e in got_b} == {"call-a", "call-b"}
        assert any(isinstance(e, ev.TurnEvent) and e.text == "hello" for e in got_b)
        await asyncio.sleep(0.2)
        assert seen_a.empty() and seen_b.empty()  # no echo, no loop
        # remote events never enter the local bus (the local recorder must not write them)
        assert [e.call_id for e in [local_seen_b.get_nowait()]] == ["call-b"]
        assert local_seen_b.empty()
    finally:
        await a.stop()
        await b.stop()
        await redis_a.aclose()
        await redis_b.aclose()
