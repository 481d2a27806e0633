"""After the events WebSocket comes back: reconcile our calls with what Asterisk still has."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from operadora.ari.client import AriClient
from operadora.ari.errors import AriError, AriNotFound
from operadora.ari.events import AriEvent, StasisStart
from operadora.ari.models import Channel
from operadora.calls.services import BRIDGE_NAME_PREFIX, CallService
from operadora.calls.state import CallState

log = logging.getLogger(__name__)


async def resync(
    service: CallService,
    client: AriClient,
    route: Callable[[AriEvent], None] | None = None,
) -> tuple[int, int]:
    """Close out calls whose caller channel vanished, keep the others, clean our leftovers.

    With ``route`` (one engine per Asterisk), callers that entered our Stasis application
    while the events stream was down, whose StasisStart was lost with the connection, are
    taken as new calls. Returns (calls kept, calls closed).
    """
    try:
        listed = await client.list_channels()
        channels = {channel.id for channel in listed}
        bridges = {bridge.id for bridge in await client.list_bridges()}
    except AriError as exc:
        log.warning("ARI %s: resync failed: %s", client.name, exc)
        return 0, 0
    kept = closed = 0
    for call in service.live_calls(client.name):
        if call.channel_id not in channels:
            await service.vanished(call)
            closed += 1
            continue
        kept += 1
        if call.state is CallState.ACTIVE and call.media_channel_id not in channels:
            await service.media_leg_gone(call)
    for bridge_id in bridges:
        if service.has_ended(client.name, bridge_id + "-media"):
            try:
                await client.destroy_bridge(bridge_id)
            except AriNotFound:
                pass
            except AriError as exc:
                log.warning(
                    "ARI %s: cannot remove leftover bridge %s: %s", client.name, bridge_id, exc
                )
    adopted = 0
    if route is not None:
        adopted = await adopt_waiting(service, client, route, listed, leftovers="keep")
    log.info(
        "ARI %s: resynchronised: %d call(s) kept, %d closed, %d taken that arrived unseen",
        client.name,
        kept,
        closed,
        adopted,
    )
    return kept, closed


async def adopt_waiting(
    service: CallService,
    client: AriClient,
    route: Callable[[AriEvent], None],
    channels: Iterable[Channel],
    leftovers: Literal["hang up", "keep"],
) -> int:
    """Take every caller waiting in our Stasis application that no call of ours knows as a new
    call (``route`` gets a StasisStart for it, as if it had just arrived).

    Channels of live or ended calls are left alone (media legs included). An AudioSocket
    channel nobody owns is hung up with ``leftovers="hang up"`` (a previous run's media leg)
    and kept with ``"keep"`` (after a reconnect it may be a leg still being set up).
    Returns how many calls were taken.
    """
    adopted = 0
    for channel in channels:
        if not in_application(channel, client.app):
            continue
        if (
            service.call_for_channel(client.name, channel.id) is not None
            or service.is_media_channel(client.name, channel.id)
            or service.has_ended(client.name, channel.id)
        ):
            continue
        if channel.name.startswith("AudioSocket/"):
            if leftovers == "hang up":
                await _quietly(f"hang up {channel.id}", client.hangup(channel.id))
            continue
        before = len(service.calls)
        args = channel.dialplan.app_data.split(",")[1:]
        route(StasisStart(type="StasisStart", application=client.app, args=args, channel=channel))
        adopted += len(service.calls) - before
    return adopted


def in_application(channel: Channel, app: str) -> bool:
    """Whether a listed channel sits in ``Stasis(app,...)``."""
    plan = channel.dialplan
    return plan.app_name == "Stasis" and plan.app_data.split(",", 1)[0] == app


async def _quietly(what: str, request: Awaitable[None]) -> None:
    try:
        await request
    except AriNotFound:
        pass
    except AriError as exc:
        log.warning("recovery: %s: %s", what, exc)


async def recover(
    service: CallService, client: AriClient, route: Callable[[AriEvent], None]
) -> tuple[int, int]:
    """At the first connection: take over what a previous run of this engine left behind.

    Bridges it created (named ``operadora-<uuid>``) are destroyed with their AudioSocket
    legs, and every caller still waiting in our Stasis application is taken as a new call
    (``route`` gets a StasisStart for it, as if it had just arrived). Only for a single
    engine per Asterisk: with several instances these would be another instance's calls.
    Returns (leftover bridges removed, callers taken over).
    """
    try:
        channels = await client.list_channels()
        bridges = await client.list_bridges()
    except AriError as exc:
        log.warning("ARI %s: recovery skipped: %s", client.name, exc)
        return 0, 0
    by_id = {channel.id: channel for channel in channels}
    owned = {call.bridge_id for call in service.live_calls(client.name)}
    removed = 0
    for bridge in bridges:
        if not bridge.name.startswith(BRIDGE_NAME_PREFIX) or bridge.id in owned:
            continue
        for channel_id in bridge.channels:
            channel = by_id.get(channel_id)
            if channel is not None and channel.name.startswith("AudioSocket/"):
                await _quietly(f"hang up {channel_id}", client.hangup(channel_id))
                by_id.pop(channel_id)
        await _quietly(f"destroy bridge {bridge.id}", client.destroy_bridge(bridge.id))
        removed += 1
    adopted = await adopt_waiting(service, client, route, by_id.values(), leftovers="hang up")
    if removed or adopted:
        log.warning(
            "ARI %s: took over from a previous run: %d leftover bridge(s) removed, "
            "%d waiting caller(s) answered again",
            client.name,
            removed,
            adopted,
        )
    return removed, adopted
