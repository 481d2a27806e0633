"""The benchmark's server side: the media server running a call's full front end.

Per call: decode slin, resample to 16 kHz, Silero VAD on every 32 ms window, and paced
playback of an echo of the caller (in place of STT/agent/TTS). Runs in its own process; the
orchestrator reads this process's own CPU time (``time.process_time()``) over the window it
measures.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import os
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

from media_load import raise_priority
from operadora.audio.framing import Reframer
from operadora.audio.resample import StreamResampler
from operadora.audio.vad import SileroVad
from operadora.audio.vad_batch import SileroBatch, SileroBatchStream, Window
from operadora.audiosocket.server import start_media_server
from operadora.audiosocket.workers import new_event_loop
from operadora.config import MediaSettings
from operadora.media import AudioIn, MediaSession

VAD_RATE = 16000
BATCH_MAX = 256
BATCH_WAIT_S = 0.010  # the VAD answers at most 10 ms later than a per-call model would


class Frontend:
    """What every call runs; ``vad`` is ``batch`` (one shared model) or ``silero`` (per call)."""

    def __init__(self, vad: str, vad_rate: int = VAD_RATE) -> None:
        self.vad = vad
        self.vad_rate = vad_rate
        self.batch = SileroBatch(vad_rate) if vad == "batch" else None  # "none": no VAD
        self._pending: dict[SileroBatchStream, list[Window]] = {}
        self._count = 0
        self._flush_scheduled = False
        self.windows = 0
        self.speech_windows = 0

    def _submit(self, stream: SileroBatchStream, window: Window) -> None:
        queued = self._pending.get(stream)
        if queued is None:
            self._pending[stream] = [window]
        else:
            queued.append(window)  # a call that fell behind: its windows go in later rounds
        self._count += 1
        if self._count >= BATCH_MAX:
            self._flush()
        elif not self._flush_scheduled:
            # windows that arrive within BATCH_WAIT_S share one model run
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(BATCH_WAIT_S, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.batch is None:
            return
        pending = self._pending
        while pending:
            # one round scores the oldest window of every call (a call's windows are a sequence)
            items = [(stream, windows.pop(0)) for stream, windows in pending.items()]
            probs = self.batch.score(items)
            self.windows += len(probs)
            self.speech_windows += int((probs > 0.5).sum())
            for stream, _ in items:
                if not pending[stream]:
                    del pending[stream]
        self._count = 0

    async def handle(self, session: MediaSession) -> None:
        resampler: StreamResampler | None = None
        reframer = Reframer(self.vad_rate * 32 // 1000)
        stream = self.batch.stream() if self.batch is not None else None
        single = SileroVad(self.vad_rate) if self.vad == "silero" else None
        async for item in session.inbound():
            if type(item) is not AudioIn:
                continue
            if resampler is None:
                resampler = StreamResampler(item.sample_rate, self.vad_rate)
            for window in reframer.push(resampler.process(item.pcm)):
                if stream is not None:
                    self._submit(stream, window)
                elif single is not None:
                    self.windows += 1
                    self.speech_windows += single.speech_probability(window) > 0.5
            session.play(item.pcm, item.sample_rate)  # the echo, paced like agent audio


def server_main(
    conn: Connection,
    port: int,
    vad: str,
    use_uvloop: bool,
    reuse_port: bool,
    priority: int,
    vad_rate: int = VAD_RATE,
) -> None:
    raise_priority(priority)
    # peers that vanish when a load step ends would log one warning each
    logging.getLogger("operadora.audiosocket").setLevel(logging.ERROR)
    loop = new_event_loop(use_uvloop)
    profile_to = os.environ.get("OPERADORA_BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_to else None
    if profiler is not None:
        profiler.enable()
    try:
        loop.run_until_complete(_serve(conn, port, vad, reuse_port, vad_rate))
    finally:
        loop.close()
        if profiler is not None and profile_to:
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.{os.getpid()}")


async def _serve(conn: Connection, port: int, vad: str, reuse_port: bool, vad_rate: int) -> None:
    frontend = Frontend(vad, vad_rate)
    settings = MediaSettings(port=port, keepalive_after_s=0.5)
    server = await start_media_server(settings, frontend.handle, reuse_port=reuse_port)
    conn.send(("ready", server.port))
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_command() -> None:
        command = conn.recv()
        if command == "mark":
            stats = server.stats()
            snapshot: dict[str, Any] = {
                "cpu_s": time.process_time(),
                "at": time.monotonic(),
                "sessions": server.sessions,
                "stats": asdict(stats),
                "windows": frontend.windows,
                "speech_windows": frontend.speech_windows,
            }
            conn.send(snapshot)
        elif not done.done():
            done.set_result(None)

    loop.add_reader(conn.fileno(), on_command)
    await done
    loop.remove_reader(conn.fileno())
    await server.close()
    conn.send("stopped")
