"""Simulated devices on simulated channels: the handle a caller, an extension or a queue
member uses to act on its channel (:class:`Line`), and the hook through which the simulator
asks someone to play the device of a channel it dials (:data:`DialHandler`).

A :class:`Line` satisfies both ``operadora.sim.callers.persona.LineControl`` (``send_dtmf``,
``hangup``, ``wait_ended``) and ``operadora.sim.callers.extensions.DialedChannel`` (``ring``,
``answer``, ``hangup``, ``wait_ended``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from operadora.sim.clock import run_until_done
from operadora.sim.media import (
    AudioSink,
    AudioSource,
    DeviceEvents,
    fit_frame,
    from_internal,
    to_internal,
)
from operadora.sim.model import Channel

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx


class Line:
    """A device's handle on one simulated channel (PJSIP phone, FXO gateway line, ...)."""

    def __init__(self, pbx: Pbx, channel: Channel, endpoint: str) -> None:
        self._pbx = pbx
        self.channel = channel
        self.endpoint = endpoint  # e.g. "PJSIP/gateway-fxo-1"
        self._pump: asyncio.Task[None] | None = None
        self.transfer_states: list[str] = []

    @property
    def channel_id(self) -> str:
        return self.channel.id

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def state(self) -> str:
        return self.channel.state

    @property
    def ended(self) -> bool:
        return self.channel.destroyed

    @property
    def hangup_cause(self) -> int:
        return self.channel.hangup_cause

    def attach(
        self,
        source: AudioSource | None,
        sink: AudioSink | None,
        events: DeviceEvents | None = None,
    ) -> None:
        """Connect the device's audio: ``source`` is pulled every 20 ms, ``sink`` hears."""
        ch = self.channel
        if sink is not None:
            rate = sink.sample_rate
            ch.device_write = lambda frame: sink.hear(from_internal(frame, rate))
        else:
            ch.device_write = None
        ch.device_events = events
        ch.device_dtmf = events.dtmf if events is not None else None
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if source is not None:
            self._pump = ch.spawn(self._pump_source(source))

    async def _pump_source(self, source: AudioSource) -> None:
        channel = self.channel

        def tick() -> bool:
            if channel.destroyed:
                return False
            frame = source.next_frame()
            if frame is not None and channel.state == "Up":
                channel.receive(fit_frame(to_internal(frame, source.sample_rate)))
            return True

        await run_until_done(tick)

    async def ring(self) -> None:
        """The device rings (a dialled channel): state Ringing, the caller hears ringback."""
        self._pbx.set_state(self.channel, "Ringing")
        if self.channel.on_ringing is not None:
            self.channel.on_ringing()

    async def answer(self) -> None:
        self._pbx.answer(self.channel)

    async def hangup(self, cause: int = 16) -> None:
        self._pbx.hangup_from_device(self.channel, cause)

    async def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """The device presses a key: the channel reads the digit when it ends."""
        for d in digit:
            await asyncio.sleep(duration_ms / 1000)
            self._pbx.receive_dtmf(self.channel, d, duration_ms)

    async def refer(self, destination: str, context: str | None = None) -> None:
        """The phone transfers its call (SIP REFER to ``destination``); the progress Asterisk
        reports back (NOTIFY) lands in :attr:`transfer_states`."""
        from operadora.sim import transfer

        self.channel.device_transfer = self.transfer_states.append
        transfer.refer(self._pbx, self.channel, destination, context)

    async def wait_answered(self) -> bool:
        """Returns True once the channel is up, False if it ended first."""
        await self.channel.answered.wait()
        return self.channel.state == "Up" and not self.channel.destroyed

    async def wait_ended(self) -> None:
        await self.channel.ended.wait()

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(Exception):
                self._pump = None


# The simulator calls this when it dials a device (PJSIP/..., a non-Local endpoint): the
# handler plays the device (rings, answers or declines through the Line). Without a handler
# a dialled device never answers.
DialHandler = Callable[[Line], Awaitable[None]]
