"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from api.harness import Running, start_running, stop_running
from support import require

CHROMIUM = Path("/usr/bin/chromium")
EXPECT_TIMEOUT_MS = 10_000  # a loaded CI machine is slow to render; correctness, not speed
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    opened, server, task = await start_running(tmp_path)
    try:
        yield opened
    finally:
        await stop_running(opened, server, task)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require(CHROMIUM.exists(), "Chromium at /usr/bin/chromium (scripts/system-deps.sh)")  # noqa: ASYNC240
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
