"""How call control runs a voice agent on a call (the voice package provides the real one)."""

from __future__ import annotations

from typing import Protocol

from operadora.calls.call import CallContext
from operadora.media import MediaSession


class CallAgent(Protocol):
    """Runs the conversation until the caller or the agent ends it.

    Returning means the agent is done: call control then hangs the call up (``ended_by``
    agent) unless the caller already left.
    """

    async def __call__(self, media: MediaSession, context: CallContext) -> None: ...
