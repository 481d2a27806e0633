"""Every event recorded from the real Asterisk 22.10.1 parses into its typed model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from operadora.ari.events import (
    HANDLED_EVENTS,
    AriEventError,
    BridgeBlindTransfer,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelTransfer,
    StasisStart,
    UnknownEvent,
    parse_event,
    parse_message,
)
from operadora.ari.models import Bridge, Channel

pytestmark = pytest.mark.unit

TRACES = Path("/work/shared/asterisk/ari-traces")
if not TRACES.is_dir():  # the checkout's copy, wherever the shared folder is mounted
    TRACES = Path(__file__).resolve().parents[3] / "shared" / "asterisk" / "ari-traces"


def _lines(kind: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(TRACES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["kind"] == kind:
                out.append(record)
    return out


def test_traces_are_present() -> None:
    assert len(list(TRACES.glob("*.jsonl"))) >= 16


def test_every_traced_event_parses_to_its_class() -> None:
    handled = {cls.ari_model for cls in HANDLED_EVENTS}
    seen: set[str] = set()
    for record in _lines("event"):
        raw = record["event"]
        event = parse_event(raw)
        assert event.type == raw["type"]
        if raw["type"] in handled:
            assert type(event).ari_model == raw["type"]
            seen.add(raw["type"])
        else:
            assert isinstance(event, UnknownEvent)
        for channel_id in event.channel_ids():
            assert channel_id
    # the traces exercise the events at the heart of a call
    assert {"StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelDtmfReceived"} <= seen
    assert {"ChannelTransfer", "BridgeBlindTransfer", "PlaybackFinished"} <= seen


def test_inbound_stasis_start_carries_args_and_ring_state() -> None:
    trace = (TRACES / "a2_inbound_via_dialplan.jsonl").read_text().splitlines()
    starts = [
        parse_event(json.loads(line)["event"])
        for line in trace
        if '"StasisStart"' in line and json.loads(line)["kind"] == "event"
    ]
    start = starts[0]
    assert isinstance(start, StasisStart)
    assert start.args == ["inbound", "110"]
    assert start.channel.state == "Ring"
    assert start.channel.dialplan.priority >= 1


def test_destroyed_cause_and_soft_hangup_flag() -> None:
    destroyed = [
        e
        for e in map(parse_event, (r["event"] for r in _lines("event")))
        if isinstance(e, ChannelDestroyed)
    ]
    assert any(e.cause == 16 and e.cause_txt == "Normal Clearing" for e in destroyed)
    hangups = [
        e
        for e in map(parse_event, (r["event"] for r in _lines("event")))
        if isinstance(e, ChannelHangupRequest)
    ]
    assert any(e.soft and e.cause == 32 for e in hangups)


def test_dtmf_and_transfer_events() -> None:
    events = [parse_event(r["event"]) for r in _lines("event")]
    dtmf = [e for e in events if isinstance(e, ChannelDtmfReceived)]
    assert "5" in {e.digit for e in dtmf}
    assert all(e.duration_ms > 0 for e in dtmf)
    transfer = next(e for e in events if isinstance(e, ChannelTransfer))
    assert transfer.refer_to.requested_destination.destination == "500"
    assert transfer.channel_ids() == (transfer.referred_by.source_channel.id,)
    blind = next(e for e in events if isinstance(e, BridgeBlindTransfer))
    assert blind.exten == "500" and blind.is_external and blind.result == "Success"


def test_rest_response_bodies_parse() -> None:
    channels = bridges = 0
    for record in _lines("response"):
        body = record.get("body")
        if record["status"] != 200 or not isinstance(body, dict):
            continue
        if record["path"] in ("/ari/channels", "/ari/channels/externalMedia"):
            assert Channel.model_validate(body).id
            channels += 1
        elif record["path"] == "/ari/bridges":
            assert Bridge.model_validate(body).bridge_type in ("mixing", "holding")
            bridges += 1
    assert channels > 5 and bridges >= 2


def test_external_media_response_keeps_channel_vars() -> None:
    record = next(r for r in _lines("response") if r["path"] == "/ari/channels/externalMedia")
    channel = Channel.model_validate(record["body"])
    assert channel.channelvars is not None
    assert "AUDIOSOCKET_UUID" in channel.channelvars


@pytest.mark.parametrize(
    "text",
    ["not json", "[1, 2]", '{"no_type": 1}', '{"type": "StasisStart", "channel": 5}'],
)
def test_malformed_messages_raise_one_error_type(text: str) -> None:
    with pytest.raises(AriEventError):
        parse_message(text)


def test_unknown_event_type_is_kept() -> None:
    event = parse_message('{"type": "SomethingNew", "application": "x", "extra": 1}')
    assert isinstance(event, UnknownEvent)
    assert event.application == "x"
