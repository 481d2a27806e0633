"""The calls of one engine process: who is who, which channel belongs to which call.

The base of :class:`~operadora.calls.services.CallService`; the use cases live in
``inbound.py`` (set-up, media, agent) and ``teardown.py`` (hang-ups, cleanup, records).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from operadora import events as ev
from operadora.ari.client import AriClient
from operadora.calls.agent import CallAgent
from operadora.calls.call import Call, CallContext
from operadora.calls.state import CallStateMachine

if TYPE_CHECKING:
    from operadora.state.ratelimit import RateLimiter

log = logging.getLogger(__name__)

NORMAL_CLEARING = (16, "Normal Clearing")
BRIDGE_NAME_PREFIX = "operadora-"  # names the mixing bridge of each call (see recover())
CALL_KEY = "#call"  # remembers ended call ids next to (server, channel id) pairs
UNKNOWN_CAUSE_TXT = "unknown: the channel ended while the ARI event stream was down"


class CallRegistry:
    """State shared by the call-control use cases."""

    def __init__(
        self,
        *,
        agent: CallAgent,
        bus: ev.EventBus,
        media_address: str,
        media_format: str = "slin16",
        instance: str = "",
        hangup_confirm_timeout_s: float = 5.0,
        media_connect_timeout_s: float = 5.0,
        remember_ended: int = 10_000,
        rate_limiter: RateLimiter | None = None,
        refusal_media: Sequence[str] = ("sound:im-sorry", "sound:please-try-call-later"),
        refusal_max_s: float = 15.0,
    ) -> None:
        self.agent = agent
        self.bus = bus
        self.media_address = media_address
        self.media_format = media_format
        self.instance = instance
        self.hangup_confirm_timeout_s = hangup_confirm_timeout_s
        self.media_connect_timeout_s = media_connect_timeout_s
        self.clients: dict[str, AriClient] = {}
        self.calls: dict[str, Call] = {}
        self._by_channel: dict[tuple[str, str], Call] = {}
        self._media_channels: set[tuple[str, str]] = set()
        self._ended_channels: set[tuple[str, str]] = set()
        self._ended_order: deque[tuple[str, str]] = deque()
        self._remember_ended = remember_ended
        self.rate_limiter = rate_limiter  # None: every caller ID may call as often as it likes
        self.refusal_media = tuple(refusal_media)
        self.refusal_max_s = refusal_max_s
        self.refused = 0  # calls answered with the refusal prompt (over the rate limit)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ended_calls = 0
        self.discarded = 0  # StasisStarts whose channel was gone before the answer

    def add_client(self, client: AriClient) -> None:
        self.clients[client.name] = client

    # -- lookups used by the stasis router -------------------------------------------------

    def call_for_channel(self, server: str, channel_id: str) -> Call | None:
        return self._by_channel.get((server, channel_id))

    def is_media_channel(self, server: str, channel_id: str) -> bool:
        return (server, channel_id) in self._media_channels

    def has_ended(self, server: str, channel_id: str) -> bool:
        return (server, channel_id) in self._ended_channels

    def is_call_id(self, value: str) -> bool:
        """Whether ``value`` names one of our calls, live or recently ended."""
        return value in self.calls or (CALL_KEY, value) in self._ended_channels

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("call control task %s failed", task.get_name(), exc_info=exc)

    # -- arrival ---------------------------------------------------------------------------------

    def arrive(
        self,
        server: str,
        channel_id: str,
        *,
        caller_id: str,
        caller_name: str,
        did: str,
        args: Iterable[str],
        variables: dict[str, Any] | None = None,
    ) -> Call:
        """Register a call whose caller channel just entered Stasis (synchronous: no race).

        Its CallArrivedEvent (dated now) is published once Asterisk accepted the answer: a
        StasisStart for a channel that does not exist (or is gone within milliseconds)
        leaves no record.
        """
        call_id = str(uuid.uuid4())
        context = CallContext(
            call_id=call_id,
            caller_id=caller_id,
            caller_name=caller_name,
            did=did,
            channel_id=channel_id,
            server=server,
            args=tuple(args),
            variables=dict(variables or {}),
        )
        call = Call(context=context, sm=CallStateMachine(call_id))
        call.media_channel_id = f"{call_id}-media"
        call.bridge_id = call_id
        self.calls[call_id] = call
        self._by_channel[(server, channel_id)] = call
        self._by_channel[(server, call.media_channel_id)] = call
        self._media_channels.add((server, call.media_channel_id))
        return call

    def _publish_arrival(self, call: Call) -> None:
        context = call.context
        self.bus.publish(
            ev.CallArrivedEvent(
                call.call_id,
                caller_id=context.caller_id,
                did=context.did,
                channel_id=context.channel_id,
                server=context.server,
                instance=self.instance,
                at=call.arrived_wall,
            )
        )

    def _remember(self, key: tuple[str, str]) -> None:
        if not key[1] or key in self._ended_channels:
            return
        self._ended_channels.add(key)
        self._ended_order.append(key)
        while len(self._ended_order) > self._remember_ended:
            self._ended_channels.discard(self._ended_order.popleft())
