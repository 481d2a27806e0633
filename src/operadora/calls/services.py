"""Call control use cases: set up the inbound AI call, run the agent, tear everything down.

Every method that touches a call takes that call's lock, so ARI events, the AudioSocket
connection, the agent's requests and resynchronisation never interleave on one call.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any

from operadora import events as ev
from operadora.ari.client import AriClient
from operadora.ari.errors import AriError, AriNotFound
from operadora.calls.agent import CallAgent
from operadora.calls.call import Call, CallContext
from operadora.calls.media import CallMedia
from operadora.calls.state import CallState, CallStateMachine, CallTrigger
from operadora.media import MediaSession

log = logging.getLogger(__name__)

NORMAL_CLEARING = (16, "Normal Clearing")
BRIDGE_NAME_PREFIX = "operadora-"  # names the mixing bridge of each call (see recover())
_CALL_KEY = "#call"  # remembers ended call ids next to (server, channel id) pairs
UNKNOWN_CAUSE_TXT = "unknown: the channel ended while the ARI event stream was down"


class CallService:
    """All calls of one engine process, across every configured Asterisk server."""

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
        return value in self.calls or (_CALL_KEY, value) in self._ended_channels

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("call control task %s failed", task.get_name(), exc_info=exc)

    # -- arrival and setup -------------------------------------------------------------------

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

    async def set_up(self, call: Call) -> None:
        """Answer, bridge and bring the media leg in (DESIGN.md, 'A call on a real Asterisk')."""
        client = self.clients[call.server]
        async with call.lock:
            if call.state is not CallState.RINGING:
                return
            call.sm.fire(CallTrigger.SETUP)
            answered, bridge, media = await asyncio.gather(
                client.answer(call.channel_id),
                client.create_bridge(
                    call.bridge_id, "mixing", name=BRIDGE_NAME_PREFIX + call.call_id
                ),
                client.external_media(
                    channel_id=call.media_channel_id,
                    external_host=self.media_address,
                    data=call.call_id,
                    media_format=self.media_format,
                ),
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
            if self.has_ended(_CALL_KEY, str(session.call_uuid)):
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

    # -- hang-up and teardown ------------------------------------------------------------------

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
        for timer in (call.timeout_handle, call.media_timer):
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
        self._remember((_CALL_KEY, call.call_id))
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

    def _remember(self, key: tuple[str, str]) -> None:
        if not key[1] or key in self._ended_channels:
            return
        self._ended_channels.add(key)
        self._ended_order.append(key)
        while len(self._ended_order) > self._remember_ended:
            self._ended_channels.discard(self._ended_order.popleft())

    # -- resynchronisation and shutdown ----------------------------------------------------

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


def _first_error(*results: object) -> BaseException | None:
    for result in results:
        if isinstance(result, BaseException):
            return result
    return None
