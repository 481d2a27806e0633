"""JSON snapshots of channels, bridges and playbacks have the shapes Asterisk 22.10.1 sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from operadora.sim.hub import EventHub
from operadora.sim.model import Bridge, Channel, Party, Playback, ari_time, parse_caller_id

pytestmark = pytest.mark.unit

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "asterisk" / "ari-traces"


def _response(trace: str, method: str, path: str) -> Any:
    for line in (TRACES / trace).read_text().splitlines():
        row = json.loads(line)
        if row["kind"] == "response" and row["method"] == method and row["path"] == path:
            return row["body"]
    raise AssertionError(f"no {method} {path} response in {trace}")


def test_channel_snapshot_matches_the_trace() -> None:
    recorded = _response("a_originate_playback_hangup.jsonl", "GET", "/ari/channels/a-caller")
    ch = Channel(
        id="a-caller",
        name="Local/s@stasis-test-00000000;1",
        technology="Local",
        state="Up",
        context="stasis-test",
        exten="s",
        priority=1,
        app_name="Stasis",
        app_data="callcenter-ai,scenario-a,originated",
        caller=Party("Alice", "5551000"),
        connected=Party("Alice", "5551000"),
        creationtime=recorded["creationtime"],
    )
    assert ch.json() == recorded
    assert list(ch.json()) == list(recorded)


def test_bridge_snapshots_match_the_trace() -> None:
    recorded = _response("b_mixing_bridge.jsonl", "GET", "/ari/bridges/b-bridge")
    bridge = Bridge(id="b-bridge", bridge_type="mixing", name="call-b")
    bridge.creationtime = recorded["creationtime"]
    for cid in ("b-alice", "b-bob"):
        bridge.channels.append(Channel(cid, cid, "Local", "Up", "stasis-test", "s"))
    assert bridge.json() == recorded

    hold = _response("d_attended_transfer_ari.jsonl", "POST", "/ari/bridges")
    assert hold["technology"] == "simple_bridge"
    holding = Bridge(id="d-hold", bridge_type="holding", name="hold")
    assert holding.json()["technology"] == "holding_bridge"
    assert set(holding.json()) == set(hold)

    queue_bridges = _response("g_queue_via_dialplan.jsonl", "GET", "/ari/bridges")
    basic = Bridge(
        id="x", bridge_type="mixing", bridge_class="basic", creator="", video_mode="none"
    )
    basic.channels = [
        Channel("a", "a", "Local", "Up", "c", "e"),
        Channel("b", "b", "Local", "Up", "c", "e"),
    ]
    expected = dict(queue_bridges[0], id="x", channels=["a", "b"])
    expected["creationtime"] = basic.creationtime
    assert basic.json() == expected


def test_softmix_with_three_members() -> None:
    bridge = Bridge(id="conf", bridge_type="mixing")
    bridge.channels = [Channel(str(i), str(i), "Local", "Up", "c", "e") for i in range(3)]
    assert bridge.json()["technology"] == "softmix"


def test_playback_snapshot_matches_the_trace() -> None:
    recorded = _response("a_originate_playback_hangup.jsonl", "POST", "/ari/channels/a-caller/play")
    pb = Playback("a-pb1", "sound:hello-world", "channel:a-caller")
    assert pb.json() == recorded


def test_event_envelope() -> None:
    hub = EventHub()
    seen: list[dict[str, Any]] = []
    hub.listeners.append(seen.append)
    ch = Channel("x", "Local/s@t-00000001;1", "Local", "Down", "t", "s")
    hub.emit("ChannelDestroyed", channel=ch, cause=16, cause_txt="Normal Clearing")
    (event,) = seen
    assert event["type"] == "ChannelDestroyed"
    assert event["cause"] == 16 and event["cause_txt"] == "Normal Clearing"
    assert event["channel"] == ch.json()
    assert event["asterisk_id"]
    assert len(event["timestamp"]) == len("2026-11-25T20:41:14.998+0000")


def test_time_and_caller_id_formats() -> None:
    assert ari_time(0) == "1970-01-01T00:00:00.000+0000"
    assert parse_caller_id("Alice <5551000>") == Party("Alice", "5551000")
    assert parse_caller_id('"Bob B" <42>') == Party("Bob B", "42")
    assert parse_caller_id("5552000") == Party("", "5552000")
