"""Call control as the API and the recorder see it (``operadora.api.actions.CallActions``)."""

from __future__ import annotations

import itertools
import logging

from operadora import events as ev
from operadora.api.actions import ActionFailed, CallNotFound
from operadora.ari.errors import AriError
from operadora.ari.models import LiveRecording
from operadora.calls.services import CallService

log = logging.getLogger(__name__)


class EngineCallActions:
    """Hang-ups and bridge recordings of the calls live in this process."""

    def __init__(self, service: CallService, media_format: str = "wav") -> None:
        self.service = service
        self.media_format = media_format
        self._counter = itertools.count(1)
        self._recordings: dict[str, str] = {}  # recording name -> call id

    async def hangup(self, call_id: str) -> None:
        if not await self.service.hangup(call_id, "api"):
            raise CallNotFound(call_id)

    async def record(self, call_id: str, reason: str) -> str:
        call = self.service.calls.get(call_id)
        if call is None or not call.state.live:
            raise CallNotFound(call_id)
        if call.context.direct:
            raise ActionFailed("calls on the direct AudioSocket() route cannot be recorded")
        name = f"operadora-{call_id}-{next(self._counter)}"
        client = self.service.clients[call.server]
        try:
            await client.record_bridge(call.bridge_id, name, media_format=self.media_format)
        except AriError as exc:
            raise ActionFailed(f"Asterisk refused to record: {exc}") from exc
        self._recordings[name] = call_id
        self.service.bus.publish(
            ev.RecordingEvent(call_id, name=name, state="started", reason=reason)
        )
        return name

    def recording_ended(self, recording: LiveRecording, failed: bool) -> None:
        """RecordingFinished / RecordingFailed from ARI."""
        call_id = self._recordings.pop(recording.name, None)
        if call_id is None:
            return
        self.service.bus.publish(
            ev.RecordingEvent(
                call_id,
                name=recording.name,
                state="failed" if failed else "finished",
                reason=recording.cause or "",
                path=f"{recording.name}.{recording.format or self.media_format}",
            )
        )
