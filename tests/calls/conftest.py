"""Fakes for call-control unit tests.

``FakeAri`` answers the client methods call control uses the way Asterisk 22 did in the
recorded traces (``ari-traces/f4_external_media_audiosocket_slin16.jsonl``,
``a2_inbound_via_dialplan.jsonl``): externalMedia puts its own channel into the application
with the UUID as its only arg, ``DELETE /channels`` yields StasisEnd then ChannelDestroyed with
cause 16, a gone resource answers 404. Events reach the router asynchronously, as they do
over the WebSocket.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from operadora import events as ev
from operadora.ari.errors import AriNotFound, AriServerError
from operadora.ari.events import AriEvent, parse_event
from operadora.ari.models import Bridge, Channel, LiveRecording, Playback
from operadora.calls.call import CallContext
from operadora.calls.services import CallService
from operadora.calls.stasis import StasisRouter
from operadora.media import AudioIn, DtmfIn, InboundItem, MediaSession


def channel_json(channel_id: str, name: str, state: str = "Up", **extra: Any) -> dict[str, Any]:
    return {
        "id": channel_id,
        "name": name,
        "state": state,
        "protocol_id": "",
        "caller": extra.get("caller", {"name": "", "number": ""}),
        "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": extra.get(
            "dialplan",
            {
                "context": "call-center",
                "exten": "110",
                "priority": 2,
                "app_name": "Stasis",
                "app_data": "callcenter-ai,inbound,110",
            },
        ),
        "creationtime": "2026-11-25T20:42:39.629+0000",
        "language": "en",
    }


def event_json(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": "2026-11-25T20:42:40.000+0000",
        "asterisk_id": "02:fc:00:00:00:01",
        "application": "callcenter-ai",
        **fields,
    }


class FakeAri:
    """An in-memory stand-in for one Asterisk's ARI, as seen through ``AriClient``."""

    def __init__(self, name: str = "asterisk-1") -> None:
        self.name = name
        self.app = "callcenter-ai"
        self.channels: dict[str, dict[str, Any]] = {}
        self.bridges: dict[str, list[str]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.router: Callable[[AriEvent], None] | None = None
        self.fail: dict[str, Exception] = {}
        self.on_external_media: Callable[[str], None] | None = None
        self.after: dict[str, Callable[[], None]] = {}  # op -> what happens right after it

    def emit(self, kind: str, **fields: Any) -> None:
        event = parse_event(event_json(kind, **fields))
        assert self.router is not None
        asyncio.get_running_loop().call_soon(self.router, event)

    def _record(self, op: str, **params: Any) -> None:
        self.requests.append((op, params))
        for key in (op, f"{op}:{params.get('channelId')}"):
            if key in self.fail:
                raise self.fail.pop(key)

    def add_caller(self, channel_id: str, number: str = "5551000", did: str = "110") -> None:
        self.channels[channel_id] = channel_json(
            channel_id,
            f"PJSIP/sipp-{channel_id}",
            "Ring",
            caller={"name": "Alice", "number": number},
        )
        self.emit("StasisStart", args=["inbound", did], channel=self.channels[channel_id])

    def caller_hangs_up(self, channel_id: str) -> None:
        channel = self.channels.pop(channel_id)
        self._leave_bridges(channel_id)
        self.emit("StasisEnd", channel=channel)
        self.emit("ChannelDestroyed", cause=16, cause_txt="Normal Clearing", channel=channel)

    def vanish(self, channel_id: str) -> None:
        """The channel goes with no event delivered (the WebSocket was down)."""
        self.channels.pop(channel_id)
        self._leave_bridges(channel_id)

    def _leave_bridges(self, channel_id: str) -> None:
        for members in self.bridges.values():
            if channel_id in members:
                members.remove(channel_id)

    def _get(self, channel_id: str) -> dict[str, Any]:
        if channel_id not in self.channels:
            raise AriNotFound(404, "Channel not found")
        return self.channels[channel_id]

    async def answer(self, channel_id: str) -> None:
        self._record("answer", channelId=channel_id)
        self._get(channel_id)["state"] = "Up"
        if (then := self.after.pop("answer", None)) is not None:
            then()

    async def create_bridge(
        self, bridge_id: str, bridge_type: str = "mixing", name: str | None = None
    ) -> Bridge:
        self._record("create_bridge", bridgeId=bridge_id, type=bridge_type)
        self.bridges[bridge_id] = []
        return Bridge(id=bridge_id, bridge_type=bridge_type)

    async def external_media(
        self,
        *,
        channel_id: str,
        external_host: str,
        data: str,
        media_format: str = "slin16",
        encapsulation: str = "audiosocket",
        transport: str = "tcp",
    ) -> Channel:
        self._record(
            "external_media",
            channelId=channel_id,
            external_host=external_host,
            data=data,
            format=media_format,
            encapsulation=encapsulation,
            transport=transport,
        )
        name = f"AudioSocket/{external_host}-{data}"
        self.channels[channel_id] = channel_json(channel_id, name)
        self.emit("StasisStart", args=[data], channel=self.channels[channel_id])
        if self.on_external_media is not None:
            self.on_external_media(data)
        return Channel.model_validate(self.channels[channel_id])

    async def add_channels(
        self, bridge_id: str, channel_ids: list[str], role: str | None = None
    ) -> None:
        self._record("add_channels", bridgeId=bridge_id, channel=list(channel_ids))
        if bridge_id not in self.bridges:
            raise AriNotFound(404, "Bridge not found")
        for channel_id in channel_ids:
            self._get(channel_id)
        self.bridges[bridge_id].extend(channel_ids)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self._record("hangup", channelId=channel_id, reason=reason)
        channel = self._get(channel_id)
        del self.channels[channel_id]
        self._leave_bridges(channel_id)
        self.emit("ChannelHangupRequest", cause=32, soft=True, channel=channel)
        self.emit("StasisEnd", channel=channel)
        self.emit("ChannelDestroyed", cause=16, cause_txt="Normal Clearing", channel=channel)

    async def destroy_bridge(self, bridge_id: str) -> None:
        self._record("destroy_bridge", bridgeId=bridge_id)
        if bridge_id not in self.bridges:
            raise AriNotFound(404, "Bridge not found")
        del self.bridges[bridge_id]

    async def record_bridge(
        self,
        bridge_id: str,
        name: str,
        *,
        media_format: str = "wav",
        if_exists: str = "overwrite",
        max_duration_s: int | None = None,
    ) -> LiveRecording:
        self._record("record_bridge", bridgeId=bridge_id, name=name, format=media_format)
        if bridge_id not in self.bridges:
            raise AriNotFound(404, "Bridge not found")
        return LiveRecording(
            name=name, format=media_format, state="queued", target_uri=f"bridge:{bridge_id}"
        )

    async def play(
        self, channel_id: str, media: str | list[str], playback_id: str | None = None
    ) -> Playback:
        media = [media] if isinstance(media, str) else list(media)
        self._record("play", channelId=channel_id, media=media, playbackId=playback_id)
        self._get(channel_id)
        return Playback(
            id=playback_id or str(uuid.uuid4()),
            media_uri=media[0],
            target_uri=f"channel:{channel_id}",
            state="queued",
        )

    def finish_playback(self, playback_id: str, channel_id: str) -> None:
        playback = {
            "id": playback_id,
            "media_uri": "sound:im-sorry",
            "target_uri": f"channel:{channel_id}",
            "language": "en",
            "state": "done",
        }
        self.emit("PlaybackFinished", playback=playback)

    async def get_channel(self, channel_id: str) -> Channel:
        return Channel.model_validate(self._get(channel_id))

    async def list_channels(self) -> list[Channel]:
        self._record("list_channels")
        return [Channel.model_validate(c) for c in self.channels.values()]

    async def list_bridges(self) -> list[Bridge]:
        self._record("list_bridges")
        return [Bridge(id=b, channels=m) for b, m in self.bridges.items()]


class FakeMedia:
    """A MediaSession fed by the test: audio and DTMF in, playback recorded."""

    def __init__(self, call_uuid: str, sample_rate: int = 16000) -> None:
        self._uuid = uuid.UUID(call_uuid)
        self._rate = sample_rate
        self._inbox: asyncio.Queue[InboundItem | None] = asyncio.Queue()
        self.played: list[bytes] = []
        self.hung_up = False
        self._closed = False

    @property
    def call_uuid(self) -> uuid.UUID:
        return self._uuid

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def inbound(self) -> AsyncIterator[InboundItem]:
        while (item := await self._inbox.get()) is not None:
            yield item

    def feed_audio(self, ms: int = 20) -> None:
        self._inbox.put_nowait(
            AudioIn(bytes(self._rate // 1000 * 2 * ms), self._rate, time.monotonic())
        )

    def feed_dtmf(self, digit: str) -> None:
        self._inbox.put_nowait(DtmfIn(digit, time.monotonic()))

    def peer_hangs_up(self) -> None:
        self._closed = True
        self._inbox.put_nowait(None)

    def play(self, pcm: bytes, sample_rate: int | None = None) -> None:
        self.played.append(pcm)

    def clear(self) -> int:
        return 0

    @property
    def queued_ms(self) -> float:
        return 0.0

    @property
    def played_ms(self) -> float:
        return 0.0

    async def hangup(self) -> None:
        self.hung_up = True
        if not self._closed:
            self._closed = True
            self._inbox.put_nowait(None)

    @property
    def closed(self) -> bool:
        return self._closed


class RecordingAgent:
    """Records what it is given; ends the call itself when told to."""

    def __init__(self) -> None:
        self.contexts: list[CallContext] = []
        self.items: dict[str, list[InboundItem]] = {}
        self.started = asyncio.Event()
        self.cancelled = 0
        self.stop_after_items: int | None = None

    async def __call__(self, media: MediaSession, context: CallContext) -> None:
        self.contexts.append(context)
        got = self.items.setdefault(context.call_id, [])
        self.started.set()
        try:
            async for item in media.inbound():
                got.append(item)
                if self.stop_after_items is not None and len(got) >= self.stop_after_items:
                    return
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class Harness:
    def __init__(self) -> None:
        self.ari = FakeAri()
        self.bus = ev.EventBus()
        self.events = self.bus.subscribe()
        self.agent = RecordingAgent()
        self.service = CallService(
            agent=self.agent,
            bus=self.bus,
            media_address="10.0.0.5:9092",
            hangup_confirm_timeout_s=0.5,
        )
        self.service.add_client(self.ari)  # type: ignore[arg-type]
        self.router = StasisRouter(self.service, self.ari.name)
        self.ari.router = self.router
        self.media: dict[str, FakeMedia] = {}
        self.media_tasks: list[asyncio.Task[None]] = []
        self.ari.on_external_media = self._connect

    channel_json = staticmethod(channel_json)

    def new_media(self, call_uuid: str, sample_rate: int = 16000) -> FakeMedia:
        return FakeMedia(call_uuid, sample_rate)

    def _connect(self, call_uuid: str) -> None:
        """Asterisk dials our AudioSocket server as soon as the externalMedia channel exists."""
        media = FakeMedia(call_uuid)
        self.media[call_uuid] = media
        media.feed_audio()
        self.media_tasks.append(
            asyncio.get_running_loop().create_task(self.service.on_media(media))
        )

    def published(self) -> list[ev.DomainEvent]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    async def settle(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def until(self, check: Callable[[], bool], timeout_s: float = 2.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not check():  # noqa: ASYNC110 - polls state changed by many tasks
                await asyncio.sleep(0.001)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.service.close(timeout_s=1.0)
    for task in h.media_tasks:
        task.cancel()
    await asyncio.gather(*h.media_tasks, return_exceptions=True)


__all__ = ["AriServerError", "FakeAri", "FakeMedia", "Harness", "RecordingAgent"]
