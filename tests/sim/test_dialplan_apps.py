"""The dialplan applications and expressions Operadora's generated dialplan relies on, each
against Asterisk 22's documented behaviour: ``$[...]``, ``ExecIf``, ``Goto`` (labels),
``Background`` + ``WaitExten`` digit handling, ``Busy``/``Congestion``, ``Set`` of functions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from operadora.sim.dialplan.expr import evaluate_expression, truth
from operadora.sim.dialplan.plan import parse_dialplan, pattern_extends
from operadora.sim.dialplan.subst import substitute
from operadora.sim.lines import Line
from operadora.sim.server import Simulator

pytestmark = pytest.mark.integration

Event = dict[str, Any]

PLAN = """
[globals]
KIND=PJSIP

[t]
exten => execif,1,ExecIf($["${CHANNEL(channeltype)}" = "${KIND}"]?Set(A=yes):Set(A=no))
 same => n,ExecIf($[${LEN(abc)} > 5]?Set(B=long):Set(B=short))
 same => n,ExecIf($[1 = 2]?Set(C=never))
 same => n,Set(D=$[${EXTEN:0:2} = "ex" & (2 + 3) * 2 = 10])
 same => n,Set(PJSIP_TRANSFER_HANDLING()=ari-only)
 same => n,Set(CALLERID(num)=5550100)
 same => n,NoOp(${CALLERID(num)} ${A} ${B} ${C} ${D})
 same => n,Goto(jump)
 same => n,NoOp(skipped)
 same => n(jump),Goto(t,labels,first)
exten => labels,1,NoOp(not here)
 same => n(first),Hangup(21)

exten => menu,1,Set(TIMEOUT(digit)=0.3)
 same => n,Background(silence/1&hello-world)
 same => n,WaitExten(0.3)
 same => n,NoOp(no digit)
 same => n,Hangup()
exten => 1,1,NoOp(one)
 same => n,Hangup()
exten => 12,1,NoOp(twelve)
 same => n,Hangup()
exten => 123,1,NoOp(one-two-three)
 same => n,Hangup()
exten => 7,1,NoOp(seven)
 same => n,Hangup()
exten => i,1,NoOp(invalid ${INVALID_EXTEN})
 same => n,Hangup()

exten => congestion,1,Congestion(0.1)
exten => busy,1,Answer()
 same => n,Busy(0.1)

[menu-t]
exten => s,1,WaitExten(0.2)
exten => t,1,NoOp(timeout)
 same => n,Hangup()

[menu-d]
exten => s,1,WaitExten(5)
exten => 5,1,NoOp(five)
 same => n,Hangup()

[causes]
exten => named,1,Hangup(user_busy)
exten => bogus,1,Hangup(NOT_A_CAUSE)

