"""Ready-made session handlers for running the media server without a voice pipeline."""

from __future__ import annotations

import logging

from operadora.media import AudioIn, DtmfIn, MediaSession

log = logging.getLogger(__name__)


async def echo_handler(session: MediaSession) -> None:
    """Play the caller's audio back to them (paced like any agent audio)."""
    async for item in session.inbound():
        if isinstance(item, AudioIn):
            session.play(item.pcm, item.sample_rate)
        elif isinstance(item, DtmfIn):
            log.info("call=%s DTMF %s", session.call_uuid, item.digit)


async def listen_handler(session: MediaSession) -> None:
    """Consume the caller's audio and log DTMF; the caller hears silence filler."""
    async for item in session.inbound():
        if isinstance(item, DtmfIn):
            log.info("call=%s DTMF %s", session.call_uuid, item.digit)


HANDLERS = {"echo": echo_handler, "listen": listen_handler}
