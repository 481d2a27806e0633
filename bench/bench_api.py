"""Benchmark of the API and the live dashboard with 50 live simulated calls.

Calls are driven by publishing domain events into the engine's bus (what call control and
the voice pipeline publish during real calls). The API runs on its own thread and event loop,
served by uvicorn on a free loopback port; Debian's Chromium shows the dashboard.

- dashboard update latency: a TurnEvent is published (wall clock noted), the page records
  when the turn's text is in the DOM and the next frame is produced
  (``performance.timeOrigin + performance.now()`` in a MutationObserver + requestAnimationFrame).
- API latency: sequential ``GET /api/live/calls`` (50 calls with transcripts) over keep-alive.

Prints the figures, then exactly ``dashboard_update_p95_ms: X`` and ``api_live_calls_p99_ms: Y``.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from operadora import events as ev
from operadora.api.app import create_app
from operadora.config import Settings
from operadora.events import EventBus
from operadora.store import Database, Store
from operadora.store.recorder import CallRecorder

CALLS = 50
UPDATES = 300
UPDATE_INTERVAL_S = 0.02
API_REQUESTS = 1000
CHROMIUM = "/usr/bin/chromium"
OBSERVER = """
() => {
  window.__seen = {};
  new MutationObserver((records) => {
    const at = performance.timeOrigin + performance.now();
    const hits = [];
    for (const r of records) for (const n of r.addedNodes) {
      const m = /bench-(\\d+)/.exec(n.textContent || "");
      if (m) hits.push(m[1]);
    }
    if (hits.length) requestAnimationFrame(() => {
      const painted = performance.timeOrigin + performance.now();
      for (const h of hits) window.__seen[h] = [at, painted];
    });
  }).observe(document.getElementById("live-body"), {childList: true, subtree: true});
}
"""


class NoCallControl:
    async def hangup(self, call_id: str) -> None:
        raise RuntimeError("the benchmark does not act on calls")

    async def record(self, call_id: str, reason: str) -> str:
        raise RuntimeError("the benchmark does not act on calls")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Engine:
    """The API, the recorder and the bus on their own thread, like in the engine process."""

    def __init__(self, folder: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = self.run(self._start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _start(self) -> str:
        settings = Settings(store={"url": f"sqlite+aiosqlite:///{self.folder / 'bench.db'}"})
        db = Database(settings.store.url.get_secret_value())
        await db.upgrade()
        self.store = Store(db, self.folder)
        self.bus = EventBus()
        self.recorder = CallRecorder(self.store, self.bus)
        await self.recorder.start()
        self.app = create_app(settings, self.store, self.bus, NoCallControl())
        token, _ = await self.store.tokens.create("admin", "bench")
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.serving = asyncio.create_task(self.server.serve())
        for _ in range(1000):
            if self.server.started:
                break
            await asyncio.sleep(0.01)
        return token

    def publish(self, event: ev.DomainEvent) -> float:
        """Publish on the engine's loop; returns the wall-clock time (ms) it was published."""
        done = threading.Event()
        stamp: list[float] = []

        def go() -> None:
            stamp.append(time.time() * 1000)
            self.bus.publish(event)
            done.set()

        self.loop.call_soon_threadsafe(go)
        done.wait(5)
        return stamp[0]

    async def _stop(self) -> None:
        await self.app.state.live.stop()
        self.server.should_exit = True
        await self.serving
        await self.recorder.stop()
        await self.store.close()

    def stop(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def start_calls(engine: Engine) -> None:
    for i in range(CALLS):
        cid = f"call-{i:02d}"
        engine.publish(
            ev.CallArrivedEvent(
                cid, caller_id=f"+3491100{i:04d}", did="100", server="asterisk-1", instance="bench"
            )
        )
        engine.publish(ev.CallAnsweredEvent(cid))
        engine.publish(ev.MediaConnectedEvent(cid, sample_rate=16000))
        engine.publish(
            ev.TurnEvent(cid, speaker="agent", text="Hello, how can I help you?", latency_ms=520.0)
        )


async def dashboard_latency(engine: Engine) -> list[float]:
    from playwright.async_api import async_playwright

    rng = random.Random(5)
    published: dict[str, float] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = await browser.new_page()
        await page.goto(engine.url + "/")
        await page.fill("#token", engine.admin)
        await page.click("#token-form button[type=submit]")
        await page.wait_for_function(
            f"() => document.querySelectorAll('tr.call').length === {CALLS}"
        )
        await page.evaluate(OBSERVER)
        for n in range(UPDATES):
            cid = f"call-{rng.randrange(CALLS):02d}"
            speaker = "caller" if n % 2 else "agent"
            engine.publish(ev.SpeakingEvent(cid, speaker=speaker, speaking=True))
            published[str(n)] = engine.publish(
                ev.TurnEvent(cid, speaker=speaker, text=f"bench-{n} some words of the turn")
            )
            await asyncio.sleep(UPDATE_INTERVAL_S)
        await page.wait_for_function(
            f"() => Object.keys(window.__seen).length === {UPDATES}", timeout=30_000
        )
        seen: dict[str, list[float]] = await page.evaluate("window.__seen")
        await browser.close()
    dom = [seen[n][0] - t for n, t in published.items()]
    painted = [seen[n][1] - t for n, t in published.items()]
    print(
        f"dashboard: {UPDATES} transcript updates over {CALLS} live calls, "
        f"one every {UPDATE_INTERVAL_S * 1000:.0f} ms"
    )
    print(
        f"  event -> in DOM      p50 {pct(dom, 50):.1f} ms  p95 {pct(dom, 95):.1f} ms  "
        f"max {max(dom):.1f} ms"
    )
    print(
        f"  event -> next frame  p50 {pct(painted, 50):.1f} ms  p95 {pct(painted, 95):.1f} ms"
        f"  max {max(painted):.1f} ms"
    )
    return painted


def api_latency(engine: Engine) -> list[float]:
    times: list[float] = []
    with httpx.Client(
        base_url=engine.url, headers={"Authorization": f"Bearer {engine.admin}"}
    ) as client:
        for _ in range(50):  # warm-up
            client.get("/api/live/calls").raise_for_status()
        for _ in range(API_REQUESTS):
            t0 = time.perf_counter()
            r = client.get("/api/live/calls")
            times.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        size = len(r.content)
        assert len(r.json()) == CALLS
    print(
        f"api: GET /api/live/calls x{API_REQUESTS} ({CALLS} calls, {size} bytes)  "
        f"p50 {pct(times, 50):.2f} ms  p99 {pct(times, 99):.2f} ms  "
        f"mean {statistics.fmean(times):.2f} ms"
    )
    return times


def recorder_throughput(engine: Engine, turns: int = 2000) -> None:
    """How fast the recorder writes events to the call records (SQLite, one transaction each)."""

    async def run() -> float:
        await engine.recorder.drain()
        t0 = time.perf_counter()
        for n in range(turns):
            engine.bus.publish(
                ev.TurnEvent(
                    f"call-{n % CALLS:02d}",
                    speaker="caller",
                    text=f"turn {n} of the recorder benchmark",
                )
            )
        await engine.recorder.drain()
        return time.perf_counter() - t0

    elapsed = engine.run(run())
    print(
        f"recorder: {turns} turns written in {elapsed:.2f} s "
        f"({turns / elapsed:.0f} events/s, SQLite)"
    )


def main() -> int:
    if not Path(CHROMIUM).exists():
        print("chromium missing: run `make system-deps` (scripts/system-deps.sh)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="operadora-bench-") as folder:
        engine = Engine(Path(folder))
        try:
            start_calls(engine)
            painted = asyncio.run(dashboard_latency(engine))
            api = api_latency(engine)
            recorder_throughput(engine)
        finally:
            engine.stop()
    print(f"dashboard_update_p95_ms: {pct(painted, 95):.1f}")
    print(f"api_live_calls_p99_ms: {pct(api, 99):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
