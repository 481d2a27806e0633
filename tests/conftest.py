"""Shared fixtures. Tests that need PostgreSQL, Redis or Chromium skip locally when those are
missing but must run in CI (``CI=true``): there a missing service fails the test instead
(``support.require``)."""

from __future__ import annotations

import pytest

from support import free_port


@pytest.fixture
def unused_port() -> int:
    return free_port()
