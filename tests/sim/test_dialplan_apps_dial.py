"""``Dial()`` and originate against callees that decline: what a real Asterisk 22 reports
(app_dial's ``ast_hangup_cause_to_dial_status`` for each callee, ``handle_cause`` for
``DIALSTATUS``), with the simulated devices the callers package provides."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from operadora.sim.callers.devices import extension_dial_handler
from operadora.sim.callers.extensions import Directory, DirectorySettings, ExtensionBehaviour
from operadora.sim.calls import Originate, originate
from operadora.sim.dialplan.apps import dial_status
from operadora.sim.dialplan.dial import cause_dial_status
from operadora.sim.lines import Line
from operadora.sim.server import Simulator

pytestmark = pytest.mark.integration

Event = dict[str, Any]

PLAN = """
[in]
exten => _X.,1,Dial(${TARGETS},${RING})
 same => n,NoOp(DIALSTATUS=${DIALSTATUS})
 same => n,Hangup()

[desk]
exten => 202,1,Dial(PJSIP/202,20)
 same => n,Hangup()
"""


@pytest.fixture
async def sim(
    plan_simulator: Callable[[str], Awaitable[tuple[Simulator, list[Event]]]],
) -> tuple[Simulator, list[Event]]:
    return await plan_simulator(PLAN)


def declines(cause: int, after_s: float = 0.05) -> Callable[[Line], Awaitable[None]]:
    async def device(dialed: Line) -> None:
        await dialed.ring()
        await asyncio.sleep(after_s)
        await dialed.hangup(cause)

    return device


def by_endpoint(devices: dict[str, Callable[[Line], Awaitable[None]]]) -> Any:
    async def handle(dialed: Line) -> None:
        device = devices.get(dialed.endpoint)
        if device is not None:
            await device(dialed)
        else:
            await dialed.ring()  # rings and never answers

    return handle


async def call(simulator: Simulator, targets: str, ring_s: int = 20) -> Line:
    line = simulator.inbound_call(
        "PJSIP/gateway-fxo-1",
        context="in",
        extension="600",
        variables={"TARGETS": targets, "RING": str(ring_s)},
    )
    await asyncio.wait_for(line.wait_ended(), 10)
    await asyncio.sleep(0)
    return line


def dials(events: list[Event]) -> list[tuple[str, str]]:
    return [
        (e["peer"]["name"].split("-")[0], e["dialstatus"]) for e in events if e["type"] == "Dial"
    ]


def dialstatus(events: list[Event]) -> str:
    noop = [
        e["dialplan_app_data"]
        for e in events
        if e["type"] == "ChannelDialplan" and e["dialplan_app"] == "NoOp"
    ]
    return str(noop[-1]).removeprefix("DIALSTATUS=")


def order(events: list[Event], channel_prefix: str) -> list[str]:
    kinds = ("Dial", "ChannelHangupRequest", "ChannelDestroyed")
    return [
        e["type"] if e["type"] != "Dial" else f"Dial {e['dialstatus']}"
        for e in events
        if e["type"] in kinds
        and str((e.get("peer") or e.get("channel") or {}).get("name", "")).startswith(
            channel_prefix
        )
    ]


async def test_a_busy_callee_gives_dial_busy_and_dialstatus_busy(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    simulator.set_dial_handler(declines(17))
    line = await call(simulator, "PJSIP/201")
    assert dials(events) == [("PJSIP/201", ""), ("PJSIP/201", "RINGING"), ("PJSIP/201", "BUSY")]
    # app_dial reads the callee's hang-up (cause 17), reports it, then destroys the callee
    assert order(events, "PJSIP/201") == [
        "Dial ",
        "Dial RINGING",
        "ChannelHangupRequest",
        "Dial BUSY",
        "ChannelDestroyed",
    ]
    callee = next(e for e in events if e["type"] == "ChannelDestroyed")
    assert (callee["cause"], callee["cause_txt"]) == (17, "User busy")
    assert dialstatus(events) == "BUSY"
    assert ("DIALSTATUS", "BUSY") in [
        (e["variable"], e["value"]) for e in events if e["type"] == "ChannelVarset"
    ]
    assert line.hangup_cause == 17  # the caller took the callee's cause; Hangup() keeps it


async def test_the_callers_busy_extension_gives_busy(sim: tuple[Simulator, list[Event]]) -> None:
    simulator, events = sim
    directory = Directory(
        DirectorySettings(
            extensions=[ExtensionBehaviour(endpoint="PJSIP/202", action="busy", ring_s=0.1)]
        )
    )
    simulator.set_dial_handler(extension_dial_handler(directory))
    await call(simulator, "PJSIP/202")
    assert dials(events)[-1] == ("PJSIP/202", "BUSY")
    assert dialstatus(events) == "BUSY"
    assert directory.decide("PJSIP/202").dial_status == dialstatus(events)


async def test_busy_behind_a_local_channel_is_busy_too(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    simulator.set_dial_handler(declines(17))
    line = await call(simulator, "Local/202@desk")
    # the ;2 half's Dial saw BUSY; the ;2 half hangs up with 17, the ;1 half reads it as busy
    assert dials(events)[-1] == ("Local/202@desk", "BUSY")
    assert ("PJSIP/202", "BUSY") in dials(events)
    assert dialstatus(events) == "BUSY"
    halves = {
        e["channel"]["name"]: e["cause"]
        for e in events
        if e["type"] == "ChannelDestroyed" and e["channel"]["name"].startswith("Local/")
    }
    assert set(halves.values()) == {17}
    assert line.hangup_cause == 17


async def test_one_busy_one_ringing_until_the_timeout_is_noanswer(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    simulator.set_dial_handler(by_endpoint({"PJSIP/201": declines(17)}))
    await call(simulator, "PJSIP/201&PJSIP/203", ring_s=1)
    statuses = [d for d in dials(events) if d[1] in ("BUSY", "NOANSWER")]
    assert statuses == [("PJSIP/201", "BUSY"), ("PJSIP/203", "NOANSWER")]  # busy at once
    assert dialstatus(events) == "NOANSWER"


async def test_busy_and_congested_callees_are_busy(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    simulator.set_dial_handler(
        by_endpoint({"PJSIP/201": declines(34), "PJSIP/202": declines(17, 0.1)})
    )
    await call(simulator, "PJSIP/201&PJSIP/202")
    assert ("PJSIP/201", "CONGESTION") in dials(events)
    assert ("PJSIP/202", "BUSY") in dials(events)
    assert dialstatus(events) == "BUSY"


async def test_a_callee_that_hangs_up_normally_is_noanswer(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    simulator.set_dial_handler(declines(16))
    await call(simulator, "PJSIP/201")
    assert dials(events)[-1] == ("PJSIP/201", "NOANSWER")
    assert dialstatus(events) == "NOANSWER"


async def test_answer_elsewhere_cancels_the_other_callees(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim

    async def answers(dialed: Line) -> None:
        await dialed.ring()
        await asyncio.sleep(0.05)
        await dialed.answer()
        await asyncio.sleep(0.1)
        await dialed.hangup()

    simulator.set_dial_handler(by_endpoint({"PJSIP/201": answers}))
    await call(simulator, "PJSIP/201&PJSIP/203")
    final = [d for d in dials(events) if d[1] not in ("", "RINGING")]
    assert final == [("PJSIP/201", "ANSWER"), ("PJSIP/203", "CANCEL")]
    other = next(
        e
        for e in events
        if e["type"] == "ChannelDestroyed" and e["channel"]["name"].startswith("PJSIP/203")
    )
    assert other["cause"] == 26  # answered elsewhere


async def test_the_caller_hanging_up_cancels_the_ringing_callees(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    simulator.set_dial_handler(by_endpoint({}))
    line = simulator.inbound_call(
        "PJSIP/gateway-fxo-1", context="in", extension="600", variables={"TARGETS": "PJSIP/201"}
    )
    for _ in range(100):
        if ("PJSIP/201", "RINGING") in dials(events):
            break
        await asyncio.sleep(0.01)
    await line.hangup()
    await asyncio.wait_for(line.wait_ended(), 5)
    await asyncio.sleep(0.05)
    assert dials(events)[-1] == ("PJSIP/201", "CANCEL")
    assert not simulator.pbx.channels  # the callee did not outlive the call


async def test_originate_to_a_busy_device_reports_busy(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    simulator.set_dial_handler(declines(17))
    originate(simulator.pbx, Originate(endpoint="PJSIP/agent1", app="callcenter-ai"))
    for _ in range(200):
        if any(e["type"] == "ChannelDestroyed" for e in events):
            break
        await asyncio.sleep(0.01)
    assert [e["dialstatus"] for e in events if e["type"] == "Dial"] == ["", "RINGING", "BUSY"]
    gone = next(e for e in events if e["type"] == "ChannelDestroyed")
    assert gone["cause"] == 17


@pytest.mark.parametrize(
    ("causes", "status"),
    [
        ([17], "BUSY"),
        ([17, 34], "BUSY"),
        ([34, 34], "CONGESTION"),
        ([20], "CHANUNAVAIL"),
        ([21, 34], "CONGESTION"),
        ([17, 16], "NOANSWER"),
        ([19], "NOANSWER"),
        ([], "NOANSWER"),
    ],
)
def test_dialstatus_from_the_callees_causes(causes: list[int], status: str) -> None:
    assert dial_status(causes) == status


def test_each_callees_status_from_its_cause() -> None:
    assert [cause_dial_status(c) for c in (17, 34, 3, 20, 16, 19, 21)] == [
        "BUSY",
        "CONGESTION",
        "CHANUNAVAIL",
        "CHANUNAVAIL",
        "NOANSWER",
        "NOANSWER",
        "NOANSWER",
    ]
