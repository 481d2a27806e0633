"""Runs a channel through the dialplan: one ``ChannelDialplan`` event per step, like Asterisk's
PBX thread, until an application hangs up or the extension ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from operadora.sim.dialplan.subst import substitute
from operadora.sim.model import PRESENTATION, Channel

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Goto:
    context: str
    exten: str
    priority: int


AppResult = int | Goto


def variable_lookup(pbx: Pbx, ch: Channel) -> dict[str, str]:
    return {
        "CHANNEL": ch.name,
        "CHANNEL(name)": ch.name,
        "CHANNEL(language)": ch.language,
        "CHANNEL(state)": ch.state,
        "CHANNEL(channeltype)": ch.technology,
        "CHANNEL(uniqueid)": ch.id,
        "UNIQUEID": ch.id,
        "EXTEN": ch.exten,
        "CONTEXT": ch.context,
        "PRIORITY": str(ch.priority),
        "CALLERID(num)": ch.caller.number,
        "CALLERID(name)": ch.caller.name,
        "CONNECTEDLINE(num)": ch.connected.number,
        "CONNECTEDLINE(name)": ch.connected.name,
    }


def lookup_for(pbx: Pbx, ch: Channel) -> Callable[[str], str | None]:
    def lookup(name: str) -> str | None:
        if name in ch.variables:
            return ch.variables[name]
        builtin = variable_lookup(pbx, ch).get(name)
        if builtin is not None:
            return builtin
        if name in pbx.config.globals:
            return pbx.config.globals[name]
        return pbx.config.dialplan.globals.get(name)

    return lookup


def expand(pbx: Pbx, ch: Channel, text: str) -> str:
    return substitute(text, lookup_for(pbx, ch))


def resolve_goto(pbx: Pbx, ch: Channel, context: str, exten: str, target: str) -> Goto | None:
    """``prio`` | ``exten,prio`` | ``context,exten,prio`` (priority may be a label)."""
    parts = [p.strip() for p in target.split(",")]
    if len(parts) == 1:
        ctx, ext, prio = context, exten, parts[0]
    elif len(parts) == 2:
        ctx, ext, prio = context, parts[0], parts[1]
    else:
        ctx, ext, prio = parts[0], parts[1], parts[2]
    try:
        return Goto(ctx, ext, int(prio))
    except ValueError:
        found = pbx.config.dialplan.label(ctx, ext, prio)
        return Goto(ctx, ext, found) if found is not None else None


async def run_dialplan(pbx: Pbx, ch: Channel, context: str, exten: str, priority: int) -> None:
    from operadora.sim.dialplan.apps import APPS

    plan = pbx.config.dialplan
    try:
        while not ch.hanging_up and not ch.destroyed:
            step = plan.step(context, exten, priority)
            if step is None:
                if not plan.exists(context, exten, 1) and priority == 1:
                    log.warning("no extension %s@%s for %s", exten, context, ch.name)
                pbx.terminate(ch, ch.hangup_cause or 16)
                return
            ch.context, ch.exten, ch.priority = context, exten, priority
            data = expand(pbx, ch, step.data)
            ch.app_name, ch.app_data = step.app, data
            caller_changed = pbx.apply_pending_caller(ch)
            pbx.emit("ChannelDialplan", channel=ch, dialplan_app=step.app, dialplan_app_data=data)
            if caller_changed:
                pbx.emit("ChannelCallerId", channel=ch, **PRESENTATION)
            app = APPS.get(step.app.lower())
            if app is None:
                log.warning("dialplan application %s is not simulated; hanging up", step.app)
                pbx.terminate(ch, 0)
                return
            result = await app(pbx, ch, data)
            if ch.destroyed or ch.terminating:
                return
            if isinstance(result, Goto):
                context, exten, priority = result.context, result.exten, result.priority
                continue
            if result < 0:
                pbx.terminate(ch, ch.hangup_cause)
                return
            priority += 1
    except asyncio.CancelledError:
        return


def start_dialplan(pbx: Pbx, ch: Channel, context: str, exten: str, priority: int) -> None:
    ch.spawn(run_dialplan(pbx, ch, context, exten, priority))
