"""The simulator replays every recorded Asterisk 22.10.1 trace like the real Asterisk did.

Uses the shared conformance tool ``../shared/tools/ari_replay.py``. The SIP traces (e*) run
with sipp (``with_sipp=True``, Debian package ``sip-tester``) calling the simulator's own SIP
port; without sipp they are skipped with the reason, except under ``CI=true`` where a missing
sipp fails.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from operadora.sim.server import start_simulator
from support import free_port, require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO.parent / "shared" / "tools"
TRACES = sorted((REPO.parent / "shared" / "asterisk" / "ari-traces").glob("*.jsonl"))
SIPP_DIR = REPO.parent / "shared" / "asterisk" / "recording-setup" / "sipp"
SIPP = shutil.which("sipp")


def _is_sip(trace: Path) -> bool:
    return trace.name.startswith("e")


def _need_sipp() -> str:
    require(SIPP is not None, "sipp (Debian package sip-tester, scripts/system-deps.sh)")
    assert SIPP is not None
    return SIPP


def _tool() -> Any:
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    import ari_replay

    return ari_replay


def test_traces_are_there() -> None:
    assert len(TRACES) >= 16, f"expected the shared traces under {TRACES}"


@pytest.fixture
def replay(make_sim_settings: Any, sim_credentials: tuple[str, str]) -> Any:
    async def run(trace: Path, **options: Any) -> Any:
        return await _replay(trace, make_sim_settings, sim_credentials, **options)

    return run


async def _replay(trace: Path, make: Any, creds: tuple[str, str], **options: Any) -> Any:
    tool = _tool()
    audiosocket_port = free_port()
    settings = make(globals={"AUDIOSOCKET_SERVER": f"127.0.0.1:{audiosocket_port}"}, sip_port=0)
    sim = await start_simulator(settings)
    sip: dict[str, Any] = {"with_sipp": False}
    if _is_sip(trace):
        sip = {
            "with_sipp": True,
            "sipp_bin": _need_sipp(),
            "sipp_dir": str(SIPP_DIR),
            "sip_target": f"127.0.0.1:{sim.sip_port}",
        }
    try:
        return await tool.areplay(
            str(trace),
            sim.ari_url,
            creds[0],
            creds[1],
            audiosocket_port=audiosocket_port,
            **sip,
            **options,
        )
    finally:
        await sim.close()


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
async def test_simulator_behaves_like_asterisk(trace: Path, replay: Any) -> None:
    report = await replay(trace)
    assert report.status == "PASS", report.format()


def _mutated(trace: Path, tmp_path: Path, mutate: Any) -> Path:
    import json

    lines = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    mutate(lines)
    out = tmp_path / trace.name
    out.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return out


async def test_replay_fails_when_a_response_status_is_changed(tmp_path: Path, replay: Any) -> None:
    trace = next(t for t in TRACES if t.name.startswith("a_"))

    def change_status(lines: list[dict[str, Any]]) -> None:
        first = next(line for line in lines if line["kind"] == "response" and line["status"] == 204)
        first["status"] = 200

    report = await replay(_mutated(trace, tmp_path, change_status))
    assert report.status == "FAIL"


async def test_replay_fails_when_an_event_type_is_changed(tmp_path: Path, replay: Any) -> None:
    trace = next(t for t in TRACES if t.name.startswith("b_"))

    def change_event(lines: list[dict[str, Any]]) -> None:
        event = next(
            line["event"]
            for line in lines
            if line["kind"] == "event" and line["event"]["type"] == "ChannelLeftBridge"
        )
        event["type"] = "ChannelEnteredBridge"

    report = await replay(_mutated(trace, tmp_path, change_event))
    assert report.status == "FAIL"


async def test_replay_fails_when_a_destroy_cause_is_changed(tmp_path: Path, replay: Any) -> None:
    trace = next(t for t in TRACES if t.name.startswith("a2_"))

    def change_cause(lines: list[dict[str, Any]]) -> None:
        event = next(
            line["event"]
            for line in lines
            if line["kind"] == "event" and line["event"]["type"] == "ChannelDestroyed"
        )
        event["cause"] = 17

    report = await replay(_mutated(trace, tmp_path, change_cause))
    assert report.status == "FAIL"
    assert "cause" in report.format()
