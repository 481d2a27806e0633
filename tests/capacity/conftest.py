"""Settings in these tests come from what each test passes, never from the environment that
other tests (or the shell) may have left behind."""

from __future__ import annotations

import os

import pytest

DESIGN_NAMES = ("ASTERISK_HOST", "ASTERISK_ARI_PORT", "ARI_USER", "ARI_PASSWORD")
DESIGN_NAMES += ("AI_BACKEND_HOST", "AI_BACKEND_PORT")


@pytest.fixture(autouse=True)
def _isolated_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("OPERADORA_") or key in DESIGN_NAMES:
            monkeypatch.delenv(key, raising=False)
