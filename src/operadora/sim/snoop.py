"""``POST /channels/{id}/snoop``: a ``Snoop/<id>-<n>`` channel in an application that hears
(``spy``) and/or speaks into (``whisper``) another channel, e.g. a supervisor listening in."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from operadora.sim.model import Channel

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx

DIRECTIONS = ("none", "both", "out", "in")


def start_snoop(
    pbx: Pbx,
    target: Channel,
    *,
    app: str,
    app_args: str,
    spy: str,
    whisper: str,
    snoop_id: str | None,
) -> Channel:
    from operadora.sim.pbx import PbxError

    if spy not in DIRECTIONS or whisper not in DIRECTIONS:
        raise PbxError(400, "Invalid direction specified for spy/whisper")
    if spy == "none" and whisper == "none":
        raise PbxError(400, "Snoop requires spy or whisper")
    pbx.check_id_free(snoop_id)
    snoop = pbx.new_channel(
        f"Snoop/{target.id}-{pbx.next_counter()}", "Snoop", channel_id=snoop_id, state="Up"
    )
    pbx.emit("ChannelCreated", channel=snoop)
    taps: list[tuple[list[Callable[[bytes], None]], Callable[[bytes], None]]] = []
    if spy in ("in", "both"):
        taps.append((target.taps, snoop.receive))
    if spy in ("out", "both"):
        taps.append((target.out_taps, snoop.receive))
    for tap_list, tap in taps:
        tap_list.append(tap)
    if whisper in ("out", "both"):
        snoop.device_write = target.write
    elif whisper == "in":
        snoop.device_write = target.receive

    def detach() -> None:
        for tap_list, tap in taps:
            with contextlib.suppress(ValueError):
                tap_list.remove(tap)

    snoop.close_device = detach

    async def follow_target() -> None:
        await target.ended.wait()
        if not snoop.destroyed:
            pbx.hangup_from_device(snoop, 16)

    snoop.spawn(follow_target())
    pbx.enter_stasis(snoop, app, app_args.split(",") if app_args else [])
    return snoop
