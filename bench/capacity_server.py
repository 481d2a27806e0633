"""The engine side of the capacity benchmark, in a process of its own: the AudioSocket media
server with the embedded voice agent (Silero VAD, Whisper, scripted agent, espeak) on every
connection. Prints ``port: N`` once the engines are warm, then serves until stdin closes, so
the benchmark can read this process's CPU time from /proc without counting its callers."""

from __future__ import annotations

import asyncio
import sys
import time

from operadora.audiosocket.server import start_media_server
from operadora.config import Settings
from operadora.events import EventBus
from operadora.voice.factory import agent_handler, build_engines, warm_up


async def serve() -> None:
    settings = Settings()
    started = time.perf_counter()
    engines = build_engines(settings.voice, "en")
    await warm_up(engines)
    bus = EventBus()  # nobody subscribes: events cost what publishing costs in production
    handler = agent_handler(engines, settings.voice, bus, language="en", greet=False)
    media = settings.media.model_copy(update={"host": "127.0.0.1", "port": 0})
    server = await start_media_server(media, handler)
    print(
        f"engines: {engines.stt.name}, {engines.tts.name}, {engines.agent.name}, vad "
        f"{settings.voice.vad.engine} (loaded in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    print(f"port: {server.port}", flush=True)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes stdin
    finally:
        await server.close()


if __name__ == "__main__":
    asyncio.run(serve())
