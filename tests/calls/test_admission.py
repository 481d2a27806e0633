"""The rate limit per caller ID at admission (fake ARI, real limiter with a test clock)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from operadora import events as ev
from operadora.ari.errors import AriServerError
from operadora.calls.admission import REFUSAL_SUFFIX
from operadora.calls.state import CallState, IllegalTransition
from operadora.state.ratelimit import MemoryRateLimiter

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BrokenLimiter:
    limit, window_s = 5, 60.0

    async def allow(self, caller_id: str) -> bool:
        raise ConnectionError("redis is down")


def limited(h: Any, limit: int = 1, window_s: float = 60.0) -> Clock:
    clock = Clock()
    h.service.rate_limiter = MemoryRateLimiter(limit, window_s, clock)
    return clock


def ended(h: Any) -> dict[str, ev.CallEndedEvent]:
    return {e.call_id: e for e in h.published() if isinstance(e, ev.CallEndedEvent)}


async def refused_call(h: Any, channel_id: str, number: str = "5551000") -> Any:
    h.ari.add_caller(channel_id, number=number)
    await h.until(
        lambda: ("play", channel_id) in [(o, p.get("channelId")) for o, p in h.ari.requests]
    )
    call = h.service.call_for_channel(h.ari.name, channel_id)
    assert call is not None and call.state is CallState.REFUSING
    return call


async def test_over_the_limit_is_answered_told_and_hung_up_as_spam(harness: Any) -> None:
    h = harness
    limited(h, limit=1)
    h.ari.add_caller("ch-1", number="5551000")
    await h.agent.started.wait()
    call = await refused_call(h, "ch-2", number="5551000")
    mine = [(op, p) for op, p in h.ari.requests if p.get("channelId") == "ch-2"]
    # answered and told; no bridge, no media leg, no agent for a refused call
    assert [op for op, _ in mine] == ["answer", "play"]
    assert mine[1][1]["media"] == ["sound:im-sorry", "sound:please-try-call-later"]
    assert mine[1][1]["playbackId"] == call.call_id + REFUSAL_SUFFIX
    assert len(h.agent.contexts) == 1
    assert h.service.refused == 1
    h.ari.finish_playback(call.call_id + REFUSAL_SUFFIX, "ch-2")
    await h.until(lambda: call.state is CallState.ENDED)
    record = ended(h)[call.call_id]
    assert (record.disposition, record.ended_by, record.cause) == ("spam", "system", 16)
    assert ("hangup", {"channelId": "ch-2", "reason": "normal"}) in h.ari.requests
    # the media leg and bridge that were never made are not torn down either
    assert not [
        p for op, p in h.ari.requests if op == "destroy_bridge" and p["bridgeId"] == call.bridge_id
    ]
    assert "ch-1" in h.ari.channels  # the first caller is still talking to the agent


async def test_other_numbers_and_the_next_window_are_let_in(harness: Any) -> None:
    h = harness
    clock = limited(h, limit=1, window_s=60.0)
    h.ari.add_caller("ch-1", number="5551000")
    await refused_call(h, "ch-2", number="5551000")
    h.ari.add_caller("ch-3", number="5552000")
    await h.until(lambda: len(h.agent.contexts) == 2)
    clock.now += 61.0
    h.ari.add_caller("ch-4", number="5551000")
    await h.until(lambda: len(h.agent.contexts) == 3)
    assert [c.channel_id for c in h.agent.contexts] == ["ch-1", "ch-3", "ch-4"]
    assert h.service.refused == 1


async def test_anonymous_callers_are_never_limited(harness: Any) -> None:
    h = harness
    limited(h, limit=1)
    for n in range(3):
        h.ari.add_caller(f"ch-{n}", number="")
    await h.until(lambda: len(h.agent.contexts) == 3)
    assert h.service.refused == 0


async def test_caller_leaving_during_the_refusal_is_still_spam(harness: Any) -> None:
    h = harness
    limited(h, limit=1)
    h.ari.add_caller("ch-1")
    call = await refused_call(h, "ch-2")
    h.ari.caller_hangs_up("ch-2")
    await h.until(lambda: call.state is CallState.ENDED)
    record = ended(h)[call.call_id]
    assert (record.disposition, record.ended_by) == ("spam", "caller")
    # a PlaybackFinished arriving afterwards is not a second hang-up
    assert not h.service.playback_finished(call.call_id + REFUSAL_SUFFIX)


async def test_refusal_hangs_up_when_the_prompt_never_finishes(harness: Any) -> None:
    h = harness
    limited(h, limit=1)
    h.service.refusal_max_s = 0.05
    h.ari.add_caller("ch-1")
    call = await refused_call(h, "ch-2")
    await h.until(lambda: call.state is CallState.ENDED)
    assert ended(h)[call.call_id].disposition == "spam"


async def test_failed_prompt_hangs_up_at_once(harness: Any) -> None:
    h = harness
    limited(h, limit=1)
    h.service.refusal_max_s = 60.0
    h.ari.add_caller("ch-1")
    await h.agent.started.wait()
    h.ari.fail["play:ch-2"] = AriServerError(500, "Internal Server Error")
    h.ari.add_caller("ch-2")
    seen: dict[str, ev.CallEndedEvent] = {}
    await h.until(lambda: bool(seen.update(ended(h))) or len(seen) == 1)
    (record,) = seen.values()  # hung up at once, not after refusal_max_s
    assert (record.disposition, record.ended_by) == ("spam", "system")
    assert ("hangup", {"channelId": "ch-2", "reason": "normal"}) in h.ari.requests


async def test_a_broken_limiter_lets_calls_in(harness: Any) -> None:
    h = harness
    h.service.rate_limiter = BrokenLimiter()
    h.ari.add_caller("ch-1")
    await h.until(lambda: len(h.agent.contexts) == 1)
    assert h.service.refused == 0


async def test_playback_finished_of_other_playbacks_is_ignored(harness: Any) -> None:
    h = harness
    h.ari.add_caller("ch-1")
    await h.agent.started.wait()
    call = h.service.call_for_channel(h.ari.name, "ch-1")
    assert not h.service.playback_finished("some-other-playback")
    assert not h.service.playback_finished(call.call_id + REFUSAL_SUFFIX)  # not refused
    h.ari.finish_playback("some-other-playback", "ch-1")
    await h.settle()
    assert h.router.ignored["playback"] == 1
    assert call.state is CallState.ACTIVE


def test_only_a_ringing_call_can_be_refused() -> None:
    from operadora.calls.state import CallStateMachine, CallTrigger

    sm = CallStateMachine("c")
    sm.fire(CallTrigger.SETUP)
    with pytest.raises(IllegalTransition):
        sm.fire(CallTrigger.REFUSE)
    refused = CallStateMachine("d")
    assert refused.fire(CallTrigger.REFUSE) is CallState.REFUSING
    assert refused.state.live
    assert refused.fire(CallTrigger.HANGUP) is CallState.ENDING


class SlowLimiter:
    limit, window_s = 5, 60.0

    async def allow(self, caller_id: str) -> bool:
        await asyncio.sleep(3600)
        return False


async def test_a_slow_limiter_lets_calls_in(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    monkeypatch.setattr("operadora.calls.admission.LIMITER_TIMEOUT_S", 0.05)
    h.service.rate_limiter = SlowLimiter()
    h.ari.add_caller("ch-1")
    await h.until(lambda: len(h.agent.contexts) == 1)
    assert h.service.refused == 0
