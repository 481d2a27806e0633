"""Dialling from the dialplan (``Dial()``, ``Queue()``): outbound channels, their events, and
the basic bridge that joins caller and callee (``bridge_class: basic``, trace f5 and g)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from operadora.sim import bridging
from operadora.sim.audiosocket_link import FORMAT_RATE, AudioSocketLink
from operadora.sim.dialplan.runner import start_dialplan
from operadora.sim.lines import Line
from operadora.sim.model import PRESENTATION, Bridge, Channel, Party

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx

log = logging.getLogger(__name__)


@dataclass
class Outbound:
    channel: Channel
    dialstring: str  # as the Dial event reports it
    app: str  # AppDial | AppQueue
    answer_exten: str  # exten the outbound channel shows once answered


def _caller_party(caller: Channel) -> Party:
    return Party(caller.caller.name, caller.caller.number or caller.exten)


async def create_outbound(pbx: Pbx, caller: Channel, interface: str, app: str) -> Outbound | None:
    """Create (but do not yet answer) the channel ``interface`` dialled by ``caller``."""
    tech, _, rest = interface.partition("/")
    if tech.lower() == "audiosocket":
        return await _audiosocket_outbound(pbx, caller, rest, app)
    if tech.lower() == "local":
        return _local_outbound(pbx, caller, rest, app, interface)
    return _device_outbound(pbx, caller, tech, rest, app)


async def _audiosocket_outbound(pbx: Pbx, caller: Channel, rest: str, app: str) -> Outbound | None:
    parts = rest.split("/")
    if len(parts) < 2:
        return None
    host, call_uuid = parts[0], parts[1]
    fmt = "slin"
    for opt in parts[2:]:
        if opt.startswith("c(") and opt.endswith(")"):
            fmt = opt[2:-1]
    rate = FORMAT_RATE.get(fmt, 8000)
    try:
        uuid.UUID(call_uuid)
        link = await AudioSocketLink.connect(host, call_uuid, rate)
    except (ValueError, OSError, TimeoutError) as exc:
        log.warning("AudioSocket dial to %s failed: %s", host, exc)
        return None
    ch = pbx.new_channel(f"AudioSocket/{host}-{call_uuid}", "AudioSocket")
    attach_audiosocket(pbx, ch, link)
    pbx.emit("ChannelCreated", channel=ch)
    pbx.set_variable(ch, "AUDIOSOCKET_UUID", call_uuid)
    pbx.set_variable(ch, "AUDIOSOCKET_SERVICE", host)
    dialstring = rest
    pbx.set_variable(ch, "DIALEDPEERNUMBER", dialstring)
    _outgoing_line(pbx, caller, ch, "AppDial")
    return Outbound(ch, dialstring, "AppDial", "")


def attach_audiosocket(pbx: Pbx, ch: Channel, link: AudioSocketLink) -> None:
    """The channel's device is the AudioSocket server: written audio goes out on TCP."""
    ch.device_write = link.send_audio
    ch.device_dtmf = lambda digit, _ms: link.send_dtmf(digit)
    link.on_audio = ch.receive
    ch.close_device = lambda: link.close("asterisk")

    async def watch() -> None:
        await link.closed.wait()
        if not ch.destroyed and link.close_reason != "asterisk":
            pbx.hangup_from_device(ch, 16)

    link.start()
    ch.spawn(watch())


def _local_outbound(pbx: Pbx, caller: Channel, rest: str, app: str, interface: str) -> Outbound:
    one, two = pbx.create_local_pair(rest)
    party = _caller_party(caller)
    one.caller = Party(party.name, party.number)
    _outgoing_line(pbx, caller, one, app, emit_dial=False)
    pbx.set_variable(one, "DIALEDPEERNUMBER", rest)
    pbx.set_variable(two, "DIALEDPEERNUMBER", rest)
    two.connected = Party(party.name, party.number)
    pbx.emit("ChannelConnectedLine", channel=two)
    pbx.emit("Dial", peer=one, caller=caller, dialstatus="", forward="", dialstring=interface)
    one.exten = caller.exten  # shown from the answer on (trace g)
    start_dialplan(pbx, two, two.context, two.exten, 1)
    return Outbound(one, interface, app, caller.exten)


