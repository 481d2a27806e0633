"""``Background()`` and ``WaitExten()``: the menu applications, with Asterisk 22's digit rules.

A digit pressed while ``Background`` plays stops the prompt; a digit within ``WaitExten``'s
time ends the wait. Then, like the PBX core (``__ast_pbx_run``), more digits are read while
they may still lead to a longer extension (``TIMEOUT(digit)`` apart, 5 s by default), and the
call goes to that extension at priority 1; to ``i`` (``INVALID_EXTEN`` set) when none matches,
or hangs up without ``i``.
``WaitExten`` with no digit at all continues at the next priority when there is one, else
goes to ``t``, else hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from operadora.sim import playback
from operadora.sim.dialplan.runner import AppResult, Goto
from operadora.sim.model import Channel

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx

log = logging.getLogger(__name__)

DIGIT_TIMEOUT_S = 5.0  # the PBX core's digit timeout (TIMEOUT(digit)) between digits


class DigitReader:
    """Collects the digits a channel reads while a menu application listens."""

    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        self.digits: asyncio.Queue[str] = asyncio.Queue()

    def __enter__(self) -> DigitReader:
        self.ch.dtmf_consumer = lambda digit, _ms: self.digits.put_nowait(digit)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.ch.dtmf_consumer = None

    async def next(self, timeout_s: float) -> str | None:
        try:
            return await asyncio.wait_for(self.digits.get(), timeout_s)
        except TimeoutError:
            return None


async def select_extension(pbx: Pbx, ch: Channel, reader: DigitReader, first: str) -> AppResult:
    """The caller dialled ``first`` (and maybe more): where the call goes now."""
    plan = pbx.config.dialplan
    dialled = first
    while plan.can_match_more(ch.context, dialled):
        digit = await reader.next(digit_timeout(ch))
        if digit is None:
            break
        dialled += digit
    if plan.exists(ch.context, dialled):
        return Goto(ch.context, dialled, 1)
    if plan.exists(ch.context, "i"):
        log.info("invalid extension %r in %s on %s", dialled, ch.context, ch.name)
        pbx.set_variable(ch, "INVALID_EXTEN", dialled)
        return Goto(ch.context, "i", 1)
    log.warning("invalid extension %r in %s and no 'i' extension", dialled, ch.context)
    return -1


def digit_timeout(ch: Channel) -> float:
    """Seconds between digits: ``Set(TIMEOUT(digit)=...)`` or Asterisk's default 5 s."""
    for name, value in ch.variables.items():
        if name.upper() == "TIMEOUT(DIGIT)":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return DIGIT_TIMEOUT_S


def _options(data: str) -> tuple[list[str], str]:
    parts = [p.strip() for p in data.split(",")]
    files = [f for f in (parts[0] if parts else "").split("&") if f]
    return files, parts[1] if len(parts) > 1 else ""


async def app_background(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    """``Background(file[&file...][,options])``: play, listening for a digit."""
    files, options = _options(data)
    if ch.state != "Up":
        if "s" in options:  # skip: do nothing on an unanswered channel
            return 0
        if "n" not in options:
            pbx.answer(ch)
    with DigitReader(ch) as reader:
        digit = await _play_until_digit(pbx, ch, files, reader)
        if not ch.destroyed:
            pbx.set_variable(ch, "BACKGROUNDSTATUS", "SUCCESS")
        if digit is None:
            return 0
        return await select_extension(pbx, ch, reader, digit)


async def _play_until_digit(
    pbx: Pbx, ch: Channel, files: list[str], reader: DigitReader
) -> str | None:
    async def play() -> None:
        for name in files:
            await playback.paced(playback.media_frames(pbx, f"sound:{name}"), ch.write)

    ch.playing += 1
    prompt = asyncio.ensure_future(play())
    pressed = asyncio.ensure_future(reader.digits.get())
    try:
        await asyncio.wait({prompt, pressed}, return_when=asyncio.FIRST_COMPLETED)
        return pressed.result() if pressed.done() else None
    finally:
        ch.playing -= 1
        for task in (prompt, pressed):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def app_waitexten(pbx: Pbx, ch: Channel, data: str) -> AppResult:
    """``WaitExten([seconds][,options])``: wait for the caller to dial an extension."""
    seconds_text = data.split(",")[0].strip()
    try:
        seconds = float(seconds_text) if seconds_text else 0.0
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        seconds = 10.0  # the channel's response timeout when none is given
    with DigitReader(ch) as reader:
        digit = await reader.next(seconds)
        if digit is not None:
            return await select_extension(pbx, ch, reader, digit)
    plan = pbx.config.dialplan
    if plan.exists(ch.context, ch.exten, ch.priority + 1):
        return 0
    if plan.exists(ch.context, "t"):
        return Goto(ch.context, "t", 1)
    log.warning("WaitExten timed out on %s and there is no 't' in %s", ch.name, ch.context)
    return -1
