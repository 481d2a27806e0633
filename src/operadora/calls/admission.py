"""Admission of inbound calls: the rate limit per caller ID (issue 5, item 2).

A caller ID that called more than ``api.rate_limit_calls`` times within
``api.rate_limit_window_s`` is spam. Such a call is still answered, so the caller hears why:
call control plays ``asterisk.refusal_media`` on the channel (Asterisk's core sounds, in the
channel's language; no bridge, no media leg, no agent) and hangs up when the playback ends
(``PlaybackFinished``), or after ``asterisk.refusal_max_s`` at the latest. The call is
recorded like any other with disposition ``spam``.
"""

from __future__ import annotations

import asyncio
import logging

from operadora import events as ev
from operadora.ari.errors import AriError, AriNotFound
from operadora.calls.call import Call
from operadora.calls.inbound import InboundCalls
from operadora.calls.state import CallState, CallTrigger

log = logging.getLogger(__name__)

REFUSAL_SUFFIX = "-refusal"  # the refusal playback's id: "<call id>-refusal"
LIMITER_TIMEOUT_S = 2.0  # a shared limiter (Redis) slower than this lets the call in


class CallAdmission(InboundCalls):
    """Decides, per inbound call, between the AI call and the polite refusal."""

    async def admit(self, call: Call) -> None:
        """What the router runs for a new inbound call."""
        if await self._over_limit(call):
            await self.refuse(call)
        else:
            await self.set_up(call)

    async def _over_limit(self, call: Call) -> bool:
        limiter = self.rate_limiter
        if limiter is None or call.context.direct:
            return False
        caller_id = call.context.caller_id
        try:
            async with asyncio.timeout(LIMITER_TIMEOUT_S):
                allowed = await limiter.allow(caller_id)
        except Exception as exc:  # a broken shared limiter must not stop the call center
            log.warning(
                "call %s: rate limiter unavailable (%s: %s); letting the call in",
                call.call_id,
                type(exc).__name__,
                exc,
                extra={"call_id": call.call_id},
            )
            return False
        if not allowed:
            log.warning(
                "call %s: caller %r called more than %d times within %.0f s: refused as spam",
                call.call_id,
                caller_id,
                limiter.limit,
                limiter.window_s,
                extra={"call_id": call.call_id},
            )
        return not allowed

    async def refuse(self, call: Call) -> None:
        """Answer, play the refusal, hang up when it ends; the record says ``spam``."""
        client = self.clients[call.server]
        async with call.lock:
            if call.state is not CallState.RINGING:
                return
            call.sm.fire(CallTrigger.REFUSE)
            call.refused = True
            call.released = True  # no media leg, bridge or agent was ever asked for
            try:
                await client.answer(call.channel_id)
            except AriNotFound:
                log.info("call %s: refused caller gone before the answer", call.call_id)
                call.end_as("caller")
                self._finish(call, CallTrigger.VANISHED, publish=False)
                self.discarded += 1
                return
            except AriError as exc:
                log.warning("call %s: cannot answer the refused call: %s", call.call_id, exc)
                self._publish_arrival(call)
                call.end_as("system")
                await self._hang_up_locked(call)
                return
            self.refused += 1
            self._publish_arrival(call)
            self.bus.publish(ev.CallAnsweredEvent(call.call_id))
            try:
                await client.play(
                    call.channel_id,
                    list(self.refusal_media),
                    playback_id=call.call_id + REFUSAL_SUFFIX,
                )
            except AriNotFound:
                pass  # the caller left already: StasisEnd / ChannelDestroyed end the call
            except AriError as exc:
                log.warning("call %s: refusal prompt failed: %s", call.call_id, exc)
                call.end_as("system")
                await self._hang_up_locked(call)
                return
            call.refusal_timer = asyncio.get_running_loop().call_later(
                self.refusal_max_s,
                lambda: self.spawn(
                    self.hangup(call.call_id, "system"), name=f"refused-{call.call_id}"
                ),
            )

    def playback_finished(self, playback_id: str) -> bool:
        """``PlaybackFinished``: the refusal is over, hang up. False when not a refusal."""
        if not playback_id.endswith(REFUSAL_SUFFIX):
            return False
        call = self.calls.get(playback_id.removesuffix(REFUSAL_SUFFIX))
        if call is None or not call.refused:
            return False
        self.spawn(self.hangup(call.call_id, "system"), name=f"refused-{call.call_id}")
        return True