def _device_outbound(pbx: Pbx, caller: Channel, tech: str, rest: str, app: str) -> Outbound:
    resource = rest.split("/")[0]
    ch = pbx.new_channel(f"{tech}/{resource}-{pbx.next_counter()}", tech)
    pbx.emit("ChannelCreated", channel=ch)
    ch.variables["DIALEDPEERNUMBER"] = rest
    _outgoing_line(pbx, caller, ch, app)
    ch.on_ringing = lambda: pbx.emit(
        "Dial", peer=ch, caller=caller, dialstatus="RINGING", forward="", dialstring=rest
    )
    offer_to_device(pbx, ch, f"{tech}/{resource}")
    return Outbound(ch, rest, app, "")


def offer_to_device(pbx: Pbx, ch: Channel, endpoint: str) -> Line:
    line = Line(pbx, ch, endpoint)
    handler = pbx.dial_handler
    if handler is not None:
        ch.spawn(handler(line))
    return line


def _outgoing_line(
    pbx: Pbx, caller: Channel, ch: Channel, app: str, *, emit_dial: bool = True
) -> None:
    if ch.technology != "Local":
        ch.exten = caller.exten
    ch.app_name, ch.app_data = app, "(Outgoing Line)"
    party = _caller_party(caller)
    ch.caller = Party(party.name, party.number)
    pbx.emit("ChannelDialplan", channel=ch, dialplan_app=app, dialplan_app_data="(Outgoing Line)")
    if party.number or party.name:
        pbx.emit("ChannelCallerId", channel=ch, **PRESENTATION)
    if emit_dial:
        dialstring = ch.variables.get("DIALEDPEERNUMBER", "")
        pbx.emit("Dial", peer=ch, caller=caller, dialstatus="", forward="", dialstring=dialstring)


def cause_dial_status(cause: int) -> str:
    """Asterisk's ``ast_hangup_cause_to_dial_status``: what a callee's hang-up cause reads as."""
    if cause == 17:
        return "BUSY"
    if cause == 34:
        return "CONGESTION"
    if cause in (3, 20):
        return "CHANUNAVAIL"
    return "NOANSWER"


async def ring_until_answer(out: Outbound, ring_s: float) -> bool:
    ch = out.channel
    if ch.technology == "AudioSocket":
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ch.answered.wait(), ring_s)
    return ch.state == "Up" and not ch.destroyed


def connect_answered(
    pbx: Pbx, caller: Channel, out: Outbound, on_answer: Callable[[], None] | None = None
) -> Bridge:
    """The callee answered: ``Dial ANSWER``, ``on_answer`` (the other callees are cancelled),
    then both join a new basic bridge."""
    ch = out.channel
    pbx.set_state(ch, "Up")
    ch.exten = out.answer_exten
    dialstring = out.dialstring if out.app == "AppQueue" else ""
    if out.app == "AppQueue":
        pbx.emit(
            "ChannelDialplan", channel=ch, dialplan_app=out.app, dialplan_app_data="(Outgoing Line)"
        )
    pbx.emit("Dial", peer=ch, caller=caller, dialstatus="ANSWER", forward="", dialstring=dialstring)
    if on_answer is not None:
        on_answer()
    bridge = bridging.create_bridge(pbx, "mixing", bridge_class="basic")
    if out.app != "AppQueue":
        pbx.emit(
            "ChannelDialplan", channel=ch, dialplan_app=out.app, dialplan_app_data="(Outgoing Line)"
        )
    bridging.add_channels(pbx, bridge, [ch, caller])
    return bridge


async def stay_bridged(pbx: Pbx, caller: Channel, out: Outbound, bridge: Bridge) -> int:
    """Wait for the bridged call to end; returns the cause to hang the caller up with."""
    try:
        await bridge.dissolved.wait()
    except asyncio.CancelledError:
        if not out.channel.destroyed:
            hang_up_outbound(pbx, out.channel)
        raise
    if not out.channel.destroyed:
        hang_up_outbound(pbx, out.channel)
    return out.channel.hangup_cause or 16


def hang_up_outbound(pbx: Pbx, ch: Channel) -> None:
    """The caller's side is gone: the dialled channel is hung up (no hang-up request event)."""
    if ch.peer is not None and not ch.peer.destroyed:
        pbx.hangup_from_device(ch, 16)
        return
    pbx.terminate(ch, 16)
