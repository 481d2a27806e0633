"""What the API and the recorder ask call control to do to a live call.

Call control implements :class:`CallActions` and hands it to ``create_app`` and
``CallRecorder``. Each method raises :class:`CallNotFound` when the call is not live here.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class CallNotFound(Exception):
    """The call is not live (it ended, or another instance owns it)."""


class ActionFailed(Exception):
    """Call control tried and Asterisk refused; the message says why."""


@runtime_checkable
class CallActions(Protocol):
    async def hangup(self, call_id: str) -> None:
        """Hang the call up now (ended_by="api")."""

    async def record(self, call_id: str, reason: str) -> str:
        """Start recording the call's bridge; returns the recording name.

        Call control publishes ``RecordingEvent(state="started", reason=...)`` and later
        ``finished``/``failed``; the store keeps what those events say.
        """
