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
Runtime's pools). Also, per call (the AudioSocket UUID): each decode's request, start and end,
each request the session dropped before its answer (a speculative decode cancelled when the
caller spoke on) and when, and each caller turn's last voiced sample and the moment its
transcript was in hand (from the session's turn events), all in the event loop's clock, so
the benchmark can tell how much of a decode's wait the end-of-turn silence hid."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from operadora.audiosocket.server import start_media_server
from operadora.capacity.engine import SttSpin
from operadora.config import Settings
from operadora.events import EventBus, TurnEvent
from operadora.media import MediaSession
from operadora.voice.engines import Float32Audio, SpeechToText, TextToSpeech, Transcript
from operadora.voice.factory import agent_handler, build_engines, warm_up
from operadora.voice.pcm import resample
from operadora.voice.session import Engines
from voice_corpus import load_prompts

TICK = os.sysconf("SC_CLK_TCK")


class TimedStt:
    """The engine's speech recognition, its decodes timed: the wait for the model apart from
    the decode itself. The same serialization as the engine's: one worker thread of its own
    (``WhisperStt``'s executor), so a request the session cancels while it still waits (a
    speculative decode the caller spoke on over) is never decoded, as in production; the
    wait is the time from the request to the worker taking it."""

    def __init__(self, inner: SpeechToText) -> None:
        self.inner = inner
        self.name = inner.name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timed-whisper")
        self.records: list[tuple[float, float, float]] = []  # wait s, decode s, audio s
        self.decodes: list[tuple[str, float, float, float]] = []  # call, asked, began, done
        self.cancels: list[tuple[str, float, float]] = []  # call, asked, cancelled

    async def transcribe(
        self, audio: Float32Audio, language: str | None = None, call: str = ""
    ) -> Transcript:
        sync = getattr(self.inner, "transcribe_sync", None)
        if sync is None:
            return await self.inner.transcribe(audio, language)
        loop = asyncio.get_running_loop()
        asked = time.monotonic()
        try:
            return await loop.run_in_executor(
                self._executor, self._run, sync, audio, language, call, asked
            )
        except asyncio.CancelledError:
            self.cancels.append((call, asked, time.monotonic()))
            raise

    def _run(
        self, sync: Any, audio: Float32Audio, language: str | None, call: str, asked: float
    ) -> Transcript:
        began = time.monotonic()
        try:
            result: Transcript = sync(audio, language)
        finally:
            done = time.monotonic()
            self.records.append((began - asked, done - began, audio.size / 16000))
            self.decodes.append((call, asked, began, done))
        return result


class CallStt:
    """One call's view of the shared :class:`TimedStt`: its requests carry the call's id."""

    def __init__(self, timed: TimedStt, call: str) -> None:
        self.timed, self.call, self.name = timed, call, timed.name

    async def transcribe(self, audio: Float32Audio, language: str | None = None) -> Transcript:
        return await self.timed.transcribe(audio, language, self.call)


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
        self.turns: list[tuple[str, float, float]] = []  # call, last voice, transcript ready

    def on_event(self, event: object) -> None:
        """A caller's turn: its last voiced sample and when its transcript was in hand (end
        of turn + what the transcript still took after it)."""
        if isinstance(event, TurnEvent) and event.speaker == "caller":
            after = event.timings.get("endpointing_ms", 0.0) + event.timings.get("stt_ms", 0.0)
            self.turns.append((event.call_id, event.ended_at, event.ended_at + after / 1000))

    def take(self) -> dict[str, Any]:
        """What happened since the last call; the records start again empty."""
        stt, self.stt.records = self.stt.records, []
        decodes, self.stt.decodes = self.stt.decodes, []
        cancels, self.stt.cancels = self.stt.cancels, []
        turns, self.turns = self.turns, []
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
            "stt_requests": [[c, round(a, 4), round(b, 4), round(d, 4)] for c, a, b, d in decodes],
            "stt_cancels": [[c, round(a, 4), round(x, 4)] for c, a, x in cancels],
            "turns": [[c, round(v, 4), round(r, 4)] for c, v, r in turns],
        }


def measure_stt_spin(transcribe: Any, rounds: int = 8) -> SttSpin:
    """Whisper's CPU per decode of one corpus utterance: back to back, then each decode
    followed by a 10 ms and a 100 ms idle gap (threads left free to spin after a decode make
    its cost depend on what follows it). Runs before any call, with nothing else in the
    process busy."""
    prompt = next(p for p in load_prompts() if 1.0 <= p.audio.size / p.rate <= 3.0)
    audio = resample(prompt.audio, prompt.rate, 16000)
    transcribe(audio, "en")

    def series(gap_s: float) -> tuple[float, float]:
        cpu = time.process_time()
        wall = 0.0
        for _ in range(rounds):
            began = time.monotonic()
            transcribe(audio, "en")
            wall += time.monotonic() - began
            if gap_s:
                time.sleep(gap_s)
        return (time.process_time() - cpu) / rounds * 1000, wall / rounds * 1000

    busy, decode = series(0.0)
    gap10, _ = series(0.010)
    gap100, _ = series(0.100)
    return SttSpin(decode, busy, gap10, gap100)


async def serve() -> None:
    settings = Settings()
    started = time.perf_counter()
    built = build_engines(settings.voice, "en")
    stt, tts = TimedStt(built.stt), TimedTts(built.tts)
    engines = Engines(stt=stt, tts=tts, agent=built.agent, vad=built.vad)
    await warm_up(engines)
    sync = getattr(built.stt, "transcribe_sync", None)
    if sync is not None:  # Whisper: how its CPU per decode depends on the gaps after it
        print(f"stt_spin: {measure_stt_spin(sync).line()}", flush=True)
    bus = EventBus()  # one subscriber, as the API's event stream would be in production

    async def handler(media: MediaSession) -> None:
        # the production handler, its speech recognition tagged with the call's id
        call = dataclasses.replace(engines, stt=CallStt(stt, str(media.call_uuid)))
        await agent_handler(call, settings.voice, bus, language="en", greet=False)(media)

    media = settings.media.model_copy(update={"host": "127.0.0.1", "port": 0})
    server = await start_media_server(media, handler)
    print(
        f"engines: {stt.name}, {tts.name}, {engines.agent.name}, vad "
        f"{settings.voice.vad.engine} (loaded in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    stats = Stats(stt, tts)
    events = bus.subscribe()

    async def collect() -> None:
        while True:
            stats.on_event(await events.get())

    collector = asyncio.create_task(collect())
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
        collector.cancel()
        await server.close()


def _print_stats(stats: Stats) -> None:
    print(f"stats: {json.dumps(stats.take())}", flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
