"""Transfers a phone makes by itself (SIP REFER) from inside a Stasis bridge.

Default (core) handling, trace e3: ``ChannelUnhold`` on the transferer, a new
``Local/<exten>@<context>`` pair whose ``;1`` half enters the application with empty ``args``
and ``replace_channel`` = the transferer, takes the transferer's place in the bridge, then
``BridgeBlindTransfer``. The transferer stays in Stasis until the phone hangs up.

With ``PJSIP_TRANSFER_HANDLING()=ari-only`` on the channel, trace e4: only ``ChannelTransfer``
events (``refer_to``, ``referred_by``); the application carries the transfer out and reports
``POST /channels/{id}/transfer_progress``, each report another ``ChannelTransfer`` with ``state``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from operadora.sim import bridging
from operadora.sim.dialplan.runner import start_dialplan
from operadora.sim.model import Channel, Json

if TYPE_CHECKING:
    from operadora.sim.pbx import Pbx

ARI_ONLY_VARIABLE = "PJSIP_TRANSFER_HANDLING()"
PROGRESS_STATES = (
    "channel_progress",
    "channel_answered",
    "channel_unavailable",
    "channel_declined",
)


def referred_by(ch: Channel) -> Json:
    out: Json = {"source_channel": ch.json()}
    bridge = ch.bridge
    if bridge is not None:
        others = [c for c in bridge.channels if c is not ch]
        if len(others) == 1:
            out["connected_channel"] = others[0].json()
        out["bridge"] = bridge.json()
    return out


def refer(pbx: Pbx, ch: Channel, destination: str, context: str | None = None) -> None:
    """The phone on ``ch`` sent ``REFER Refer-To: <sip:destination@...>``."""
    ch.refer_to = destination
    if ch.variables.get(ARI_ONLY_VARIABLE, "").lower() == "ari-only":
        _transfer_event(pbx, ch)
        return
    _core_blind_transfer(pbx, ch, destination, context or ch.context)


def progress(pbx: Pbx, ch: Channel, state: str) -> None:
    _transfer_event(pbx, ch, state=state)
    if ch.device_transfer is not None:
        ch.device_transfer(state)


def _transfer_event(pbx: Pbx, ch: Channel, **extra: Any) -> None:
    pbx.emit(
        "ChannelTransfer",
        refer_to={"requested_destination": {"destination": ch.refer_to or ""}},
        referred_by=referred_by(ch),
        _app=ch.stasis_app,
        **extra,
    )


def _core_blind_transfer(pbx: Pbx, ch: Channel, destination: str, context: str) -> None:
    bridge = ch.bridge
    if ch.on_hold:
        ch.on_hold = False
    pbx.emit("ChannelUnhold", channel=ch)
    app = ch.stasis_app
    if bridge is None or app is None:
        if ch.device_transfer is not None:
            ch.device_transfer("channel_unavailable")
        return
    others = [c for c in bridge.channels if c is not ch]
    before = bridge.json()  # BridgeBlindTransfer shows the bridge as it was (trace e3)
    one, two = pbx.create_local_pair(f"{destination}@{context}")
    for half in (one, two):
        half.variables.update(SIPTRANSFER="yes", SIPREFERRINGCONTEXT=context)

    def answered() -> None:
        pbx.emit("Dial", peer=one, dialstatus="ANSWER", forward="", dialstring="")

    one.on_answer = answered
    start_dialplan(pbx, two, context, destination, 1)
    one.app_name, one.app_data = "Stasis", app
    pbx.emit("ChannelDialplan", channel=one, dialplan_app="Stasis", dialplan_app_data=app)
    pbx.enter_stasis(one, app, [], replace_channel=ch)
    bridging.remove_channel(pbx, bridge, ch)
    bridging.add_channels(pbx, bridge, [one])
    pbx.emit(
        "BridgeBlindTransfer",
        channel=ch,
        bridge=before,
        exten=destination,
        context=context,
        result="Success",
        is_external=True,
        **({"transferee": others[0]} if len(others) == 1 else {}),
        replace_channel=one,
    )
    if ch.device_transfer is not None:
        ch.device_transfer("channel_answered")
