from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from operadora.cli import app

pytestmark = pytest.mark.unit


def test_demo_lists_its_personas() -> None:
    result = CliRunner().invoke(app, ["demo", "--list"])
    assert result.exit_code == 0, result.output
    assert "opening-hours-en" in result.output and "sales-es" in result.output


def test_demo_refuses_an_unknown_language() -> None:
    result = CliRunner().invoke(app, ["demo", "--language", "fr"])
    assert result.exit_code == 2
    assert "--language" in result.output


def test_demo_names_a_broken_persona_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncaller_id: '1'\nsteps: [{sing: la}]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["demo", "--scenarios", str(bad), "--list"])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "step 1" in result.output


def test_demo_names_a_broken_directory_file(tmp_path: Path) -> None:
    bad = tmp_path / "who.yaml"
    bad.write_text("extensions: 3\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["demo", "--directory", str(bad)])
    assert result.exit_code == 2
    assert "who.yaml" in result.output
