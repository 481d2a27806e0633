"""The three commands through the real CLI (typer's runner, real settings from environment)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from operadora.cli import app

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("OPERADORA_") or key in ("ARI_PASSWORD", "ASTERISK_HOST", "ARI_USER"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPERADORA_HARDWARE__DAHDI_DEV", str(tmp_path / "no-dahdi"))
    monkeypatch.setenv("OPERADORA_HARDWARE__NVIDIA_SMI", str(tmp_path / "no-nvidia-smi"))
    monkeypatch.setenv("OPERADORA_VOICE__AGENT__ENGINE", "scripted")


def test_hardware_json_without_anything() -> None:
    result = runner.invoke(app, ["hardware", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["hardware_type"] == "none"
    assert report["pipeline"]["max_concurrent_calls"] is None
    assert "ARI password" in report["gateway"]["detail"]
    assert "does not exist" in report["dahdi"]["detail"]


def test_hardware_table() -> None:
    result = runner.invoke(app, ["hardware"])
    assert result.exit_code == 0, result.output
    assert "Telephony hardware" in result.stdout and "sip_trunk" in result.stdout


def test_capacity_for_a_planned_gpu_machine() -> None:
    args = ["capacity", "--json", "--cores", "16", "--ram-gb", "64", "--gpu", "RTX 4090"]
    result = runner.invoke(app, [*args, "--llm", "local", "--gateway", "GXW4108", "--calls", "40"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    plan = data["plan"]
    assert (plan["max_calls"], plan["bottleneck"]) == (8, "telephony")
    limits = {c["name"]: c["max_calls"] for c in plan["components"]}
    assert limits["llm_gpu"] == 15 and limits["telephony"] == 8
    advice = data["recommendation"]
    assert advice["calls"] == 40 and advice["tier"] == "20-100"
    assert advice["warnings"]


def test_capacity_on_this_machine_tables() -> None:
    result = runner.invoke(app, ["capacity"])
    assert result.exit_code == 0, result.output
    assert "bottleneck" in result.stdout and "Recommendation" in result.stdout
    assert f"{os.sched_getaffinity(0).__len__()} cores" in result.stdout


def test_capacity_rejects_unknown_devices() -> None:
    result = runner.invoke(app, ["capacity", "--cores", "4", "--dahdi", "X999"])
    assert result.exit_code == 2
    assert "unknown device" in result.output


def test_asterisk_config_prints_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARI_PASSWORD", "cli-secret-77")
    result = runner.invoke(app, ["asterisk-config"])
    assert result.exit_code == 0, result.output
    assert "cli-secret-77" not in result.output
    assert "Stasis(${OPERADORA_APP},inbound,${EXTEN})" in result.stdout
    shown = runner.invoke(app, ["asterisk-config", "--show-secrets"])
    assert "password=cli-secret-77" in shown.stdout


def test_asterisk_config_missing_password_is_explained() -> None:
    result = runner.invoke(app, ["asterisk-config", "--target", "freepbx"])
    assert result.exit_code == 0
    assert "ARI_PASSWORD" in result.stderr
    assert "extensions_custom.conf" in result.stdout


def test_asterisk_config_writes_files_and_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARI_PASSWORD", "cli-secret-77")
    out = tmp_path / "conf"
    first = runner.invoke(app, ["asterisk-config", "--out", str(out)])
    assert first.exit_code == 0, first.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ari.conf", "extensions.conf", "http.conf", "pjsip.conf", "queues.conf"]
    again = runner.invoke(app, ["asterisk-config", "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.stderr
    forced = runner.invoke(app, ["asterisk-config", "--out", str(out), "--force", "--show-secrets"])
    assert forced.exit_code == 0
    assert "password=cli-secret-77" in (out / "ari.conf").read_text()
