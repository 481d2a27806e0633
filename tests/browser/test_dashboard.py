"""The dashboard in real Chromium: a call appears live, its transcript grows, it moves to
history with its transcript and recording; a viewer cannot hang up, an admin can."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from api.harness import Running
from operadora import events as ev

pytestmark = pytest.mark.browser


async def open_dashboard(browser: Any, running: Running, token: str) -> Page:
    page: Page = await browser.new_page()
    await page.goto(running.url + "/")
    await page.fill("#token", token)
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#conn")).to_have_text("live")
    return page


async def test_a_call_goes_live_talks_and_moves_to_history(running: Running, browser: Any) -> None:
    page = await open_dashboard(browser, running, running.admin)
    bus = running.bus
    bus.publish(ev.CallArrivedEvent("b1", caller_id="+34911000111", did="100"))
    row = page.locator("#call-b1")
    await expect(row.locator(".caller")).to_have_text("+34911000111")
    await expect(page.locator("#live-count")).to_have_text("1")
    bus.publish(ev.CallAnsweredEvent("b1"))
    bus.publish(ev.MediaConnectedEvent("b1"))
    await expect(row.locator(".state")).to_have_text("connected")
    bus.publish(ev.TurnEvent("b1", speaker="agent", text="Buenos días, ¿en qué le ayudo?"))
    bus.publish(ev.SpeakingEvent("b1", speaker="caller", speaking=True))
    await expect(row.locator(".speaking")).to_have_text("caller")
    bus.publish(ev.TurnEvent("b1", speaker="caller", text="Quiero saber mi saldo"))
    await expect(row.locator(".turn")).to_have_count(2)
    await expect(row.locator(".turn").nth(1)).to_contain_text("Quiero saber mi saldo")
    bus.publish(
        ev.TurnEvent("b1", speaker="agent", text="Su saldo es de 20 euros", latency_ms=640.0)
    )
    await expect(row.locator(".turn")).to_have_count(3)
    await expect(row.locator(".duration")).to_have_text(re.compile(r"0:\d\d"))

    folder = running.store.admin.recordings_dir
    (folder / "b1-rec.wav").write_bytes(_wav())
    bus.publish(ev.RecordingEvent("b1", name="b1-rec", state="started", reason="api"))
    await expect(row.locator(".state")).to_contain_text("rec")
    bus.publish(ev.CallEndedEvent("b1", disposition="resolved", ended_by="caller"))
    await expect(row).to_have_count(0)
    await expect(page.locator("#live-empty")).to_be_visible()
    history = page.locator(".history-row[data-call-id=b1]")
    await expect(history.locator(".outcome")).to_have_text("resolved")
    await history.click()
    await expect(page.locator("#detail-transcript .turn")).to_have_count(3)
    await expect(page.locator("#detail-transcript")).to_contain_text("Su saldo es de 20 euros")
    await page.click("#detail-recordings button.play")
    await expect(page.locator("#detail-recordings audio")).to_have_count(1)
    await running.recorder.drain()
    await page.evaluate("loadStats()")  # the charts read what the recorder wrote
    await expect(page.locator("#containment")).to_have_text("100%")
    await expect(page.locator("#chart-outcomes rect")).to_have_count(1)
    await expect(page.locator("#chart-latency text.value").first).to_have_text("640")


async def test_a_viewer_cannot_hang_up(running: Running, browser: Any) -> None:
    page = await open_dashboard(browser, running, running.viewer)
    running.bus.publish(ev.CallArrivedEvent("v1", caller_id="+1555"))
    hangup = page.locator("#call-v1 button.hangup")
    await expect(hangup).to_be_disabled()
    # even with the button forced on, the API refuses
    await page.evaluate("document.querySelector('#call-v1 button.hangup').disabled = false")
    await hangup.click()
    await expect(page.locator("#toast")).to_contain_text("needs an admin token")
    assert running.actions.hangups == []
    await expect(page.locator("#call-v1")).to_have_count(1)


async def test_an_admin_hangs_up_from_the_dashboard(running: Running, browser: Any) -> None:
    page = await open_dashboard(browser, running, running.admin)
    running.bus.publish(ev.CallArrivedEvent("a1", caller_id="+1666"))
    await page.locator("#call-a1 button.hangup").click()
    await expect(page.locator("#call-a1")).to_have_count(0)
    assert running.actions.hangups == ["a1"]
    await expect(page.locator(".history-row[data-call-id=a1] .outcome")).to_have_text("resolved")


async def test_a_bad_token_is_refused_in_the_page(running: Running, browser: Any) -> None:
    page: Page = await browser.new_page()
    await page.goto(running.url + "/")
    await page.fill("#token", "opd_wrong")
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#whoami")).to_contain_text("Token refused")
    await expect(page.locator("#conn")).to_have_text("offline")


def _wav() -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    return buf.getvalue()


async def test_a_call_ended_before_its_record_stays_in_history(
    running: Running, browser: Any
) -> None:
    page = await open_dashboard(browser, running, running.admin)
    running.bus.publish(ev.CallArrivedEvent("slow", caller_id="+1888"))
    await expect(page.locator("#call-slow")).to_have_count(1)
    await running.recorder.stop()  # the records lag behind: the end is not written yet
    running.bus.publish(ev.CallEndedEvent("slow", disposition="abandoned", ended_by="caller"))
    row = page.locator(".history-row[data-call-id=slow]")
    await expect(row.locator(".outcome")).to_have_text("abandoned")
    seen = await page.evaluate(HISTORY_LOADS)
    await page.wait_for_function(f"() => ({HISTORY_LOADS}) > {seen + 1}")  # two reloads
    await expect(row).to_have_count(1)  # the records lacked it, and the page kept it
    await running.recorder.start()
    running.bus.publish(ev.CallEndedEvent("slow", disposition="resolved", ended_by="caller"))
    await running.recorder.drain()
    await expect(row.locator(".outcome")).to_have_text("resolved")  # now from the records


HISTORY_LOADS = (
    "performance.getEntriesByType('resource').filter(e => e.name.includes('state=ended')).length"
)


async def test_an_admin_sets_a_human_agents_status(running: Running, browser: Any) -> None:
    await running.store.admin.upsert_agent("ana", name="Ana", extension="201", status="available")
    viewer = await open_dashboard(browser, running, running.viewer)
    await expect(viewer.locator("[data-agent-id=ana]")).to_have_text("Ana (201): available")
    await expect(viewer.locator("[data-agent-id=ana] select")).to_have_count(0)
    admin = await open_dashboard(browser, running, running.admin)
    await admin.select_option("[data-agent-id=ana] select", "paused")
    await expect(admin.locator("[data-agent-id=ana]")).to_have_class("agent paused")
    agent = await running.store.admin.get_agent("ana")
    assert agent is not None and agent.status == "paused"
