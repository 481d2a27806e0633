"""The dialplan applications the simulator runs, with Asterisk 22's observable behaviour.

Each application is ``async (pbx, channel, data) -> int | Goto``: 0 continues at the next
priority, a negative value hangs the channel up (cause ``channel.hangup_cause``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from operadora.sim import playback
from operadora.sim.audiosocket_link import AudioSocketLink
from operadora.sim.dialplan import dial, ivr
from operadora.sim.dialplan.expr import truth
from operadora.sim.dialplan.queues import QueueConfig
from operadora.sim.dialplan.runner import AppResult, Goto, resolve_goto
from operadora.sim.model import Channel
from operadora.sim.sounds import tone_frames

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx

log = logging.getLogger(__name__)

App = Callable[["Pbx", Channel, str], Awaitable[AppResult]]
ANSWER_MEDIA_WAIT_S = 0.5  # Answer() waits up to 500 ms for the first voice frame
AUDIOSOCKET_TIMEOUT_S = 2.0  # app_audiosocket: no activity either way for 2000 ms


def _args(data: str) -> list[str]:
    return [a.strip() for a in data.split(",")] if data else []


async def _forever() -> None:
    await asyncio.Event().wait()


async def app_noop(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    return 0


async def app_answer(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    if ch.state == "Up":
        return 0
    ch.voice.clear()
    pbx.answer(ch)
    ch.defer_frames = True
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ch.voice.wait(), ANSWER_MEDIA_WAIT_S)
    finally:
        ch.defer_frames = False
    return 0


async def app_wait(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    seconds = _float(data, 0.0)
    ch.defer_frames = True
    try:
        await asyncio.sleep(seconds)
    finally:
        ch.defer_frames = False
    return 0


def _float(text: str, default: float) -> float:
    try:
        return float(text.split(",")[0]) if text.strip() else default
    except ValueError:
        return default


# Hangup(NAME): the cause names ast_str2cause knows (the common ones)
HANGUP_CAUSES = {
    "UNALLOCATED": 1,
    "NO_ROUTE_DESTINATION": 3,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "ANSWERED_ELSEWHERE": 26,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "INTERWORKING": 127,
}


async def app_hangup(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    """``Hangup([cause])``: a number or a name; without one (or an invalid one) the cause the
    channel already has (a failed ``Dial()`` copies the callee's), else 16."""
    text = data.strip()
    cause = int(text) if text.isdigit() else HANGUP_CAUSES.get(text.upper(), 0)
    ch.hangup_cause = cause or ch.hangup_cause or 16
    return -1


async def app_busy(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    return await _refuse(pbx, ch, data, 17)


async def app_congestion(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    return await _refuse(pbx, ch, data, 34)


async def _refuse(pbx: Pbx, ch: Channel, data: str, cause: int) -> AppResult:
    """``Busy``/``Congestion([timeout])``: an unanswered channel turns ``Busy`` and takes the
    cause (17 / 34); then it waits ``timeout`` seconds, or without one until the caller hangs
    up, and hangs up."""
    if ch.state != "Up":
        ch.hangup_cause = cause
        pbx.set_state(ch, "Busy")
    seconds = _float(data, -1.0)
    if seconds >= 0:
        await asyncio.sleep(seconds)
    else:
        await _forever()
    ch.hangup_cause = ch.hangup_cause or 16
    return -1


async def app_ringing(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    pbx.ring(ch)
    return 0


async def app_playback(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    args = _args(data)
    options = args[1] if len(args) > 1 else ""
    if ch.state != "Up" and "noanswer" not in options:
        pbx.answer(ch)
    status = "SUCCESS"
    ch.playing += 1
    try:
        for name in (args[0] if args else "").split("&"):
            if name:
                await playback.paced(playback.media_frames(pbx, f"sound:{name}"), ch.write)
    except asyncio.CancelledError:
        status = "FAILED"
        raise
    finally:
        ch.playing -= 1
        if not ch.destroyed:
            pbx.set_variable(ch, "PLAYBACKSTATUS", status)
    return 0


async def app_echo(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    ch.consumer = ch.write
    ch.dtmf_consumer = lambda digit, ms: pbx.send_dtmf(ch, digit, ms)
    try:
        await _forever()
    finally:
        ch.consumer = None
        ch.dtmf_consumer = None
    return 0


async def app_milliwatt(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    frames = tone_frames(1.0, freq=1004.0, amplitude=8000)
    while True:
        await playback.paced(frames, ch.write)


async def app_musiconhold(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    args = _args(data)
    playback.start_moh(ch)
    try:
        duration = _float(args[1], 0.0) if len(args) > 1 else 0.0
        if duration > 0:
            await asyncio.sleep(duration)
        else:
            await _forever()
    finally:
        playback.stop_moh(ch)
    return 0


async def app_set(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    name, sep, value = data.partition("=")
    if not sep:
        return 0
    name = name.strip()
    if name.endswith(")"):
        write_function(ch, name, value)
        return 0
    pbx.set_variable(ch, name.lstrip("_"), value)
    return 0


def write_function(ch: Channel, name: str, value: str) -> None:
    """``Set(FUNC(args)=value)``: a function write, which emits no ``ChannelVarset``."""
    upper = name.upper()
    if upper == "CHANNEL(LANGUAGE)":
        ch.language = value
    elif upper.startswith("CALLERID(NUM"):
        ch.caller.number = value
    elif upper.startswith("CALLERID(NAME"):
        ch.caller.name = value
    else:  # e.g. PJSIP_TRANSFER_HANDLING()=ari-only, which transfer.py reads
        ch.variables[name] = value


async def app_execif(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    """``ExecIf(expression?app(args)[:app(args)])``: run one application, or the other."""
    condition, sep, branches = data.partition("?")
    if not sep:
        log.warning("ExecIf requires an argument: expression?app(args)[:app(args)]")
        return -1
    when_true, when_false = _split_branches(branches)
    chosen = when_true if truth(condition) else when_false
    if not chosen.strip():
        return 0
    match = re.match(r"^\s*([A-Za-z0-9_]+)\s*(?:\((.*)\))?\s*$", chosen, re.S)
    app = APPS.get(match.group(1).lower()) if match else None
    if match is None or app is None:
        log.warning("ExecIf: application %r is not simulated", chosen)
        return -1
    saved = ch.app_name, ch.app_data
    ch.app_name, ch.app_data = match.group(1), match.group(2) or ""
    pbx.emit("ChannelDialplan", channel=ch, dialplan_app=ch.app_name, dialplan_app_data=ch.app_data)
    try:
        return await app(pbx, ch, ch.app_data)
    finally:
        ch.app_name, ch.app_data = saved


def _split_branches(text: str) -> tuple[str, str]:
    """``a(x:y):b(z)`` -> ``("a(x:y)", "b(z)")``: the ``:`` outside parentheses."""
    depth = 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == ":" and depth == 0:
            return text[:i], text[i + 1 :]
    return text, ""


async def app_goto(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    target = resolve_goto(pbx, ch, ch.context, ch.exten, data)
    if target is None:
        return -1
    return target


async def app_stasis(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    args = _args(data)
    if not args or not pbx.hub.registered(args[0]):
        log.warning("Stasis: application %s is not registered", args[0] if args else "")
        pbx.set_variable(ch, "STASISSTATUS", "FAILED")
        return 0
    ch.stasis_done = asyncio.get_running_loop().create_future()
    ch.continue_to = None
    pbx.enter_stasis(ch, args[0], args[1:])
    await ch.stasis_done
    if ch.continue_to is not None:
        context, exten, priority = ch.continue_to
        ch.continue_to = None
        return Goto(context, exten, priority)
    return -1


async def app_audiosocket(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    args = _args(data)
    if len(args) < 2:
        log.error("AudioSocket requires UUID,host:port")
        return -1
    try:
        uuid.UUID(args[0])
        link = await AudioSocketLink.connect(args[1], args[0], 8000)
    except (ValueError, OSError, TimeoutError) as exc:
        log.error("AudioSocket: cannot connect to %s: %s", args[1], exc)
        return -1
    last = [time.monotonic()]

    def from_channel(frame: bytes) -> None:
        last[0] = time.monotonic()
        link.send_audio(frame)

    def from_server(frame: bytes) -> None:
        last[0] = time.monotonic()
        ch.write(frame)

    ch.consumer = from_channel
    ch.dtmf_consumer = lambda digit, _ms: link.send_dtmf(digit)
    link.on_audio = from_server
    link.start()
    try:
        while not link.closed.is_set():
            remaining = last[0] + AUDIOSOCKET_TIMEOUT_S - time.monotonic()
            if remaining <= 0:
                log.error("AudioSocket: reached timeout after 2000 ms of no activity")
                link.close("asterisk")
                ch.hangup_cause = 0
                return -1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.closed.wait(), remaining)
        return 0
    finally:
        ch.consumer = None
        ch.dtmf_consumer = None
        link.close("asterisk")


async def app_dial(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    args = _args(data)
    if not args or not args[0]:
        return -1
    timeout = _float(args[1], 0.0) if len(args) > 1 and args[1] else 0.0
    options = args[2] if len(args) > 2 else ""
    for name in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS"):
        pbx.set_variable(ch, name, "")
    outs = []
    for interface in args[0].split("&"):
        out = await dial.create_outbound(pbx, ch, interface, "AppDial")
        if out is not None:
            outs.append(out)
    if not outs:
        pbx.set_variable(ch, "DIALSTATUS", "CHANUNAVAIL")
        return 0
    failed: list[int] = []  # causes of the callees that ended without answering
    for out in outs:
        out.channel.on_unanswered_end = _callee_failed(pbx, ch, out, failed)
    try:
        answered = await _first_answer(outs, timeout or 3600.0)
    except asyncio.CancelledError:  # the caller hung up while they rang
        _end_ringing(pbx, ch, outs, None, "CANCEL", 16)
        raise
    if answered is None:
        ringing = any(not o.channel.destroyed for o in outs)
        _end_ringing(pbx, ch, outs, None, "NOANSWER", 16)
        status = "NOANSWER" if ringing else dial_status(failed)
        pbx.set_variable(ch, "DIALSTATUS", status)
        return 0
    for out in outs:
        out.channel.on_unanswered_end = None
    if ch.state != "Up":
        pbx.answer(ch)
    pbx.set_variable(ch, "DIALSTATUS", "ANSWER")
    bridge = dial.connect_answered(
        pbx, ch, answered, lambda: _end_ringing(pbx, ch, outs, answered, "CANCEL", 26)
    )
    cause = await dial.stay_bridged(pbx, ch, answered, bridge)
    if "g" in options:
        return 0
    ch.hangup_cause = cause
    return -1


def _callee_failed(
    pbx: Pbx, caller: Channel, out: dial.Outbound, failed: list[int]
) -> Callable[[int], None]:
    """app_dial reading a hang-up from a ringing callee: the caller takes its cause, and a
    ``Dial`` event reports it (``BUSY`` for 17, ...), before the callee is destroyed."""

    def report(cause: int) -> None:
        failed.append(cause)
        if not caller.destroyed:
            caller.hangup_cause = cause
        pbx.emit(
            "Dial",
            peer=out.channel,
            caller=caller,
            dialstatus=dial.cause_dial_status(cause),
            forward="",
            dialstring=out.dialstring,
        )

    return report


def _end_ringing(
    pbx: Pbx,
    caller: Channel,
    outs: list[dial.Outbound],
    answered: dial.Outbound | None,
    status: str,
    cause: int,
) -> None:
    """``Dial`` with ``status`` for every callee still ringing, then hang them up."""
    ringing = [o for o in outs if o is not answered and not o.channel.destroyed]
    for out in outs:
        out.channel.on_unanswered_end = None
    for out in ringing:
        pbx.emit(
            "Dial",
            peer=out.channel,
            caller=caller,
            dialstatus=status,
            forward="",
            dialstring=out.dialstring,
        )
    for out in ringing:
        pbx.terminate(out.channel, cause)


def dial_status(causes: list[int]) -> str:
    """DIALSTATUS once every callee ended without answering (app_dial's ``handle_cause``):
    BUSY, CONGESTION or CHANUNAVAIL when each failed for such a reason (busy wins over
    congestion, congestion over unavailable); NOANSWER when one just hung up (16, 19)."""
    busy = causes.count(17)
    congestion = causes.count(34)
    nochan = sum(1 for c in causes if c not in (16, 17, 19, 34))
    if not causes or busy + congestion + nochan != len(causes):
        return "NOANSWER"
    if busy:
        return "BUSY"
    if congestion:
        return "CONGESTION"
    return "CHANUNAVAIL"


async def _first_answer(outs: list[dial.Outbound], ring_s: float) -> dial.Outbound | None:
    tasks = {asyncio.ensure_future(dial.ring_until_answer(o, ring_s)): o for o in outs}
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.result():
                    return tasks[task]
        return None
    finally:
        for task in tasks:
            task.cancel()


async def app_queue(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    args = _args(data)
    queue = pbx.config.queues.get(args[0] if args else "")
    if queue is None:
        pbx.set_variable(ch, "QUEUESTATUS", "UNKNOWN")
        return 0
    timeout = _float(args[4], 0.0) if len(args) > 4 and args[4] else 0.0
    for name in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS"):
        pbx.set_variable(ch, name, "")
    pbx.set_variable(ch, "QUEUEWAIT", "")
    pbx.set_variable(ch, "QUEUEWAIT_MS", "")
    started = time.monotonic()
    deadline = started + timeout if timeout else None
    playback.start_moh(ch)  # the caller hears the queue's music while members ring
    try:
        return await _ring_queue(pbx, ch, queue, started, deadline)
    finally:
        playback.stop_moh(ch)


async def _ring_queue(
    pbx: Pbx, ch: Channel, queue: QueueConfig, started: float, deadline: float | None
) -> AppResult:
    while deadline is None or time.monotonic() < deadline:
        outs = []
        for member in queue.members:
            out = await dial.create_outbound(pbx, ch, member.interface, "AppQueue")
            if out is not None:
                outs.append(out)
        ring_for = queue.timeout
        if deadline is not None:
            ring_for = min(ring_for, max(0.0, deadline - time.monotonic()))
        answered = await _first_answer(outs, ring_for) if outs else None
        for out in outs:
            if out is not answered and not out.channel.destroyed:
                pbx.terminate(out.channel, 26)
        if answered is not None:
            playback.stop_moh(ch)
            waited = time.monotonic() - started
            pbx.set_variable(ch, "QUEUEPOSITION", "1")
            pbx.set_variable(ch, "QUEUEWAIT", str(int(waited)))
            pbx.set_variable(ch, "QUEUEWAIT_MS", str(int(waited * 1000)))
            bridge = dial.connect_answered(pbx, ch, answered)
            ch.hangup_cause = await dial.stay_bridged(pbx, ch, answered, bridge)
            return -1
        await asyncio.sleep(queue.retry if outs else 1.0)
    pbx.set_variable(ch, "QUEUESTATUS", "TIMEOUT")
    return 0


APPS: dict[str, App] = {
    "noop": app_noop,
    "answer": app_answer,
    "wait": app_wait,
    "hangup": app_hangup,
    "busy": app_busy,
    "congestion": app_congestion,
    "ringing": app_ringing,
    "progress": app_noop,
    "playback": app_playback,
    "background": ivr.app_background,
    "waitexten": ivr.app_waitexten,
    "execif": app_execif,
    "echo": app_echo,
    "milliwatt": app_milliwatt,
    "musiconhold": app_musiconhold,
    "set": app_set,
    "goto": app_goto,
    "stasis": app_stasis,
    "audiosocket": app_audiosocket,
    "dial": app_dial,
    "queue": app_queue,
}
