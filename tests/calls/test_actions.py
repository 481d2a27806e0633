"""Call control as the API and the recorder use it (hang up, record)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from operadora import events as ev
from operadora.api.actions import ActionFailed, CallActions, CallNotFound
from operadora.ari.errors import AriConflict
from operadora.ari.events import parse_event
from operadora.calls.actions import EngineCallActions
from operadora.calls.stasis import StasisRouter
from operadora.calls.state import CallState

pytestmark = pytest.mark.unit


async def active_call(h: Any) -> Any:
    h.ari.add_caller("ch-1")
    await h.until(lambda: any(c.state is CallState.ACTIVE for c in h.service.calls.values()))
    return h.service.call_for_channel(h.ari.name, "ch-1")


async def test_actions_follow_the_api_protocol(harness: Any) -> None:
    assert isinstance(EngineCallActions(harness.service), CallActions)


async def test_hangup_by_api_and_unknown_call(harness: Any) -> None:
    h = harness
    actions = EngineCallActions(h.service)
    call = await active_call(h)
    await actions.hangup(call.call_id)
    await asyncio.wait_for(call.ended.wait(), 2)
    with pytest.raises(CallNotFound):
        await actions.hangup(call.call_id)
    ended = [e for e in h.published() if isinstance(e, ev.CallEndedEvent)]
    assert ended[0].ended_by == "api"


async def test_record_the_bridge_and_report_the_outcome(harness: Any) -> None:
    h = harness
    actions = EngineCallActions(h.service)
    h.router = StasisRouter(h.service, h.ari.name, actions)
    call = await active_call(h)
    name = await actions.record(call.call_id, "negative sentiment")
    assert ("record_bridge", {"bridgeId": call.bridge_id, "name": name, "format": "wav"}) in (
        h.ari.requests
    )
    finished = parse_event(
        {
            "type": "RecordingFinished",
            "application": "callcenter-ai",
            "recording": {
                "name": name,
                "format": "wav",
                "state": "done",
                "target_uri": f"bridge:{call.bridge_id}",
            },
        }
    )
    h.router(finished)
    h.router(finished)  # a duplicate is not reported twice
    recordings = [e for e in h.published() if isinstance(e, ev.RecordingEvent)]
    assert [(r.state, r.reason) for r in recordings] == [
        ("started", "negative sentiment"),
        ("finished", ""),
    ]
    assert recordings[1].path == f"{name}.wav"


async def test_record_refused_by_asterisk(harness: Any) -> None:
    h = harness
    actions = EngineCallActions(h.service)
    call = await active_call(h)
    h.ari.fail["record_bridge"] = AriConflict(409, "Bridge is not in a recordable state")
    with pytest.raises(ActionFailed, match="recordable"):
        await actions.record(call.call_id, "api")
    with pytest.raises(CallNotFound):
        await actions.record("no-such-call", "api")
