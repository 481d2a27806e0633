"""Fixtures: the API running over a SQLite store (see ``harness.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.harness import Running, start_running, stop_running


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    opened, server, task = await start_running(tmp_path)
    try:
        yield opened
    finally:
        await stop_running(opened, server, task)
