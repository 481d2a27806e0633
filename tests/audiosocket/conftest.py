"""Fixtures for the media server tests: a real server on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from operadora.audiosocket.server import AnyMediaServer, start_media_server
from operadora.config import MediaSettings
from operadora.media import SessionHandler

ENGINES = ["asyncio", "native"]


def _media_server(engine: str) -> Callable[..., Any]:
    @asynccontextmanager
    async def serve(handler: SessionHandler, **overrides: Any) -> AsyncIterator[AnyMediaServer]:
        settings = MediaSettings(port=0, engine=engine, **overrides)
        server = await start_media_server(settings, handler)
        try:
            yield server
        finally:
            await server.close()

    return serve


@pytest.fixture(params=ENGINES)
def media_server(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``async with media_server(handler, **settings) as server``: a real server on port 0,
    once on each engine (the C one must be built: it is, wherever ``make test`` runs)."""
    return _media_server(request.param)
