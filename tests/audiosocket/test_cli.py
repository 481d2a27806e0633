"""``operadora media serve`` and ``operadora media probe``, run for real."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from typer.testing import CliRunner

from operadora.audiosocket.handlers import echo_handler
from operadora.audiosocket.peer import AsteriskPeer
from operadora.audiosocket.server import MediaServer, start_media_server
from operadora.cli import app
from operadora.config import MediaSettings
from support import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def echo_server() -> Iterator[int]:
    """An echo media server on its own loop in a thread (the CLI runs its own loop)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: list[MediaServer] = []

    async def start() -> None:
        holder.append(await start_media_server(MediaSettings(port=0), echo_handler))
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert started.wait(10)
    yield holder[0].port
    asyncio.run_coroutine_threadsafe(holder[0].close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_probe_shows_what_the_server_sent(echo_server: int) -> None:
    result = CliRunner().invoke(
        app,
        ["media", "probe", f"127.0.0.1:{echo_server}", "--seconds", "0.4", "--rate", "16000"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "AudioFrame received" in result.output
    assert re.search(r"audio rates\s+│\s+16000", result.output)
    assert re.search(r"protocol error\s+│\s+none", result.output)
    assert re.search(r"server closed the call\s+│\s+no", result.output)


def test_probe_reports_unreachable_and_bad_arguments() -> None:
    runner = CliRunner()
    unreachable = runner.invoke(app, ["media", "probe", f"127.0.0.1:{free_port()}"])
    assert unreachable.exit_code == 1
    assert "cannot reach" in unreachable.output
    bad = runner.invoke(app, ["media", "probe", "nonsense"])
    assert bad.exit_code == 2


async def test_serve_echo_runs_until_interrupted() -> None:
    env = {**os.environ, "COLUMNS": "200", "OPERADORA_MEDIA__UVLOOP": "false"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "operadora", "media", "serve", "--echo", "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, line
        port = int(match.group(1))
        peer = None
        for _ in range(100):  # the worker process is still starting
            try:
                peer = await AsteriskPeer.connect("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        assert peer is not None
        t = np.arange(4000) / 8000
        sent = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
        await peer.stream_audio(sent, 8000)
        for _ in range(200):  # the echo trails the caller by a frame or two
            if sent in b"".join(f.pcm for f in peer.audio() if any(f.pcm)):
                break
            await asyncio.sleep(0.05)
        assert sent in b"".join(f.pcm for f in peer.audio() if any(f.pcm))
        await peer.close()
        proc.send_signal(signal.SIGINT)
        output = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
        assert await asyncio.wait_for(proc.wait(), 30) == 0, output
        assert "peer hung up" in output
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
