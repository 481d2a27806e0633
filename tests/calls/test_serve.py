"""``operadora serve``: refuses to start without a password; a wrong password or an
unreachable Asterisk gives one clear error line and keeps retrying, never a crash."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from operadora.calls.cli import serve
from operadora.cli import app
from operadora.config import SimSettings, load_settings
from operadora.sim.server import start_simulator
from support import free_port

pytestmark = pytest.mark.integration


def serve_settings(tmp_path: Path, url: str, password: str) -> object:
    return load_settings(
        asterisk={"servers": [{"url": url, "password": password, "reconnect_max_backoff_s": 0.1}]},
        media={"port": 0, "uvloop": False},
        api={"port": 0},
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"},
        voice={"stt": {"engine": "fake"}, "tts": {"engine": "fake"}},
    )


def test_serve_refuses_to_start_without_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ARI_PASSWORD", "OPERADORA_CONFIG", "OPERADORA_ASTERISK__SERVERS"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "no ARI password" in result.output


@pytest.mark.parametrize("case", ["wrong password", "unreachable"])
async def test_serve_keeps_retrying_with_one_error_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="operadora.ari.websocket")
    sim = await start_simulator(SimSettings(port=0, password=secrets.token_urlsafe(8)))
    try:
        url = sim.ari_url if case == "wrong password" else f"http://127.0.0.1:{free_port()}/ari"
        stop = asyncio.Event()
        task = asyncio.create_task(serve(serve_settings(tmp_path, url, "not-it"), stop=stop))

        def retries() -> int:
            return len([r for r in caplog.records if "still failing" in r.getMessage()])

        async with asyncio.timeout(10):
            while retries() < 3:  # noqa: ASYNC110 - the engine retries in the background
                await asyncio.sleep(0.05)
        assert not task.done()  # still running, still retrying
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        await sim.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    expected = "wrong password" if case == "wrong password" else "cannot reach Asterisk"
    assert expected in errors[0] and "retrying" in errors[0]


def test_warns_when_asterisk_cannot_reach_a_loopback_media_server() -> None:
    from operadora.calls.cli import media_reachability_warning

    remote = load_settings(asterisk={"media_address": "10.0.0.5:9092"})
    assert "10.0.0.5:9092" in (media_reachability_warning(remote) or "")
    local = load_settings(asterisk={"media_address": "127.0.0.1:9092"})
    assert media_reachability_warning(local) is None
    bound = load_settings(asterisk={"media_address": "10.0.0.5:9092"}, media={"host": "0.0.0.0"})
    assert media_reachability_warning(bound) is None


def test_serve_without_its_redis_exits_with_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "operadora.toml"
    # load_settings records the file in OPERADORA_CONFIG: restored after the test
    monkeypatch.setenv("OPERADORA_CONFIG", str(config))
    config.write_text(
        f"""
[asterisk]
servers = [{{ name = "pbx", url = "http://127.0.0.1:{free_port()}/ari", password = "pw" }}]

[media]
port = 0
uvloop = false

[api]
port = {free_port()}

[store]
url = "sqlite+aiosqlite:///{tmp_path / "serve.db"}"

[state]
backend = "redis"
redis_url = "redis://127.0.0.1:{free_port()}/0"

[voice.stt]
engine = "fake"

[voice.tts]
engine = "fake"
"""
    )
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "cannot start the engine" in result.output and "state.backend=redis" in result.output
