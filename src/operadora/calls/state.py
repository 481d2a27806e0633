"""The lifecycle of one call as an explicit state machine.

```
RINGING ─setup─▶ SETTING_UP ─bridged─▶ BRIDGED ─media_connected─▶ ACTIVE
   │  │                                                            ▲
   │  └───────────────────────── direct_media ─────────────────────┘   (AudioSocket() route)
   └─refuse─▶ REFUSING   (over the rate limit: answered, a polite prompt, then hung up)
any live state ─hangup─▶ ENDING ─destroyed / vanished / timeout─▶ ENDED
any live state ─destroyed / vanished─▶ ENDED
```

Every transition is logged ``from -[trigger]-> to`` with the call id; a trigger that does
not fit the current state raises :class:`IllegalTransition` (callers decide to ignore it,
e.g. a duplicated event).
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger(__name__)


class CallState(enum.Enum):
    RINGING = "ringing"  # StasisStart seen, nothing done yet
    SETTING_UP = "setting_up"  # answer, bridge and externalMedia requested
    BRIDGED = "bridged"  # caller and media leg in one mixing bridge, waiting for AudioSocket
    ACTIVE = "active"  # the voice agent runs on the AudioSocket connection
    REFUSING = "refusing"  # over the caller-ID rate limit: answered, hearing the refusal
    ENDING = "ending"  # a hang-up was requested; waiting for the caller channel to go
    ENDED = "ended"  # final: everything torn down, CallEndedEvent published

    @property
    def live(self) -> bool:
        return self not in (CallState.ENDING, CallState.ENDED)


class CallTrigger(enum.Enum):
    SETUP = "setup"
    BRIDGED = "bridged"
    MEDIA_CONNECTED = "media_connected"
    DIRECT_MEDIA = "direct_media"
    REFUSE = "refuse"  # the caller ID called too often: spam
    HANGUP = "hangup"  # someone asked to end the call (caller left Stasis, agent, API, error)
    DESTROYED = "destroyed"  # the caller channel is gone (ChannelDestroyed)
    VANISHED = "vanished"  # the caller channel is gone, seen only by a resync
    TIMEOUT = "timeout"  # the hang-up was never confirmed


S = CallState
T = CallTrigger
_LIVE = (S.RINGING, S.SETTING_UP, S.BRIDGED, S.ACTIVE, S.REFUSING)

TRANSITIONS: dict[tuple[CallState, CallTrigger], CallState] = {
    (S.RINGING, T.SETUP): S.SETTING_UP,
    (S.SETTING_UP, T.BRIDGED): S.BRIDGED,
    (S.BRIDGED, T.MEDIA_CONNECTED): S.ACTIVE,
    (S.RINGING, T.DIRECT_MEDIA): S.ACTIVE,
    (S.RINGING, T.REFUSE): S.REFUSING,
    **{(state, T.HANGUP): S.ENDING for state in _LIVE},
    **{(state, T.DESTROYED): S.ENDED for state in (*_LIVE, S.ENDING)},
    **{(state, T.VANISHED): S.ENDED for state in (*_LIVE, S.ENDING)},
    (S.ENDING, T.TIMEOUT): S.ENDED,
}


class IllegalTransition(Exception):
    def __init__(self, state: CallState, trigger: CallTrigger) -> None:
        self.state = state
        self.trigger = trigger
        super().__init__(f"no transition from {state.value} on {trigger.value}")


class CallStateMachine:
    """Holds one call's state and applies the transition table."""

    __slots__ = ("call_id", "history", "state")

    def __init__(self, call_id: str, state: CallState = CallState.RINGING) -> None:
        self.call_id = call_id
        self.state = state
        self.history: list[tuple[CallState, CallTrigger, CallState]] = []

    def can(self, trigger: CallTrigger) -> bool:
        return (self.state, trigger) in TRANSITIONS

    def fire(self, trigger: CallTrigger) -> CallState:
        target = TRANSITIONS.get((self.state, trigger))
        if target is None:
            raise IllegalTransition(self.state, trigger)
        log.info(
            "call %s: %s -[%s]-> %s",
            self.call_id,
            self.state.value,
            trigger.value,
            target.value,
            extra={"call_id": self.call_id},
        )
        self.history.append((self.state, trigger, target))
        self.state = target
        return target
