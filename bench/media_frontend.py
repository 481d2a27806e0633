"""The benchmark's server side: the media server running a call's full front end.

Per call: decode slin, resample to 16 kHz (what STT is fed), Silero VAD on every 32 ms
window (at the line's 8 kHz by default, as the voice session runs it), and paced playback of
an echo of the caller (in place of STT/agent/TTS). Runs in its own process; the orchestrator
reads this process's own CPU time (``time.process_time()``) over the window it measures.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import os
import time
from dataclasses import asdict
from multiprocessing.connection import Connection

from media_load import raise_priority
from operadora.audio.framing import Reframer
from operadora.audio.resample import StreamResampler
from operadora.audio.vad import SileroVad
from operadora.audio.vad_batch import SileroBatch, SileroBatchRunner
from operadora.audiosocket.server import start_media_server
from operadora.audiosocket.session import AudioSocketSession
from operadora.audiosocket.workers import new_event_loop
from operadora.config import MediaSettings
from operadora.media import AudioIn, InboundItem, MediaSession
from operadora.runtime import freeze_heap

STT_RATE = 16000  # every call's audio is resampled to this, as STT is fed
VAD_RATE = 8000  # the line's own rate: the voice session runs Silero at 8 kHz on 8 kHz calls
BATCH_MAX = 256
BATCH_WAIT_S = 0.010  # the VAD answers at most 10 ms later than a per-call model would


class Frontend:
    """What every call runs; ``vad`` is ``batch`` (one shared model, scored in batches on the
    loop, or on a worker thread with ``vad_threaded``), ``silero`` (a detector per call, on the
    loop) or ``none``."""

    def __init__(
        self,
        vad: str,
        vad_rate: int = VAD_RATE,
        receiver: bool = True,
        vad_threaded: bool = False,
    ) -> None:
        self.vad = vad
        self.vad_threaded = vad_threaded
        self.receiver = receiver
        self.vad_rate = vad_rate
        self.batch = SileroBatch(vad_rate) if vad == "batch" else None
        self._runner: SileroBatchRunner | None = None
        self.windows = 0
        self.speech_windows = 0

    def _result(self, probability: float) -> None:
        self.windows += 1
        self.speech_windows += probability > 0.5

    def runner(self) -> SileroBatchRunner | None:
        if self.batch is not None and self._runner is None:
            self._runner = SileroBatchRunner(
                self.batch, BATCH_WAIT_S, BATCH_MAX, threaded=self.vad_threaded
            )
        return self._runner

    async def handle(self, session: MediaSession) -> None:
        to_stt: StreamResampler | None = None
        reframer = Reframer(self.vad_rate * 32 // 1000)
        runner = self.runner()
        stream = self.batch.stream() if self.batch is not None else None
        single = SileroVad(self.vad_rate) if self.vad == "silero" else None
        result = self._result

        def on_item(item: InboundItem) -> None:
            nonlocal to_stt
            if type(item) is not AudioIn:
                return
            if to_stt is None:
                to_stt = StreamResampler(item.sample_rate, STT_RATE)
            wide = to_stt.process_array(item.pcm)  # what STT would be fed
            # the VAD at the line's own rate (as the voice session runs it), or at STT's
            vad_audio = item.pcm if self.vad_rate == item.sample_rate else wide
            for window in reframer.push(vad_audio):
                if runner is not None and stream is not None:
                    runner.submit(stream, window, result)
                elif single is not None:
                    result(single.speech_probability(window))
            session.play(item.pcm, item.sample_rate)  # the echo, paced like agent audio

        if isinstance(session, AudioSocketSession) and self.receiver:
            # frames are handled as they are read (no inbox, no task switch per frame)
            session.set_receiver(on_item)
            async for _ in session.inbound():
                pass
        else:
            async for item in session.inbound():
                on_item(item)


def server_main(
    conn: Connection,
    port: int,
    vad: str,
    use_uvloop: bool,
    reuse_port: bool,
    priority: int,
    vad_rate: int = VAD_RATE,
    vad_threaded: bool = False,
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
        loop.run_until_complete(_serve(conn, port, vad, reuse_port, vad_rate, vad_threaded))
    finally:
        loop.close()
        if profiler is not None and profile_to:
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.{os.getpid()}")


async def _serve(
    conn: Connection, port: int, vad: str, reuse_port: bool, vad_rate: int, vad_threaded: bool
) -> None:
    frontend = Frontend(vad, vad_rate, vad_threaded=vad_threaded)
    settings = MediaSettings(port=port, keepalive_after_s=0.5)
    server = await start_media_server(settings, frontend.handle, reuse_port=reuse_port)
    freeze_heap()  # as the media server and the voice engines do once started
    conn.send(("ready", server.port))
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_command() -> None:
        command = conn.recv()
        if command == "mark":  # cheap: taken at the edges of the measured window
            conn.send(
                {
                    "cpu_s": time.process_time(),
                    "sys_s": os.times().system,  # the kernel's share (loopback TCP)
                    "at": time.monotonic(),
                    "windows": frontend.windows,
                    "speech_windows": frontend.speech_windows,
                }
            )
        elif command == "stats":  # costly with many calls: taken outside the window
            conn.send({"sessions": server.sessions, "stats": asdict(server.stats())})
        elif not done.done():
            done.set_result(None)

    loop.add_reader(conn.fileno(), on_command)
    await done
    loop.remove_reader(conn.fileno())
    await server.close()
    if frontend._runner is not None:
        await frontend._runner.close()
    conn.send("stopped")
