"""The inbound AI call, driven by ARI events shaped like Asterisk 22's (fake ARI, no I/O)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from operadora import events as ev
from operadora.ari.errors import AriServerError
from operadora.calls.resync import resync
from operadora.calls.state import CallState
from operadora.media import DtmfIn

pytestmark = pytest.mark.unit


def kinds(events: list[ev.DomainEvent]) -> list[str]:
    return [e.event_type for e in events]


async def start_call(h: Any, channel_id: str = "ch-1") -> Any:
    h.ari.add_caller(channel_id)
    await h.until(
        lambda: any(
            c.state is CallState.ACTIVE
            for c in h.service.calls.values()
            if c.channel_id == channel_id
        )
    )
    return h.service.call_for_channel(h.ari.name, channel_id)


async def test_stasis_start_answers_bridges_and_runs_the_agent(harness: Any) -> None:
    h = harness
    call = await start_call(h)
    ops = [op for op, _ in h.ari.requests]
    assert set(ops[:3]) == {"answer", "create_bridge", "external_media"}
    assert ops[3] == "add_channels"
    params = dict(h.ari.requests)
    media = params["external_media"]
    assert media == {
        "channelId": call.media_channel_id,
        "external_host": "10.0.0.5:9092",
        "data": call.call_id,
        "format": "slin16",
        "encapsulation": "audiosocket",
        "transport": "tcp",
    }
    assert params["add_channels"] == {
        "bridgeId": call.bridge_id,
        "channel": ["ch-1", call.media_channel_id],
    }
    assert h.ari.bridges[call.bridge_id] == ["ch-1", call.media_channel_id]
    await h.agent.started.wait()
    context = h.agent.contexts[0]
    assert (context.caller_id, context.caller_name, context.did) == ("5551000", "Alice", "110")
    assert context.channel_id == "ch-1" and not context.direct
    # our own externalMedia StasisStart did not become a second call
    assert len(h.service.calls) == 1


async def test_caller_hangup_tears_everything_down(harness: Any) -> None:
    h = harness
    call = await start_call(h)
    await h.agent.started.wait()
    h.ari.caller_hangs_up("ch-1")
    await asyncio.wait_for(call.ended.wait(), 2)
    await h.settle()
    assert h.ari.channels == {} and h.ari.bridges == {}
    assert h.media[call.call_id].hung_up
    assert h.agent.cancelled == 1
    published = h.published()
    assert kinds(published) == [
        "CallArrivedEvent",
        "CallAnsweredEvent",
        "MediaConnectedEvent",
        "CallEndedEvent",
    ]
    ended = published[-1]
    assert isinstance(ended, ev.CallEndedEvent)
    assert (ended.cause, ended.cause_txt, ended.ended_by, ended.disposition) == (
        16,
        "Normal Clearing",
        "caller",
        "resolved",
    )
    arrived = published[0]
    assert isinstance(arrived, ev.CallArrivedEvent)
    assert (arrived.caller_id, arrived.did, arrived.channel_id) == ("5551000", "110", "ch-1")
    assert [(a.value, t.value, b.value) for a, t, b in call.sm.history] == [
        ("ringing", "setup", "setting_up"),
        ("setting_up", "bridged", "bridged"),
        ("bridged", "media_connected", "active"),
        ("active", "hangup", "ending"),
        ("ending", "destroyed", "ended"),
    ]


async def test_agent_ending_the_call_hangs_up_the_caller(harness: Any) -> None:
    h = harness
    h.agent.stop_after_items = 1  # the agent returns after the first frame
    h.ari.add_caller("ch-1")
    await h.until(lambda: h.service.ended_calls == 1)
    assert ("hangup", {"channelId": "ch-1", "reason": "normal"}) in h.ari.requests
    assert h.ari.channels == {} and h.ari.bridges == {}
    ended = h.published()[-1]
    assert isinstance(ended, ev.CallEndedEvent)
    assert (ended.ended_by, ended.cause) == ("agent", 16)


async def test_hangup_requested_by_the_api(harness: Any) -> None:
    h = harness
    call = await start_call(h)
    assert await h.service.hangup(call.call_id, "api")
    assert not await h.service.hangup(call.call_id, "api")  # already ending: no second hang-up
    await asyncio.wait_for(call.ended.wait(), 2)
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert len(ended) == 1 and ended[0].ended_by == "api"
    hangups = [p["channelId"] for op, p in h.ari.requests if op == "hangup"]
    assert sorted(hangups) == sorted(["ch-1", call.media_channel_id]), h.ari.requests


async def test_dtmf_from_ari_reaches_the_agent_once(harness: Any) -> None:
    h = harness
    call = await start_call(h)
    await h.agent.started.wait()
    h.ari.emit("ChannelDtmfReceived", digit="7", duration_ms=120, channel=h.ari.channels["ch-1"])
    h.media[call.call_id].feed_dtmf("7")  # the same press also arrives as an AudioSocket frame
    h.media[call.call_id].feed_dtmf("3")
    await h.until(lambda: sum(isinstance(i, DtmfIn) for i in h.agent.items[call.call_id]) >= 2)
    await h.settle()
    digits = [i.digit for i in h.agent.items[call.call_id] if isinstance(i, DtmfIn)]
    assert digits == ["7", "3"]


async def test_duplicated_and_out_of_order_events_count_once(harness: Any) -> None:
    h = harness
    call = await start_call(h)
    start = h.ari.channels["ch-1"]
    h.ari.emit("StasisStart", args=["inbound", "110"], channel=start)  # duplicate
    h.ari.emit(
        "ChannelDtmfReceived",
        digit="1",
        duration_ms=100,
        channel={"id": "nobody", "name": "PJSIP/x"},
    )  # unknown channel
    h.ari.emit("StasisEnd", channel={"id": "nobody", "name": "PJSIP/x"})
    await h.settle()
    assert len(h.service.calls) == 1
    # ChannelDestroyed before StasisEnd, then both repeated
    channel = h.ari.channels.pop("ch-1")
    h.ari.bridges[call.bridge_id].remove("ch-1")
    for kind in ("ChannelDestroyed", "StasisEnd", "ChannelDestroyed", "StasisEnd"):
        fields = {"cause": 17, "cause_txt": "User busy"} if kind == "ChannelDestroyed" else {}
        h.ari.emit(kind, channel=channel, **fields)
    await asyncio.wait_for(call.ended.wait(), 2)
    await h.settle()
    h.ari.emit("StasisStart", args=["inbound", "110"], channel=start)  # late duplicate
    await h.settle()
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert len(ended) == 1 and (ended[0].cause, ended[0].cause_txt) == (17, "User busy")
    assert h.service.calls == {} and h.ari.bridges == {}
    assert h.router.ignored["duplicate StasisStart"] == 2
    assert h.router.ignored["unknown channel"] >= 1


async def test_setup_failure_hangs_up_and_records_failed(harness: Any) -> None:
    h = harness
    h.ari.fail["external_media"] = AriServerError(500, "Internal Server Error")
    h.ari.on_external_media = None
    h.ari.add_caller("ch-9")
    await h.until(lambda: h.service.ended_calls == 1)
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert (ended[0].disposition, ended[0].ended_by) == ("failed", "system")
    assert h.ari.channels == {} and h.ari.bridges == {}


async def test_stasis_start_for_a_channel_that_is_not_there_leaves_no_record(
    harness: Any,
) -> None:
    h = harness
    h.ari.on_external_media = None
    h.ari.add_caller("ch-8")
    h.ari.vanish("ch-8")  # gone before call control could answer: answer gets a 404
    await h.until(lambda: h.service.calls == {} and len(h.ari.requests) >= 4)
    await h.settle()
    assert h.published() == []
    assert h.ari.bridges == {} and h.ari.channels == {}  # bridge and media leg removed
    h.ari.emit(
        "StasisStart",
        args=["inbound", "110"],
        channel=h.channel_json("ch-8", "PJSIP/sipp-ch-8", "Ring"),
    )
    await h.settle()
    assert h.service.calls == {}  # a late repeat does not bring it back


async def test_caller_gone_during_setup_is_abandoned(harness: Any) -> None:
    h = harness
    # answered, then the caller hangs up before the bridge is formed
    h.ari.on_external_media = None
    h.ari.after["answer"] = lambda: h.ari.caller_hangs_up("ch-7")
    h.ari.add_caller("ch-7")
    await h.until(lambda: h.service.ended_calls == 1)
    assert ("add_channels", "ch-7") in [(op, p.get("channel", [""])[0]) for op, p in h.ari.requests]
    published = h.published()
    assert kinds(published) == ["CallArrivedEvent", "CallAnsweredEvent", "CallEndedEvent"]
    ended = published[-1]
    assert isinstance(ended, ev.CallEndedEvent)
    assert (ended.disposition, ended.ended_by, ended.cause) == ("abandoned", "caller", 16)
    assert h.ari.bridges == {} and h.ari.channels == {}


async def test_direct_audiosocket_route_runs_the_agent(harness: Any) -> None:
    h = harness
    media = h.new_media("0b7e5f0c-3a55-4d4e-9d0b-5e0c4c1d2a10", sample_rate=8000)
    media.feed_audio()
    task = asyncio.create_task(h.service.on_media(media))
    await h.agent.started.wait()
    assert h.agent.contexts[0].direct
    media.peer_hangs_up()
    await asyncio.wait_for(task, 2)
    published = h.published()
    assert kinds(published) == [
        "CallArrivedEvent",
        "CallAnsweredEvent",
        "MediaConnectedEvent",
        "CallEndedEvent",
    ]
    ended = published[-1]
    assert isinstance(ended, ev.CallEndedEvent) and ended.ended_by == "caller"
    assert h.ari.requests == []  # no ARI involved


async def test_resync_closes_vanished_calls_and_keeps_the_others(harness: Any) -> None:
    h = harness
    gone = await start_call(h, "ch-1")
    kept = await start_call(h, "ch-2")
    h.ari.vanish("ch-1")  # hung up while no events could arrive
    assert await resync(h.service, h.ari) == (1, 1)
    await asyncio.wait_for(gone.ended.wait(), 2)
    assert kept.state is CallState.ACTIVE
    assert gone.call_id not in h.ari.bridges and kept.call_id in h.ari.bridges
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert len(ended) == 1 and ended[0].call_id == gone.call_id
    assert ended[0].cause is None and "event stream was down" in ended[0].cause_txt
    assert ended[0].ended_by == "caller"


async def test_resync_completes_our_own_unconfirmed_hangup_as_normal(harness: Any) -> None:
    h = harness
    call = await start_call(h)
    h.ari.router = lambda event: None  # the WebSocket is down: events are lost
    assert await h.service.hangup(call.call_id, "agent")
    assert call.state is CallState.ENDING
    await resync(h.service, h.ari)
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert (ended[0].cause, ended[0].ended_by) == (16, "agent")


async def test_transitions_are_logged(harness: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="operadora.calls.state")
    call = await start_call(harness)
    assert f"call {call.call_id}: ringing -[setup]-> setting_up" in caplog.text


async def test_no_audiosocket_connection_fails_the_call(harness: Any) -> None:
    h = harness
    h.service.media_connect_timeout_s = 0.05
    h.ari.on_external_media = None  # Asterisk cannot reach our media server
    h.ari.add_caller("ch-5")
    await h.until(lambda: h.service.ended_calls == 1)
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert (ended[0].disposition, ended[0].ended_by, ended[0].cause) == ("failed", "system", 16)
    assert h.ari.channels == {} and h.ari.bridges == {}


async def test_transfer_replacements_and_internal_legs_are_not_new_calls(harness: Any) -> None:
    h = harness
    channel_json = h.channel_json
    others: list[str] = []
    h.router.others = lambda event: others.append(event.channel.id)
    replaced = channel_json("sip-1", "PJSIP/sipp-00000008")
    local = channel_json("loc-1", "Local/500@call-center-00000016;1", "Down")
    # trace e3: a phone's REFER brings a Local channel into the app with empty args
    h.ari.emit("StasisStart", args=[], channel=local, replace_channel=replaced)
    h.ari.emit(
        "StasisStart",
        args=["operadora", "consult"],
        channel=channel_json("consult-1", "PJSIP/agent1-1", "Down"),
    )
    await h.settle()
    assert h.service.calls == {} and h.ari.requests == []
    assert others == ["loc-1", "consult-1"]
    assert h.router.ignored["not an inbound call"] == 2


async def test_a_failed_hangup_is_retried_until_the_channel_goes(harness: Any) -> None:
    h = harness
    call = await start_call(h)
    h.ari.fail["hangup:ch-1"] = AriServerError(503, "Service Unavailable")
    h.service.hangup_confirm_timeout_s = 0.05
    assert await h.service.hangup(call.call_id, "api")
    assert call.state is CallState.ENDING and "ch-1" in h.ari.channels
    await asyncio.wait_for(call.ended.wait(), 2)
    assert "ch-1" not in h.ari.channels and h.ari.bridges == {}
    caller_hangups = [p for op, p in h.ari.requests if op == "hangup" and p["channelId"] == "ch-1"]
    assert len(caller_hangups) == 2  # refused once, sent again after the confirmation failed
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert (ended[0].ended_by, ended[0].cause) == ("api", 16)


async def test_late_audiosocket_connection_of_an_ended_call_is_closed(harness: Any) -> None:
    h = harness
    h.ari.on_external_media = None
    h.service.media_connect_timeout_s = 0.02
    h.ari.add_caller("ch-6")
    await h.until(lambda: h.service.ended_calls == 1)
    (ended,) = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    late = h.new_media(ended.call_id)
    await asyncio.wait_for(h.service.on_media(late), 2)
    assert late.hung_up and h.agent.contexts == []  # not taken for a direct-route call


async def test_shutdown_hangs_up_every_live_call(harness: Any) -> None:
    h = harness
    calls = [await start_call(h, f"ch-{n}") for n in range(3)]
    await h.service.close(timeout_s=2)
    for call in calls:
        assert call.state is CallState.ENDED
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert sorted(e.call_id for e in ended) == sorted(c.call_id for c in calls)
    assert {(e.ended_by, e.cause) for e in ended} == {("system", 16)}
    assert h.ari.channels == {} and h.ari.bridges == {}


async def test_a_media_leg_is_recognised_by_its_uuid_argument(harness: Any) -> None:
    h = harness
    call = await start_call(h)
    # trace f4: the externalMedia channel enters the app with args == [the data uuid]
    h.ari.emit(
        "StasisStart", args=[call.call_id], channel=h.channel_json("renamed-1", "PJSIP/renamed-1")
    )
    await h.settle()
    assert list(h.service.calls) == [call.call_id]
    assert [op for op, _ in h.ari.requests].count("answer") == 1


async def test_without_channel_destroyed_the_hangup_request_cause_is_kept(
    harness: Any,
) -> None:
    h = harness
    h.service.hangup_confirm_timeout_s = 0.05
    call = await start_call(h)
    channel = h.ari.channels.pop("ch-1")  # the phone hangs up (busy here); with subscribeAll
    h.ari.bridges[call.bridge_id].remove("ch-1")  # off, no ChannelDestroyed follows StasisEnd
    h.ari.emit("ChannelHangupRequest", cause=17, channel=channel)
    h.ari.emit("StasisEnd", channel=channel)
    await asyncio.wait_for(call.ended.wait(), 2)
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert (ended[0].cause, ended[0].ended_by) == (17, "caller")
    assert "hang-up request" in ended[0].cause_txt


async def test_a_soft_hangup_request_flag_is_not_a_cause(harness: Any) -> None:
    h = harness
    h.service.hangup_confirm_timeout_s = 0.05
    call = await start_call(h)
    channel = h.ari.channels.pop("ch-1")
    h.ari.bridges[call.bridge_id].remove("ch-1")
    h.ari.emit("ChannelHangupRequest", cause=32, soft=True, channel=channel)
    h.ari.emit("StasisEnd", channel=channel)
    await asyncio.wait_for(call.ended.wait(), 2)
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert ended[0].cause is None


async def test_stasis_start_of_another_application_is_not_ours(harness: Any) -> None:
    h = harness
    h.router.app = "callcenter-ai"
    other = h.channel_json(
        "x-1",
        "PJSIP/x-1",
        "Ring",
        dialplan={
            "context": "default",
            "exten": "s",
            "priority": 1,
            "app_name": "Stasis",
            "app_data": "voicemail-app,inbound,200",
        },
    )
    h.ari.emit("StasisStart", args=["inbound", "200"], channel=other)
    await h.settle()
    assert h.service.calls == {} and h.router.ignored["another application"] == 1
    h.ari.add_caller("ch-1")  # app_data "callcenter-ai,inbound,110": ours
    await h.until(lambda: len(h.service.calls) == 1)


@pytest.mark.parametrize("seed", range(12))
async def test_any_order_of_end_events_ends_the_call_once(harness: Any, seed: int) -> None:
    import random

    h = harness
    h.service.hangup_confirm_timeout_s = 0.05
    call = await start_call(h)
    rng = random.Random(seed)
    channel = h.ari.channels.pop("ch-1")
    h.ari.bridges[call.bridge_id].remove("ch-1")
    kinds_ = [
        ("StasisStart", {"args": ["inbound", "110"]}),
        ("ChannelHangupRequest", {"cause": 16}),
        ("StasisEnd", {}),
        ("ChannelDestroyed", {"cause": 16, "cause_txt": "Normal Clearing"}),
        ("ChannelDtmfReceived", {"digit": "1", "duration_ms": 90}),
    ]
    sequence = [rng.choice(kinds_) for _ in range(rng.randint(3, 9))]
    sequence.append(kinds_[3])  # the channel is destroyed at some point
    rng.shuffle(sequence)
    if rng.random() < 0.5:  # sometimes our own hang-up races with the caller's
        h.service.spawn(h.service.hangup(call.call_id, "agent"))
    for kind, fields in sequence:
        h.ari.emit(kind, channel=channel, **fields)
    await asyncio.wait_for(call.ended.wait(), 2)
    await asyncio.sleep(0.1)  # late work must not end it again
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert len(ended) == 1 and ended[0].call_id == call.call_id
    assert h.service.calls == {} and h.ari.bridges == {}
    assert call.media_channel_id not in h.ari.channels
