"""One call as call control sees it: ids, who called whom, state, media, how it ended."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from operadora.calls.media import CallMedia
from operadora.calls.state import CallState, CallStateMachine


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the voice agent is told about the call it answers."""

    call_id: str
    caller_id: str = ""
    caller_name: str = ""
    did: str = ""
    channel_id: str = ""
    server: str = ""
    args: tuple[str, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict)
    direct: bool = False  # AudioSocket() from the dialplan: no ARI control, no transfers


@dataclass(slots=True, eq=False)
class Call:
    context: CallContext
    sm: CallStateMachine
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    media_channel_id: str = ""
    bridge_id: str = ""
    media: CallMedia | None = None
    agent_task: asyncio.Task[None] | None = None
    ended_by: str = ""
    cause: int | None = None
    cause_txt: str = ""
    failed: bool = False
    released: bool = False  # media leg, bridge and agent already let go
    arrived_at: float = field(default_factory=time.monotonic)  # StasisStart seen (monotonic)
    arrived_wall: float = field(default_factory=time.time)  # the same, wall clock
    media_at: float | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    timeout_handle: asyncio.TimerHandle | None = None  # hang-up not confirmed yet
    media_timer: asyncio.TimerHandle | None = None  # AudioSocket connection not arrived yet
    confirm_attempts: int = 0
    hangup_request_cause: int | None = None  # from a non-soft ChannelHangupRequest
    refused: bool = False  # over the caller-ID rate limit: ends as spam
    refusal_timer: asyncio.TimerHandle | None = None  # the refusal prompt's longest run

    @property
    def call_id(self) -> str:
        return self.context.call_id

    @property
    def channel_id(self) -> str:
        return self.context.channel_id

    @property
    def server(self) -> str:
        return self.context.server

    @property
    def state(self) -> CallState:
        return self.sm.state

    def end_as(self, ended_by: str) -> None:
        """Remember who ended the call, the first time only."""
        if not self.ended_by:
            self.ended_by = ended_by

    def disposition(self) -> str:
        if self.refused:
            return "spam"
        if self.failed:
            return "failed"
        if self.media_at is None:
            return "abandoned"
        return "resolved"
