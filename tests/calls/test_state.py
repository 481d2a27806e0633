"""The call state machine's transition table."""

from __future__ import annotations

import pytest

from operadora.calls.state import (
    TRANSITIONS,
    CallState,
    CallStateMachine,
    CallTrigger,
    IllegalTransition,
)

pytestmark = pytest.mark.unit


def test_happy_path() -> None:
    sm = CallStateMachine("c1")
    for trigger in (
        CallTrigger.SETUP,
        CallTrigger.BRIDGED,
        CallTrigger.MEDIA_CONNECTED,
        CallTrigger.HANGUP,
        CallTrigger.DESTROYED,
    ):
        sm.fire(trigger)
    assert sm.state is CallState.ENDED
    assert len(sm.history) == 5


def test_ended_is_final() -> None:
    assert not [key for key in TRANSITIONS if key[0] is CallState.ENDED]
    sm = CallStateMachine("c1", CallState.ENDED)
    for trigger in CallTrigger:
        with pytest.raises(IllegalTransition):
            sm.fire(trigger)


def test_every_live_state_can_end_both_ways() -> None:
    for state in CallState:
        if state.live:
            assert TRANSITIONS[(state, CallTrigger.HANGUP)] is CallState.ENDING
            assert TRANSITIONS[(state, CallTrigger.DESTROYED)] is CallState.ENDED
            assert TRANSITIONS[(state, CallTrigger.VANISHED)] is CallState.ENDED


def test_media_only_after_bridging() -> None:
    sm = CallStateMachine("c1")
    sm.fire(CallTrigger.SETUP)
    assert not sm.can(CallTrigger.MEDIA_CONNECTED)
    with pytest.raises(IllegalTransition):
        sm.fire(CallTrigger.MEDIA_CONNECTED)
    assert sm.state is CallState.SETTING_UP
