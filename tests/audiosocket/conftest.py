"""Fixtures for the media server tests: a real server on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from operadora.audiosocket.server import MediaServer, start_media_server
from operadora.config import MediaSettings
from operadora.media import SessionHandler


@asynccontextmanager
async def _media_server(handler: SessionHandler, **overrides: Any) -> AsyncIterator[MediaServer]:
    settings = MediaSettings(port=0, **overrides)
    server = await start_media_server(settings, handler)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def media_server() -> Callable[..., Any]:
    """``async with media_server(handler, **settings) as server``: a real server on port 0."""
    return _media_server
