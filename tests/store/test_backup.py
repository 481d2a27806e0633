"""``operadora backup`` / ``operadora restore``: restore into an empty installation behaves
the same (same settings, agent script, Asterisk config, and the same tokens work)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from api.harness import start_server
from operadora.api.app import create_app
from operadora.cli import app
from operadora.config import CONFIG_FILE_ENV, load_settings
from operadora.events import EventBus
from operadora.store import Store

pytestmark = pytest.mark.integration


def install(root: Path) -> Path:
    root.mkdir()
    (root / "agent.yaml").write_text("greeting: Hola, ¿en qué puedo ayudarle?\n")
    ast = root / "asterisk"
    ast.mkdir()
    (ast / "extensions_operadora.conf").write_text("[from-pstn]\nexten => _X.,1,Stasis(x)\n")
    (ast / "ari_operadora.conf").write_text("[operadora]\ntype=user\n")
    config = root / "operadora.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {
                    "url": f"sqlite+aiosqlite:///{root / 'calls.db'}",
                    "recordings_dir": str(root / "recordings"),
                },
                "voice": {"agent": {"script": str(root / "agent.yaml"), "language": "es"}},
                "api": {"rate_limit_calls": 3},
            }
        )
    )
    return config


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_restore_into_an_empty_installation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "site"
    config = install(root)
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    runner = CliRunner()
    admin = run(runner, "token", "create", "--role", "admin", "--name", "ops").strip()
    viewer = run(runner, "token", "create", "--role", "viewer").strip()
    run(runner, "token", "revoke", "2")
    original = {
        p.relative_to(root): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".db" and "db-" not in p.name
    }

    archive = tmp_path / "backup.tar.gz"
    out = run(runner, "backup", "-o", str(archive), "--asterisk", str(root / "asterisk"))
    assert "4 file(s), 2 token(s)" in out
    assert admin.encode() not in archive.read_bytes()  # tokens only as hashes

    shutil.rmtree(root)  # an empty installation
    out = run(runner, "restore", str(archive))
    assert "restored 2 token(s)" in out
    restored = {
        p.relative_to(root): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".db" and "db-" not in p.name
    }
    assert restored == original

    settings = load_settings(config)
    assert settings.api.rate_limit_calls == 3 and settings.voice.agent.language == "es"
    assert asyncio.run(_roles(settings, admin, viewer)) == (200, "admin", 401)

    again = runner.invoke(app, ["restore", str(archive)])
    assert again.exit_code == 1 and "would overwrite" in again.output


async def _roles(settings: object, admin: str, viewer: str) -> tuple[int, str, int]:
    from operadora.config import Settings

    assert isinstance(settings, Settings)
    store = await Store.open(settings.store)
    app_ = create_app(settings, store, EventBus())
    server, task, url = await start_server(app_)
    try:
        tokens = await store.tokens.all()
        assert [(t.name, t.role, t.revoked_at is not None) for t in tokens] == [
            ("ops", "admin", False),
            ("viewer", "viewer", True),
        ]
        async with httpx.AsyncClient(base_url=url) as c:
            me = await c.get("/api/me", headers={"Authorization": f"Bearer {admin}"})
            revoked = await c.get("/api/me", headers={"Authorization": f"Bearer {viewer}"})
            return me.status_code, me.json()["role"], revoked.status_code
    finally:
        server.should_exit = True
        await task
        await store.close()


def test_bad_archives_are_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar.gz"
    bogus.write_bytes(b"not a tarball")
    result = CliRunner().invoke(app, ["restore", str(bogus)])
    assert result.exit_code == 1 and "not an Operadora backup" in result.output
