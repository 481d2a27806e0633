"""The inbound AI call: answer, bridge, externalMedia, then the agent on the AudioSocket."""

from __future__ import annotations

import asyncio
import logging
import time

from operadora import events as ev
from operadora.ari.errors import AriError, AriNotFound
from operadora.calls.call import Call, CallContext
from operadora.calls.media import CallMedia
from operadora.calls.registry import BRIDGE_NAME_PREFIX, CALL_KEY
from operadora.calls.state import CallState, CallStateMachine, CallTrigger
from operadora.calls.teardown import CallTeardown
from operadora.media import MediaSession

log = logging.getLogger(__name__)


class InboundCalls(CallTeardown):
    """Set-up of ARI calls and of the direct ``AudioSocket()`` route."""

    async def set_up(self, call: Call) -> None:
        """Answer, bridge and bring the media leg in (DESIGN.md, 'A call on a real Asterisk')."""
        client = self.clients[call.server]
        async with call.lock:
            if call.state is not CallState.RINGING:
                return
            call.sm.fire(CallTrigger.SETUP)
            # the slowest first: Asterisk dials our media server before it answers the request
            media, bridge, answered = await asyncio.gather(
                client.external_media(
                    channel_id=call.media_channel_id,
                    external_host=self.media_address,
                    data=call.call_id,
                    media_format=self.media_format,
                ),
                client.create_bridge(
                    call.bridge_id, "mixing", name=BRIDGE_NAME_PREFIX + call.call_id
                ),
                client.answer(call.channel_id),
                return_exceptions=True,
            )
            if isinstance(answered, AriNotFound):
                log.info(
                    "call %s: channel %s gone before it could be answered; not recorded",
                    call.call_id,
                    call.channel_id,
                )
                call.end_as("caller")
                call.sm.fire(CallTrigger.HANGUP)
                await self._release_media(call)
                self._finish(call, CallTrigger.VANISHED, publish=False)
                self.discarded += 1
                return
            self._publish_arrival(call)
            problem = _first_error(answered, bridge, media)
            if problem is None:
                self.bus.publish(ev.CallAnsweredEvent(call.call_id))
                try:
                    await client.add_channels(
                        call.bridge_id, [call.channel_id, call.media_channel_id]
                    )
                except AriError as exc:
                    problem = exc
            if problem is None:
                call.sm.fire(CallTrigger.BRIDGED)
                call.media_timer = asyncio.get_running_loop().call_later(
                    self.media_connect_timeout_s,
                    lambda: self.spawn(self._media_timeout(call), name=f"media-{call.call_id}"),
                )
                return
            if isinstance(problem, AriNotFound):
                log.info("call %s: caller left during setup (%s)", call.call_id, problem)
                call.end_as("caller")
            else:
                log.error("call %s: setup failed: %s", call.call_id, problem)
                call.failed = True
                call.end_as("system")
            await self._hang_up_locked(call)

    # -- media -------------------------------------------------------------------------------

    async def on_media(self, session: MediaSession) -> None:
        """The media server's handler: one AudioSocket connection, for as long as it lasts."""
        call = self.calls.get(str(session.call_uuid))
        if call is None:
            if self.has_ended(CALL_KEY, str(session.call_uuid)):
                log.info("AudioSocket connection for ended call %s; closing it", session.call_uuid)
                await session.hangup()
                return
            await self._run_direct(session)
            return
        async with call.lock:
            if call.state is not CallState.BRIDGED:
                log.log(
                    logging.INFO if call.state is CallState.ENDED else logging.WARNING,
                    "call %s: AudioSocket connection in state %s; closing it",
                    call.call_id,
                    call.state.value,
                )
                await session.hangup()
                return
            self._connect_media(call, session)
            call.sm.fire(CallTrigger.MEDIA_CONNECTED)
        await self._run_agent(call)

    async def _media_timeout(self, call: Call) -> None:
        async with call.lock:
            if call.state is not CallState.BRIDGED:
                return
            log.error(
                "call %s: no AudioSocket connection from Asterisk within %.1f s; is "
                "asterisk.media_address (%s) reachable from Asterisk?",
                call.call_id,
                self.media_connect_timeout_s,
                self.media_address,
            )
            call.failed = True
            call.end_as("system")
            await self._hang_up_locked(call)

    def _connect_media(self, call: Call, session: MediaSession) -> None:
        if call.media_timer is not None:
            call.media_timer.cancel()
        media = CallMedia(session)
        media.start()
        call.media = media
        call.media_at = time.monotonic()
        self.bus.publish(ev.MediaConnectedEvent(call.call_id, sample_rate=session.sample_rate))

    async def _run_agent(self, call: Call) -> None:
        assert call.media is not None
        task = self.spawn(self.agent(call.media, call.context), name=f"agent-{call.call_id}")
        call.agent_task = task
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            call.failed = True
        if call.state.live:
            peer_closed = call.media.closed
            if call.context.direct:
                await self.hangup(call.call_id, "caller" if peer_closed else "agent")
            else:
                await self.hangup(call.call_id, "system" if peer_closed else "agent")

    async def _run_direct(self, session: MediaSession) -> None:
        """The seed's ``AudioSocket()`` route: no ARI call owns this UUID."""
        call_id = str(session.call_uuid)
        call = Call(context=CallContext(call_id=call_id, direct=True), sm=CallStateMachine(call_id))
        self.calls[call_id] = call
        self._publish_arrival(call)
        self.bus.publish(
            ev.CallAnsweredEvent(call_id)
        )  # the dialplan answered before AudioSocket()
        async with call.lock:
            self._connect_media(call, session)
            call.sm.fire(CallTrigger.DIRECT_MEDIA)
        await self._run_agent(call)

    def dtmf(self, call: Call, digit: str) -> bool:
        """Hand a key press ARI reported to the agent (which publishes the DtmfEvent)."""
        return call.media is not None and call.media.inject_dtmf(digit)


def _first_error(*results: object) -> BaseException | None:
    for result in results:
        if isinstance(result, BaseException):
            return result
    return None
