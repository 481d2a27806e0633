"""The dialplan/config parsers on literal configuration text and the shipped recording setup."""

from __future__ import annotations

import uuid
from importlib import resources

import pytest

from operadora.sim.dialplan.conf import ConfError, parse_sections, strip_comment
from operadora.sim.dialplan.plan import parse_dialplan, pattern_matches
from operadora.sim.dialplan.queues import parse_queues
from operadora.sim.dialplan.subst import substitute
from operadora.sim.endpoints import parse_pjsip

pytestmark = pytest.mark.unit

CONF = """
; comment line
[general]
static = yes

[globals]
SERVER = 127.0.0.1:9092

[main]
exten => 100,1,NoOp(AudioSocket call ${CHANNEL} from ${CALLERID(num)})
 same => n,Answer()
 same => n(talk),Set(AS_UUID=${UUID()})
 same => n,AudioSocket(${AS_UUID},${SERVER}) ; trailing comment
 same => 10,Hangup()
exten => _X.,1,NoOp(pattern ${EXTEN})
exten => s,1,Goto(100,talk)
include => other

[other]
exten => 555,1,Playback(hello-world)
"""


def test_contexts_priorities_and_labels() -> None:
    plan = parse_dialplan(CONF)
    assert plan.globals == {"SERVER": "127.0.0.1:9092"}
    steps = plan.contexts["main"].extensions["100"]
    assert [s.priority for s in steps.values()] == [1, 2, 3, 4, 10]
    assert steps[1].app == "NoOp"
    assert steps[1].data == "AudioSocket call ${CHANNEL} from ${CALLERID(num)}"
    assert steps[2].app == "Answer" and steps[2].data == ""
    assert steps[3].label == "talk"
    assert steps[4].data == "${AS_UUID},${SERVER}"
    assert plan.label("main", "100", "talk") == 3
    assert plan.step("main", "s", 1) is not None
    assert plan.step("main", "100", 5) is None


def test_patterns_and_includes() -> None:
    plan = parse_dialplan(CONF)
    assert plan.match("main", "100") == ("main", "100")
    assert plan.match("main", "4711") == ("main", "_X.")
    assert plan.match("main", "555") == ("main", "_X.")  # own patterns before includes
    assert plan.match("other", "555") == ("other", "555")
    assert plan.match("main", "abc") is None
    assert pattern_matches("_NXX", "212")
    assert not pattern_matches("_NXX", "112")
    assert pattern_matches("_[1-3]!", "3")
    assert not pattern_matches("_X.", "1")


def test_errors_name_the_line() -> None:
    with pytest.raises(ConfError, match="outside any"):
        parse_sections("exten => 1,1,NoOp()")
    with pytest.raises(ConfError, match="bad priority"):
        parse_dialplan("[c]\nexten => 1,x,NoOp()")
    with pytest.raises(ConfError, match="same =>"):
        parse_dialplan("[c]\nsame => n,NoOp()")


def test_comments_and_escaped_semicolons() -> None:
    assert strip_comment("exten => 1,1,NoOp(a\\;b) ; c") == "exten => 1,1,NoOp(a;b)"
    assert strip_comment("; all comment") == ""


def test_substitution() -> None:
    values = {"CHANNEL": "Local/100@call-center-0000000e;2", "CALLERID(num)": "5551000", "A": "B"}
    lookup = values.get
    assert (
        substitute("AudioSocket call ${CHANNEL} from ${CALLERID(num)}", lookup)
        == "AudioSocket call Local/100@call-center-0000000e;2 from 5551000"
    )
    assert substitute("${UNKNOWN}x", lookup) == "x"
    assert substitute("${${A}}", {"A": "B", "B": "nested"}.get) == "nested"
    assert substitute("${CALLERID(num):0:3}", lookup) == "555"
    generated = substitute("${UUID()}", lookup)
    assert str(uuid.UUID(generated)) == generated
    assert substitute("no vars", lookup) == "no vars"
    assert substitute("${open", lookup) == "${open"


def test_the_shipped_recording_setup() -> None:
    data = resources.files("operadora.sim").joinpath("data")
    plan = parse_dialplan(data.joinpath("extensions.conf").read_text())
    assert plan.globals["AUDIOSOCKET_SERVER"] == "127.0.0.1:9092"
    stasis = plan.step("call-center", "110", 2)
    assert stasis is not None and stasis.app == "Stasis"
    assert stasis.data == "${ARI_APP},inbound,${EXTEN}"
    assert [s.app for s in plan.contexts["stasis-test"].extensions["s"].values()] == [
        "NoOp",
        "Answer",
        "Wait",
        "Hangup",
    ]
    queue = plan.step("call-center", "200", 3)
    assert queue is not None and queue.data == "support-queue,t,,,120"
    assert plan.match("outbound-callback", "5551234") == ("outbound-callback", "_X.")

    queues = parse_queues(data.joinpath("queues.conf").read_text())
    support = queues["support-queue"]
    assert support.strategy == "ringall"
    assert support.members[0].interface == "Local/agent1@queue-agents/n"
    assert support.members[0].name == "Agent One"

    endpoints = {e.resource: e for e in parse_pjsip(data.joinpath("pjsip.conf").read_text())}
    assert set(endpoints) == {"agent1", "agent2", "sipp"}
    assert endpoints["agent2"].contact == "sip:agent2@127.0.0.1:5071"
    assert endpoints["sipp"].context == "call-center"
