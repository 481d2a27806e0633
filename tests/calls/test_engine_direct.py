"""The engine with its real AudioSocket server: the direct ``AudioSocket()`` route, agent
requests on the bus, and an unreachable Asterisk that never stops the engine."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from operadora import events as ev
from operadora.audiosocket.protocol import AudioFrame, DtmfFrame, UuidFrame, serialize
from operadora.calls.call import CallContext
from operadora.config import load_settings
from operadora.engine import Engine
from operadora.media import AudioIn, DtmfIn, MediaSession
from support import free_port

pytestmark = pytest.mark.integration


class HangUpOnDigit:
    """Asks call control to hang up (as the voice agent does) when it hears a digit."""

    def __init__(self, bus: ev.EventBus) -> None:
        self.bus = bus
        self.audio = 0
        self.contexts: list[CallContext] = []

    async def __call__(self, media: MediaSession, context: CallContext) -> None:
        self.contexts.append(context)
        async for item in media.inbound():
            if isinstance(item, AudioIn):
                self.audio += 1
            elif isinstance(item, DtmfIn):
                self.bus.publish(ev.ActionRequestedEvent(context.call_id, action="hangup"))
        await asyncio.sleep(3600)  # call control must cancel us


def engine_settings(**media: Any) -> Any:
    return load_settings(
        asterisk={
            "servers": [
                {
                    "name": "down",
                    "url": f"http://127.0.0.1:{free_port()}/ari",
                    "password": "pw",
                    "reconnect_max_backoff_s": 0.2,
                }
            ],
        },
        media={"port": 0, "uvloop": False, **media},
    )


async def test_direct_route_and_agent_hangup_through_the_bus() -> None:
    bus = ev.EventBus()
    seen = bus.subscribe()
    agent = HangUpOnDigit(bus)
    async with Engine(engine_settings(), agent=agent, bus=bus) as engine:
        port = engine.status().media_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        call_uuid = uuid.uuid4()
        writer.write(serialize(UuidFrame(call_uuid)))
        for _ in range(5):
            writer.write(serialize(AudioFrame(bytes(320), 8000)))
        writer.write(serialize(DtmfFrame("#")))
        await writer.drain()
        # call control hangs up: the socket gets 00 00 00 and is closed
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.endswith(b"\x00\x00\x00")
        writer.close()
        assert agent.contexts[0].direct and agent.contexts[0].call_id == str(call_uuid)
        assert agent.audio == 5
        assert not engine.status().servers["down"]  # Asterisk unreachable, engine still up
    kinds = []
    while not seen.empty():
        event = seen.get_nowait()
        kinds.append(event.event_type)
        if isinstance(event, ev.CallEndedEvent):
            assert event.ended_by == "agent" and event.call_id == str(call_uuid)
    assert kinds.count("CallEndedEvent") == 1
    assert kinds[0] == "CallArrivedEvent" and "MediaConnectedEvent" in kinds
