"""The engine side of the capacity benchmark, in a process of its own: the AudioSocket media
server with the embedded voice agent (Silero VAD, Whisper, scripted agent, espeak) on every
connection. Prints ``port: N`` once the engines are warm, then serves until stdin closes, so
the benchmark can read this process's CPU time from /proc without counting its callers.
stdin is read on a thread of its own, not one of asyncio's default workers, which the
engines use (Whisper's and espeak's calls through ``asyncio.to_thread``).

A ``stats`` line on stdin answers with one ``stats: {json}`` line about what happened since
the last one: every Whisper decode's wait for the model and its own time (the model decodes
one utterance at a time: a single-server queue), the TTS syntheses' times, and the CPU
seconds of this process's threads by kind (the event loop, the VAD batch worker, Python's
worker threads, and native threads that Python does not know: CTranslate2's and ONNX
Runtime's pools)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from operadora.audiosocket.server import start_media_server
from operadora.config import Settings
from operadora.events import EventBus
from operadora.voice.engines import Float32Audio, SpeechToText, TextToSpeech, Transcript
from operadora.voice.factory import agent_handler, build_engines, warm_up
from operadora.voice.session import Engines

TICK = os.sysconf("SC_CLK_TCK")


class TimedStt:
    """The engine's speech recognition, its decodes timed: the wait for the model (which
    decodes one utterance at a time) apart from the decode itself. Same serialization as the
    engine's own lock, taken first here so that the wait can be seen."""

    def __init__(self, inner: SpeechToText) -> None:
        self.inner = inner
        self.name = inner.name
        self._lock = threading.Lock()
        self.records: list[tuple[float, float, float]] = []  # wait s, decode s, audio s

    async def transcribe(self, audio: Float32Audio, language: str | None = None) -> Transcript:
        sync = getattr(self.inner, "transcribe_sync", None)
        if sync is None:
            return await self.inner.transcribe(audio, language)
        return await asyncio.to_thread(self._run, sync, audio, language)

    def _run(self, sync: Any, audio: Float32Audio, language: str | None) -> Transcript:
        asked = time.perf_counter()
        with self._lock:
            began = time.perf_counter()
            try:
                result: Transcript = sync(audio, language)
            finally:
                done = time.perf_counter()
                self.records.append((began - asked, done - began, audio.size / 16000))
        return result


class TimedTts:
    """The engine's speech synthesis, each synthesis timed."""

    def __init__(self, inner: TextToSpeech) -> None:
        self.inner = inner
        self.name = inner.name
        self.records: list[float] = []

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        began = time.perf_counter()
        async for chunk in self.inner.synthesize(text, language):
            yield chunk
        self.records.append(time.perf_counter() - began)


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, summed by kind."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICK
        name = names.get(int(task.name), "native")
        kind = (
            "loop"
            if name == "MainThread"
            else "vad"
            if name.startswith("silero")
            else "native"
            if name == "native"
            else "python_workers"
        )
        out[kind] = out.get(kind, 0.0) + seconds
    return out


class Stats:
    def __init__(self, stt: TimedStt, tts: TimedTts) -> None:
        self.stt, self.tts = stt, tts
        self.cpu = thread_cpu()

    def take(self) -> dict[str, Any]:
        """What happened since the last call; the records start again empty."""
        stt, self.stt.records = self.stt.records, []
        tts, self.tts.records = self.tts.records, []
        cpu = thread_cpu()
        # a thread that ended takes its seconds with it: clamp at zero
        delta = {k: max(0.0, v - self.cpu.get(k, 0.0)) for k, v in cpu.items()}
        self.cpu = cpu
        return {
            "stt_wait_s": [round(r[0], 4) for r in stt],
            "stt_decode_s": [round(r[1], 4) for r in stt],
            "stt_audio_s": [round(r[2], 3) for r in stt],
            "tts_s": [round(r, 4) for r in tts],
            "thread_cpu_s": {k: round(v, 3) for k, v in delta.items()},
        }


async def serve() -> None:
    settings = Settings()
    started = time.perf_counter()
    built = build_engines(settings.voice, "en")
    stt, tts = TimedStt(built.stt), TimedTts(built.tts)
    engines = Engines(stt=stt, tts=tts, agent=built.agent, vad=built.vad)
    await warm_up(engines)
    bus = EventBus()  # nobody subscribes: events cost what publishing costs in production
    handler = agent_handler(engines, settings.voice, bus, language="en", greet=False)
    media = settings.media.model_copy(update={"host": "127.0.0.1", "port": 0})
    server = await start_media_server(media, handler)
    print(
        f"engines: {stt.name}, {tts.name}, {engines.agent.name}, vad "
        f"{settings.voice.vad.engine} (loaded in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    stats = Stats(stt, tts)
    print(f"port: {server.port}", flush=True)
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()

    def read_stdin() -> None:  # its own thread: the engines' worker threads stay all theirs
        for line in sys.stdin:
            if line.strip() == "stats":
                loop.call_soon_threadsafe(_print_stats, stats)
        loop.call_soon_threadsafe(closed.set)

    threading.Thread(target=read_stdin, name="bench-stdin", daemon=True).start()
    try:
        await closed.wait()
    finally:
        await server.close()


def _print_stats(stats: Stats) -> None:
    print(f"stats: {json.dumps(stats.take())}", flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
