"""The AudioSocket TCP server: one :class:`AudioSocketSession` per connection from Asterisk."""

from __future__ import annotations

import asyncio
import logging
import socket

from operadora.audiosocket.native import NativeMediaServer, native_available, start_native_server
from operadora.audiosocket.pacing import Pacer
from operadora.audiosocket.session import AudioSocketSession, SessionRegistry
from operadora.config import MediaSettings
from operadora.media import SessionHandler

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 4096


class MediaServer(SessionRegistry[AudioSocketSession]):
    """A listening AudioSocket server. Create it with :func:`start_media_server`."""

    def __init__(
        self, settings: MediaSettings, handler: SessionHandler, *, reuse_port: bool = False
    ) -> None:
        super().__init__()
        self.settings = settings
        self._reuse_port = reuse_port or settings.workers > 1
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self.pacer = Pacer(self._loop, settings.frame_ms / 1000.0)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def _listen(self) -> None:
        self._server = await self._loop.create_server(
            self._new_session,
            host=self.settings.host,
            port=self.settings.port,
            backlog=LISTEN_BACKLOG,
            reuse_port=self._reuse_port or None,
        )
        sock: socket.socket = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        log.info("AudioSocket server listening on %s:%d", self.settings.host, self.port)

    def _new_session(self) -> AudioSocketSession:
        self.connections_total += 1
        session = AudioSocketSession(
            self.settings, self._handler, self.pacer, self._session_ended, self._session_started
        )
        self._live[session] = session
        return session

    def _session_ended(self, session: AudioSocketSession) -> None:
        self._forget(session, session)

    async def close(self) -> None:
        """Stop listening, hang up every call and wait for the handlers to finish."""
        if self._server is not None:
            self._server.close()
        await self._hang_up_all()
        self.pacer.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


AnyMediaServer = MediaServer | NativeMediaServer
"""What :func:`start_media_server` returns: the same interface either way."""


async def start_media_server(
    settings: MediaSettings, handler: SessionHandler, *, reuse_port: bool = False
) -> AnyMediaServer:
    """Listen on ``settings.host:settings.port`` (port 0 picks a free one; see ``.port``).

    ``settings.engine`` picks the server: ``native`` (the C engine of
    :mod:`operadora.audiosocket.native`), ``asyncio`` (:class:`MediaServer`, everything on the
    event loop) or ``auto`` (native where it was built, else asyncio). Both behave the same.

    With ``reuse_port`` (or ``settings.workers > 1``) the socket is opened with SO_REUSEPORT so
    several worker processes can share the port and the kernel spreads connections over them.
    """
    if settings.engine == "native" or (settings.engine == "auto" and native_available()):
        return await start_native_server(settings, handler, reuse_port=reuse_port)
    server = MediaServer(settings, handler, reuse_port=reuse_port)
    await server._listen()
    return server
