"""Ending calls: hang-ups from every side, releasing media, closing the record once."""

from __future__ import annotations

import asyncio
import logging

from operadora import events as ev
from operadora.ari.errors import AriError, AriNotFound
from operadora.calls.call import Call
from operadora.calls.registry import CALL_KEY, NORMAL_CLEARING, UNKNOWN_CAUSE_TXT, CallRegistry
from operadora.calls.state import CallState, CallTrigger

log = logging.getLogger(__name__)


class CallTeardown(CallRegistry):
    """Every hang-up path ends in :meth:`_finish`, which publishes CallEndedEvent once."""

    async def hangup(self, call_id: str, ended_by: str = "api") -> bool:
        """End a call on request (agent, API, shutdown). False when it is not live here."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        async with call.lock:
            if not call.state.live:
                return False
            call.end_as(ended_by)
            await self._hang_up_locked(call)
            return True

    async def _hang_up_locked(self, call: Call) -> None:
        call.sm.fire(CallTrigger.HANGUP)
        await self._release_media(call)
        if call.context.direct:
            self._finish(call, CallTrigger.DESTROYED)
            return
        try:
            await self.clients[call.server].hangup(call.channel_id)
        except AriNotFound:
            log.info("call %s: caller channel already gone", call.call_id)
        except AriError as exc:
            log.warning("call %s: hang-up request failed: %s", call.call_id, exc)
        self._arm_confirm_timeout(call)

    async def caller_left(self, call: Call) -> None:
        """StasisEnd of the caller: the channel left our application (hang-up, continue)."""
        async with call.lock:
            if not call.state.live:
                return
            call.end_as("caller")
            call.sm.fire(CallTrigger.HANGUP)
            await self._release_media(call)
            self._arm_confirm_timeout(call)

    async def caller_destroyed(self, call: Call, cause: int, cause_txt: str) -> None:
        async with call.lock:
            if call.state is CallState.ENDED:
                return
            call.end_as("caller")
            call.cause, call.cause_txt = cause, cause_txt
            await self._release_media(call)
            self._finish(call, CallTrigger.DESTROYED)

    async def media_leg_gone(self, call: Call) -> None:
        """The externalMedia channel ended while the call was up: nobody talks to the caller."""
        if call.state.live and call.state is not CallState.SETTING_UP:
            log.warning("call %s: media leg ended unexpectedly", call.call_id)
            await self.hangup(call.call_id, "system")

    async def _release_media(self, call: Call) -> None:
        if call.released:
            return
        call.released = True
        if call.agent_task is not None and not call.agent_task.done():
            call.agent_task.cancel()
        if call.media is not None and not call.media.closed:
            try:
                await call.media.hangup()
            except (OSError, RuntimeError) as exc:
                log.debug("call %s: media hang-up: %s", call.call_id, exc)
        if call.context.direct:
            return
        client = self.clients[call.server]
        results = await asyncio.gather(
            client.hangup(call.media_channel_id),
            client.destroy_bridge(call.bridge_id),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, AriNotFound):
                log.warning("call %s: teardown: %s", call.call_id, result)

    def _arm_confirm_timeout(self, call: Call) -> None:
        if call.timeout_handle is None:
            call.timeout_handle = asyncio.get_running_loop().call_later(
                self.hangup_confirm_timeout_s,
                lambda: self.spawn(self._confirm_gone(call), name=f"confirm-{call.call_id}"),
            )

    async def _confirm_gone(self, call: Call) -> None:
        """No ChannelDestroyed came after the hang-up: ask Asterisk, ask again, give up."""
        call.timeout_handle = None
        client = self.clients[call.server]
        try:
            await client.get_channel(call.channel_id)
        except AriNotFound:
            await self.vanished(call, "unknown: the channel was gone before its hang-up was seen")
            return
        except AriError as exc:
            log.warning("call %s: cannot confirm hang-up: %s", call.call_id, exc)
        async with call.lock:
            if call.state is not CallState.ENDING:
                return
            call.confirm_attempts += 1
            if call.ended_by != "caller" and call.confirm_attempts < 3:
                log.warning("call %s: caller channel still up; hanging up again", call.call_id)
                try:
                    await client.hangup(call.channel_id)
                except AriError as exc:
                    log.warning("call %s: hang-up request failed: %s", call.call_id, exc)
                self._arm_confirm_timeout(call)
                return
            self._finish(call, CallTrigger.TIMEOUT)

    async def vanished(self, call: Call, unknown_cause_txt: str = UNKNOWN_CAUSE_TXT) -> None:
        """The caller channel is gone and its ChannelDestroyed was never seen (resync)."""
        async with call.lock:
            if call.state is CallState.ENDED:
                return
            requested = call.state is CallState.ENDING and call.ended_by != "caller"
            call.end_as("caller")
            if requested:
                call.cause, call.cause_txt = NORMAL_CLEARING  # we hung up with reason=normal
            elif call.hangup_request_cause is not None:
                call.cause = call.hangup_request_cause
                call.cause_txt = "from the hang-up request (ChannelDestroyed not seen)"
            else:
                call.cause_txt = unknown_cause_txt
            await self._release_media(call)
            self._finish(call, CallTrigger.VANISHED)

    def _finish(self, call: Call, trigger: CallTrigger, *, publish: bool = True) -> None:
        call.sm.fire(trigger)
        for timer in (call.timeout_handle, call.media_timer, call.refusal_timer):
            if timer is not None:
                timer.cancel()
        if call.media is not None:
            call.media.stop()
        self.calls.pop(call.call_id, None)
        for key in ((call.server, call.channel_id), (call.server, call.media_channel_id)):
            if self._by_channel.get(key) is call:
                del self._by_channel[key]
            self._media_channels.discard(key)
            self._remember(key)
        self._remember((CALL_KEY, call.call_id))
        call.ended.set()
        if not publish:
            return
        self.ended_calls += 1
        self.bus.publish(
            ev.CallEndedEvent(
                call.call_id,
                disposition=call.disposition(),
                cause=call.cause,
                cause_txt=call.cause_txt,
                ended_by=call.ended_by or "system",
            )
        )
