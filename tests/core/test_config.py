from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from operadora.cli import app
from operadora.config import CONFIG_FILE_ENV, ConfigError, load_settings, require_secret

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASTERISK_HOST", "ARI_PASSWORD", "ARI_USER", "AI_BACKEND_HOST", "AI_BACKEND_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)


def test_defaults_bind_loopback_and_have_no_secrets() -> None:
    settings = load_settings()
    assert settings.media.host == "127.0.0.1"
    assert settings.api.host == "127.0.0.1"
    assert settings.sim.host == "127.0.0.1"
    assert settings.asterisk.servers[0].password is None
    assert settings.sim.password is None


def test_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERADORA_MEDIA__PORT", "9500")
    monkeypatch.setenv("OPERADORA_VOICE__VAD__ENGINE", "webrtc")
    settings = load_settings()
    assert settings.media.port == 9500
    assert settings.voice.vad.engine == "webrtc"


def test_design_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASTERISK_HOST", "pbx.example")
    monkeypatch.setenv("ARI_PASSWORD", "s3cr3t-from-env")
    monkeypatch.setenv("AI_BACKEND_HOST", "10.1.2.3")
    monkeypatch.setenv("AI_BACKEND_PORT", "9100")
    settings = load_settings()
    server = settings.asterisk.servers[0]
    assert server.url == "http://pbx.example:8088/ari"
    assert require_secret(server.password, "asterisk.servers.0.password") == "s3cr3t-from-env"
    assert settings.media.host == "10.1.2.3"
    assert settings.media.port == 9100
    assert settings.asterisk.media_address == "10.1.2.3:9100"


def test_prefixed_environment_wins_over_design_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_BACKEND_PORT", "9100")
    monkeypatch.setenv("OPERADORA_MEDIA__PORT", "9200")
    assert load_settings().media.port == 9200


def test_config_file_below_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "operadora.toml"
    cfg.write_text("[media]\nport = 9300\nframe_ms = 20\n[api]\nport = 8181\n")
    monkeypatch.setenv("OPERADORA_API__PORT", "8282")
    settings = load_settings(cfg)
    assert settings.media.port == 9300
    assert settings.api.port == 8282


def test_yaml_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "operadora.yaml"
    cfg.write_text("voice:\n  agent:\n    language: es\n")
    assert load_settings(cfg).voice.agent.language == "es"


def test_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERADORA_MEDIA__PORT", "99999")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "media.port" in str(info.value)
    assert "OPERADORA_MEDIA__PORT" in str(info.value)


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[media]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"media\.prot"):
        load_settings(cfg)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.toml")


def test_require_secret_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="OPERADORA_SIM__PASSWORD"):
        require_secret(None, "sim.password")


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARI_PASSWORD", "very-secret-value")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "very-secret-value" not in result.output
    shown = json.loads(result.output)
    assert shown["asterisk"]["servers"][0]["password"] == "**********"


def test_config_show_reports_bad_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERADORA_API__PORT", "not-a-port")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "api.port" in result.output


def test_config_file_does_not_leak_into_later_loads(tmp_path: Path) -> None:
    cfg = tmp_path / "operadora.toml"
    cfg.write_text("[media]\nport = 9300\n")
    assert load_settings(cfg).media.port == 9300
    assert CONFIG_FILE_ENV not in os.environ
    assert load_settings().media.port == 9092