[menu-none]
exten => s,1,WaitExten(0.2)
"""


@pytest.fixture
async def sim(
    plan_simulator: Callable[[str], Awaitable[tuple[Simulator, list[Event]]]],
) -> tuple[Simulator, list[Event]]:
    return await plan_simulator(PLAN)


def steps(events: list[Event]) -> list[tuple[str, str]]:
    return [
        (e["dialplan_app"], e["dialplan_app_data"])
        for e in events
        if e["type"] == "ChannelDialplan"
    ]


def varsets(events: list[Event]) -> dict[str, str]:
    return {e["variable"]: e["value"] for e in events if e["type"] == "ChannelVarset"}


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ('"PJSIP" = "PJSIP"', "1"),
        ('"Local" = "PJSIP"', "0"),
        ("10 > 9", "1"),  # numbers compare as numbers
        ("abc < abd", "1"),  # strings as strings
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("7 / 2", "3"),
        ("7 % 3", "1"),
        ("!0", "1"),
        ("-3 + 1", "-2"),
        ("0 | 5", "5"),
        ("2 & 0", "0"),
        ("1 ? yes :: no", "yes"),
        ("0 ? yes :: no", "no"),
        ('"5551234" : "555"', "3"),
        ('"5551234" : "555(.*)"', "1234"),
        ('"abc" =~ "b"', "1"),
        ("1 +", ""),  # a syntax error: empty, like Asterisk
        ("", ""),
    ],
)
def test_expressions(expression: str, value: str) -> None:
    assert evaluate_expression(expression) == value


def test_expressions_nest_inside_substitution() -> None:
    values = {"N": "4", "T": "PJSIP"}.get
    assert substitute("$[${N} + $[2 * 3]]", values) == "10"
    assert substitute('x$["${T}" = "PJSIP"]?y', values) == "x1?y"
    assert substitute("$[${MISSING}1 = 1]", values) == "1"
    assert [truth(v) for v in ("", "0", "0.0", "1", "abc", " ")] == [
        False,
        False,
        False,
        True,
        True,
        False,
    ]


def test_digits_may_lead_to_longer_extensions() -> None:
    plan = parse_dialplan("[c]\nexten => 12,1,NoOp()\nexten => _4XX,1,NoOp()\n")
    assert plan.can_match_more("c", "1")
    assert not plan.can_match_more("c", "12")
    assert plan.can_match_more("c", "4") and plan.can_match_more("c", "45")
    assert not plan.can_match_more("c", "456") and not plan.can_match_more("c", "9")
    assert pattern_extends("_X.", "1") and not pattern_extends("_X!", "1")


async def test_execif_set_expressions_and_goto_labels(sim: tuple[Simulator, list[Event]]) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="t", extension="execif")
    await asyncio.wait_for(line.wait_ended(), 5)
    ran = steps(events)
    assert ran[:3] == [
        ("ExecIf", "1?Set(A=yes):Set(A=no)"),
        ("Set", "A=yes"),  # the branch runs as its own step, like pbx_exec
        ("ExecIf", "0?Set(B=long):Set(B=short)"),
    ]
    assert ("ExecIf", "0?Set(C=never)") in ran
    written = {k: v for k, v in varsets(events).items() if k != "SIPDOMAIN"}  # set on arrival
    assert written == {"A": "yes", "B": "short", "D": "1"}  # a function write emits none
    assert simulator.pbx.channels == {}
    assert ("NoOp", "5550100 yes short  1") in ran
    assert ("NoOp", "skipped") not in ran and ("NoOp", "not here") not in ran
    assert ran[-3:] == [("Goto", "jump"), ("Goto", "t,labels,first"), ("Hangup", "21")]
    assert line.hangup_cause == 21


async def test_the_function_write_is_on_the_channel(sim: tuple[Simulator, list[Event]]) -> None:
    simulator, _ = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="t", extension="execif")
    channel = line.channel
    await asyncio.wait_for(line.wait_ended(), 5)
    assert channel.variables["PJSIP_TRANSFER_HANDLING()"] == "ari-only"
    assert channel.caller.number == "5550100"


@pytest.mark.parametrize(
    ("digits", "reached"),
    [("1", "twelve"), ("7", "seven"), ("9", "invalid 9")],
)
async def test_background_digits_choose_the_extension(
    sim: tuple[Simulator, list[Event]], digits: str, reached: str
) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="t", extension="menu")
    await until(lambda: ("Background", "silence/1&hello-world") in steps(events))
    if digits == "1":
        digits = "12"  # 1 could become 12 or 123: the PBX waits for more; 12 could become 123
    await line.send_dtmf(digits)
    await asyncio.wait_for(line.wait_ended(), 10)
    ran = steps(events)
    assert ("WaitExten", "0.3") not in ran  # the digits cut the prompt short
    assert ("NoOp", reached) in ran
    assert varsets(events)["BACKGROUNDSTATUS"] == "SUCCESS"
    assert line.state == "Up"  # Background answered


async def test_a_longer_extension_is_collected_in_full(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="t", extension="menu")
    await until(lambda: ("Background", "silence/1&hello-world") in steps(events))
    await line.send_dtmf("123")
    await asyncio.wait_for(line.wait_ended(), 10)
    assert ("NoOp", "one-two-three") in steps(events)


async def test_waitexten_without_a_digit_goes_on(sim: tuple[Simulator, list[Event]]) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="t", extension="menu")
    await asyncio.wait_for(line.wait_ended(), 10)
    assert steps(events)[-3:] == [("WaitExten", "0.3"), ("NoOp", "no digit"), ("Hangup", "")]


async def test_waitexten_digit_during_the_wait(sim: tuple[Simulator, list[Event]]) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="menu-d", extension="s")
    await until(lambda: ("WaitExten", "5") in steps(events))
    await line.send_dtmf("5")
    await asyncio.wait_for(line.wait_ended(), 2)
    assert steps(events) == [("WaitExten", "5"), ("NoOp", "five"), ("Hangup", "")]


async def test_waitexten_timeout_goes_to_t(sim: tuple[Simulator, list[Event]]) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="menu-t", extension="s")
    await asyncio.wait_for(line.wait_ended(), 5)
    assert steps(events)[-2:] == [("NoOp", "timeout"), ("Hangup", "")]


async def test_waitexten_timeout_without_t_hangs_up(sim: tuple[Simulator, list[Event]]) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="menu-none", extension="s")
    await asyncio.wait_for(line.wait_ended(), 5)
    assert steps(events) == [("WaitExten", "0.2")]


async def test_congestion_on_an_unanswered_channel(sim: tuple[Simulator, list[Event]]) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="t", extension="congestion")
    await asyncio.wait_for(line.wait_ended(), 5)
    assert line.hangup_cause == 34
    states = [e["channel"]["state"] for e in events if e["type"] == "ChannelStateChange"]
    assert states == ["Busy"]
    gone = next(e for e in events if e["type"] == "ChannelDestroyed")
    assert (gone["cause"], gone["cause_txt"]) == (34, "Circuit/channel congestion")


async def test_busy_on_an_answered_channel_keeps_it_up(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, events = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="t", extension="busy")
    await asyncio.wait_for(line.wait_ended(), 5)
    assert line.hangup_cause == 16  # only an unanswered channel takes cause 17
    states = [e["channel"]["state"] for e in events if e["type"] == "ChannelStateChange"]
    assert states == ["Up"]


async def test_busy_without_a_timeout_waits_for_the_caller(
    sim: tuple[Simulator, list[Event]],
) -> None:
    simulator, _ = sim
    simulator.pbx.config.dialplan.contexts.update(
        parse_dialplan("[wait]\nexten => s,1,Busy()\n").contexts
    )
    line: Line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="wait", extension="s")
    await asyncio.sleep(0.3)
    assert not line.ended
    await line.hangup()
    await asyncio.wait_for(line.wait_ended(), 5)


@pytest.mark.parametrize(("exten", "cause"), [("named", 17), ("bogus", 16)])
async def test_hangup_takes_a_cause_name(
    sim: tuple[Simulator, list[Event]], exten: str, cause: int
) -> None:
    simulator, _ = sim
    line = simulator.inbound_call("PJSIP/gateway-fxo-1", context="causes", extension=exten)
    await asyncio.wait_for(line.wait_ended(), 5)
    assert line.hangup_cause == cause
