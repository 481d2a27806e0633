"""The dashboard watching a call placed through the PBX simulator: the engine (ARI over
HTTP/WebSocket, real AudioSocket) answers it, the agent talks, the caller hangs up, and the
page shows it live, its transcript growing, then in history."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from operadora import events as ev
from operadora.ari.client import AriClient
from operadora.calls.call import CallContext
from operadora.config import AriServerSettings, SimSettings, load_settings
from operadora.engine import Engine
from operadora.media import MediaSession
from operadora.sim.server import start_simulator
from support import free_port

pytestmark = pytest.mark.browser


class TalkingAgent:
    """Says one line per ``next_line`` signal (as TurnEvents), listening meanwhile."""

    def __init__(self, bus: ev.EventBus) -> None:
        self.bus = bus
        self.lines = asyncio.Queue[str]()
        self.call_id = ""

    async def __call__(self, media: MediaSession, context: CallContext) -> None:
        self.call_id = context.call_id

        async def listen() -> None:
            async for _ in media.inbound():
                pass

        listener = asyncio.create_task(listen())
        try:
            while True:
                line = await self.lines.get()
                speaker, _, text = line.partition(":")
                self.bus.publish(ev.TurnEvent(context.call_id, speaker=speaker, text=text))
        finally:
            listener.cancel()


async def test_a_simulated_call_on_the_dashboard(tmp_path: Path, browser: Any) -> None:
    password = secrets.token_urlsafe(12)
    sim = await start_simulator(SimSettings(port=0, password=password))
    media_port, api_port = free_port(), free_port()
    server = {"name": "sim", "url": sim.ari_url, "password": password}
    settings = load_settings(
        asterisk={"servers": [server], "media_address": f"127.0.0.1:{media_port}"},
        media={"port": media_port, "uvloop": False},
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"},
        api={"port": api_port},
    )
    bus = ev.EventBus()
    agent = TalkingAgent(bus)
    engine = Engine(settings, agent=agent, bus=bus, with_api=True)
    driver = AriClient(AriServerSettings(**server))
    page: Page | None = None
    try:
        await engine.start()
        await engine.wait_connected(10)
        token, _ = await engine.store.tokens.create("admin", "supervisor")
        url = f"http://127.0.0.1:{api_port}"
        await _wait_healthy(url)
        page = await browser.new_page()
        await page.goto(url + "/")
        await page.fill("#token", token)
        await page.click("#token-form button[type=submit]")
        await expect(page.locator("#conn")).to_have_text("live")

        await driver.originate(
            "Local/110@call-center",
            context="stasis-test",
            extension="tone",
            priority=1,
            caller_id="Test <5551777>",
            channel_id="sim-out",
            other_channel_id="sim-in",
        )
        row = page.locator("tr.call")
        await expect(row.locator(".caller")).to_have_text("5551777", timeout=15_000)
        await expect(row.locator(".state")).to_have_text("connected", timeout=15_000)
        agent.lines.put_nowait("agent:Hello, this is Operadora.")
        await expect(row.locator(".turn")).to_have_count(1)
        agent.lines.put_nowait("caller:I would like to check my order.")
        agent.lines.put_nowait("agent:Of course, one moment.")
        await expect(row.locator(".turn")).to_have_count(3)
        await expect(row.locator(".turn").nth(1)).to_contain_text("check my order")

        await driver.hangup("sim-out")  # the caller hangs up
        await expect(page.locator("tr.call")).to_have_count(0, timeout=15_000)
        history = page.locator(f".history-row[data-call-id='{agent.call_id}']")
        await expect(history.locator(".outcome")).to_have_text("resolved")
        await history.click()
        await expect(page.locator("#detail-transcript .turn")).to_have_count(3)

        # a second call, recorded and hung up from the page through the engine's call control
        await driver.originate(
            "Local/110@call-center",
            context="stasis-test",
            extension="tone",
            priority=1,
            caller_id="Test <5551888>",
            channel_id="sim-out-2",
            other_channel_id="sim-in-2",
        )
        second = page.locator("tr.call")
        await expect(second.locator(".state")).to_have_text("connected", timeout=15_000)
        await second.locator("button.record").click()
        await expect(second.locator(".state")).to_contain_text("rec")
        await second.locator("button.hangup").click()
        await expect(page.locator("tr.call")).to_have_count(0, timeout=15_000)
        ended = page.locator(".history-row", has_text="5551888")
        await expect(ended.locator("td").nth(5)).to_have_text("api")
        call_id = await ended.get_attribute("data-call-id")
        assert call_id is not None
        await engine.recorder.drain()
        record = await engine.store.calls.get_call(call_id)
        assert record is not None and record.ended_by == "api"
        assert [r.reason for r in record.recordings] == ["api"]
        trail = await engine.store.admin.audit_trail()
        assert [(a.actor, a.action) for a in trail if a.call_id == call_id] == [
            ("supervisor", "hangup"),
            ("supervisor", "record"),
        ]
    finally:
        if page is not None:
            await page.close()  # ends its event stream before the engine stops
        await driver.close()
        await engine.stop()
        await sim.close()


async def _wait_healthy(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(500):
            try:
                if (await client.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.02)
    raise AssertionError("the engine's API did not come up")
