"""Call setup benchmark: StasisStart → first caller audio frame on the AudioSocket.

The PBX simulator runs in a child process (so the figures are the engine's alone); this
process runs one engine plus a light driver that places inbound calls through ARI the way a
real Asterisk receives them: ``POST /channels?endpoint=Local/110@call-center`` whose second
half runs ``Stasis(callcenter-ai,inbound,110)`` and arrives unanswered, while the first half
answers in ``stasis-test,tone`` and streams audio. The engine's agent notes the first audio
frame and hangs the call up, as a real agent ending the call would.

Phase 1 (latency): ``--latency-concurrency`` calls in flight (default 1: one call at a time).
Phase 2 (throughput): ``--concurrency`` calls in flight for ``--seconds``. Final lines:
``setup_p99_ms: X`` and ``setups_per_second: Y``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import socket
import statistics
import time
from typing import Any

from operadora.ari.client import AriClient
from operadora.ari.errors import AriError
from operadora.calls.call import CallContext
from operadora.config import AriServerSettings, SimSettings, load_settings
from operadora.engine import Engine
from operadora.events import EventBus
from operadora.media import AudioIn, MediaSession


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sim_child(port: int, password: str, ready: Any) -> None:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run

    async def main() -> None:
        from operadora.sim.server import start_simulator

        sim = await start_simulator(
            SimSettings(host="127.0.0.1", port=port, username="operadora", password=password)
        )
        ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await sim.close()

    runner(main())


class FirstFrame:
    """The benchmark's agent: waits for the first caller audio frame, then ends the call."""

    def __init__(self, engine_ref: list[Engine]) -> None:
        self.engine_ref = engine_ref
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.setups_ms: list[float] = []
        self.bridged_ms: list[float] = []  # StasisStart → AudioSocket connected and bridged

    async def __call__(self, media: MediaSession, context: CallContext) -> None:
        call = self.engine_ref[0].calls.calls.get(context.call_id)
        async for item in media.inbound():
            if isinstance(item, AudioIn):
                if call is not None:
                    ms = (item.received_at - call.arrived_at) * 1000.0
                    self.setups_ms.append(ms)
                    if call.media_at is not None:
                        self.bridged_ms.append((call.media_at - call.arrived_at) * 1000.0)
                waiter = self.waiters.pop(context.channel_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(time.monotonic())
                return


async def place_call(driver: AriClient, agent: FirstFrame, n: int, timeout_s: float) -> bool:
    inbound = f"bench-{n}-in"
    waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    agent.waiters[inbound] = waiter
    try:
        await driver.originate(
            "Local/110@call-center",
            context="stasis-test",
            extension="tone",
            priority=1,
            caller_id=f"Bench <555{n:06d}>",
            channel_id=f"bench-{n}-out",
            other_channel_id=inbound,
        )
        await asyncio.wait_for(waiter, timeout_s)
        return True
    except (AriError, TimeoutError):
        agent.waiters.pop(inbound, None)
        return False


async def run_phase(
    driver: AriClient,
    agent: FirstFrame,
    start: int,
    concurrency: int,
    *,
    calls: int = 0,
    seconds: float = 0.0,
    timeout_s: float = 5.0,
) -> tuple[int, int, float]:
    ok = failed = 0
    counter = iter(range(start, start + 10_000_000))
    deadline = time.monotonic() + seconds if seconds else None
    started = time.monotonic()

    async def worker() -> None:
        nonlocal ok, failed
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            n = next(counter)
            if calls and n - start >= calls:
                return
            if await place_call(driver, agent, n, timeout_s):
                ok += 1
            else:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, failed, time.monotonic() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def bench(args: argparse.Namespace) -> None:
    password = secrets.token_urlsafe(16)
    sim_port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_sim_child, args=(sim_port, password, ready), daemon=True)
    child.start()
    if not ready.wait(60):
        raise SystemExit("the simulator did not start")
    media_port = free_port()
    server = {"name": "sim", "url": f"http://127.0.0.1:{sim_port}/ari", "password": password}
    settings = load_settings(
        asterisk={"servers": [server], "media_address": f"127.0.0.1:{media_port}"},
        media={"port": media_port},
        log={"level": "WARNING"},
    )
    engine_ref: list[Engine] = []
    agent = FirstFrame(engine_ref)
    engine = Engine(settings, agent=agent, bus=EventBus())
    engine_ref.append(engine)
    await engine.start()
    try:
        await engine.wait_connected(10)
        driver = AriClient(AriServerSettings(**server))
        lc = args.latency_concurrency
        await run_phase(driver, agent, 0, lc, calls=20)  # warm-up
        agent.setups_ms.clear()
        agent.bridged_ms.clear()
        ok, failed, _ = await run_phase(driver, agent, 1000, lc, calls=args.calls)
        latency = list(agent.setups_ms)
        bridged = list(agent.bridged_ms)
        print(f"phase 1: {ok} calls set up, {failed} failed (concurrency {lc})")
        print(f"setup_p50_ms: {statistics.median(latency):.2f}")
        print(f"setup_p90_ms: {pct(latency, 90):.2f}")
        print(
            f"of which StasisStart → bridged with the AudioSocket connected (ARI round trips): "
            f"p50 {statistics.median(bridged):.2f} ms, p99 {pct(bridged, 99):.2f} ms; the rest "
            "is waiting for the caller's first 20 ms frame"
        )
        agent.setups_ms.clear()
        ok2, failed2, took = await run_phase(
            driver, agent, 100_000, args.concurrency, seconds=args.seconds
        )
        thr = list(agent.setups_ms)
        print(
            f"phase 2: {ok2} calls set up, {failed2} failed in {took:.1f} s "
            f"(concurrency {args.concurrency}); setup p50 {statistics.median(thr):.1f} ms, "
            f"p99 {pct(thr, 99):.1f} ms under load"
        )
        await driver.close()
        await asyncio.sleep(0.5)
        print(f"calls left in the engine: {len(engine.calls.calls)}")
        print(f"setup_p99_ms: {pct(latency, 99):.2f}")
        print(f"setups_per_second: {ok2 / took:.1f}")
    finally:
        await engine.stop()
        child.terminate()
        child.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=int(os.environ.get("BENCH_CALLS", 300)))
    parser.add_argument("--latency-concurrency", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(bench(args))
    except ImportError:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
