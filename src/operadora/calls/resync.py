"""After the events WebSocket comes back: reconcile our calls with what Asterisk still has."""

from __future__ import annotations

import logging

from operadora.ari.client import AriClient
from operadora.ari.errors import AriError, AriNotFound
from operadora.calls.services import CallService
from operadora.calls.state import CallState

log = logging.getLogger(__name__)


async def resync(service: CallService, client: AriClient) -> tuple[int, int]:
    """Close out calls whose caller channel vanished, keep the others, clean our leftovers.

    Returns (calls kept, calls closed).
    """
    try:
        channels = {channel.id for channel in await client.list_channels()}
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
    log.info("ARI %s: resynchronised: %d call(s) kept, %d closed", client.name, kept, closed)
    return kept, closed
