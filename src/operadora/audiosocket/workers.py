"""Running the media server: event loop choice (uvloop) and SO_REUSEPORT worker processes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.synchronize
import queue
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from operadora.audiosocket.handlers import HANDLERS
from operadora.audiosocket.pacing import MediaStats
from operadora.audiosocket.server import AnyMediaServer, start_media_server
from operadora.config import MediaSettings
from operadora.runtime import freeze_heap

log = logging.getLogger(__name__)


def new_event_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    """uvloop's loop when asked for and installed, else asyncio's."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.warning("media.uvloop is set but uvloop is not installed; using asyncio's loop")
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


def reserve_port(host: str) -> socket.socket:
    """Bind (without listening) a SO_REUSEPORT socket on a free port that workers can share."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


async def serve(
    settings: MediaSettings,
    handler_name: str,
    stop: asyncio.Event,
    report: Callable[[AnyMediaServer], None] | None = None,
    *,
    reuse_port: bool = False,
) -> None:
    """Run one server until ``stop`` is set, calling ``report`` about once a second."""
    server = await start_media_server(settings, HANDLERS[handler_name], reuse_port=reuse_port)
    freeze_heap()
    try:
        while not stop.is_set():
            if report is not None:
                report(server)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
    finally:
        await server.close()


def server_snapshot(server: AnyMediaServer) -> dict[str, Any]:
    stats = server.stats()
    return {
        "sessions": server.sessions,
        "connections": server.connections_total,
        "stats": asdict(stats),
    }


def stats_from_dict(data: dict[str, Any]) -> MediaStats:
    return MediaStats(**data)


def _worker_main(
    index: int,
    settings_json: str,
    handler_name: str,
    reports: multiprocessing.Queue[tuple[int, dict[str, Any]]],
    stopping: multiprocessing.synchronize.Event,
) -> None:
    settings = MediaSettings.model_validate_json(settings_json)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker-{index} %(message)s")
    loop = new_event_loop(settings.uvloop)
    stop = asyncio.Event()

    def report(server: AnyMediaServer) -> None:
        if stopping.is_set():
            stop.set()
        reports.put((index, server_snapshot(server)))

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        loop.run_until_complete(serve(settings, handler_name, stop, report, reuse_port=True))
    finally:
        loop.close()


class WorkerPool:
    """``settings.workers`` processes, each with its own loop, sharing one port."""

    def __init__(self, settings: MediaSettings, handler_name: str) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._reserved: socket.socket | None = None
        if settings.port == 0:
            self._reserved = reserve_port(settings.host)
            settings = settings.model_copy(update={"port": self._reserved.getsockname()[1]})
        self.settings = settings
        self.port = settings.port
        self._reports: multiprocessing.Queue[tuple[int, dict[str, Any]]] = self._context.Queue()
        self._stopping = self._context.Event()
        self.snapshots: dict[int, dict[str, Any]] = {}
        self._processes = [
            self._context.Process(
                target=_worker_main,
                args=(i, settings.model_dump_json(), handler_name, self._reports, self._stopping),
                name=f"operadora-media-{i}",
                daemon=True,
            )
            for i in range(settings.workers)
        ]

    def start(self) -> None:
        for process in self._processes:
            process.start()

    def poll(self) -> None:
        while True:
            try:
                index, snapshot = self._reports.get_nowait()
            except queue.Empty:
                return
            self.snapshots[index] = snapshot

    def alive(self) -> int:
        return sum(p.is_alive() for p in self._processes)

    def stop(self, grace_s: float = 5.0) -> None:
        self._stopping.set()
        deadline = time.monotonic() + grace_s
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(1.0)
        if self._reserved is not None:
            self._reserved.close()
