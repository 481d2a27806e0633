"""Call control use cases: set up the inbound AI call, run the agent, tear everything down.

Every method that touches a call takes that call's lock, so ARI events, the AudioSocket
connection, the agent's requests and resynchronisation never interleave on one call.
The pieces: ``registry.py`` (ids and lookups), ``inbound.py`` (set-up, media, agent),
``teardown.py`` (hang-ups and records), ``admission.py`` (the rate limit per caller ID);
this class adds shutdown.
"""

from __future__ import annotations

import asyncio

from operadora.calls.admission import CallAdmission
from operadora.calls.call import Call
from operadora.calls.registry import (
    BRIDGE_NAME_PREFIX,
    NORMAL_CLEARING,
    UNKNOWN_CAUSE_TXT,
)
from operadora.calls.state import CallState, CallTrigger

__all__ = ["BRIDGE_NAME_PREFIX", "NORMAL_CLEARING", "UNKNOWN_CAUSE_TXT", "CallService"]


class CallService(CallAdmission):
    """All calls of one engine process, across every configured Asterisk server."""

    def live_calls(self, server: str | None = None) -> list[Call]:
        return [
            call
            for call in list(self.calls.values())
            if not call.context.direct and (server is None or call.server == server)
        ]

    async def close(self, timeout_s: float = 5.0) -> None:
        """Hang up every call (shutdown) and wait for the agent tasks to finish."""
        await asyncio.gather(
            *(self.hangup(call.call_id, "system") for call in list(self.calls.values())),
            return_exceptions=True,
        )
        waiting = [asyncio.ensure_future(call.ended.wait()) for call in self.calls.values()]
        if waiting:  # let the ChannelDestroyed events (and their causes) come in
            _, pending = await asyncio.wait(waiting, timeout=min(timeout_s, 2.0))
            for waiter in pending:
                waiter.cancel()
        for call in list(self.calls.values()):
            if call.state is CallState.ENDING:
                self._finish(call, CallTrigger.TIMEOUT)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in set(self._tasks):
            task.cancel()
