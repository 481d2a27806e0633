"""Commands of the AudioSocket media server."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this component's commands to the root CLI (filled in by the media engine)."""
    del app
