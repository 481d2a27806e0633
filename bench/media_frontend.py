"""The benchmark's server side: the media server running a call's full front end.

Per call: decode slin, resample all of it to 16 kHz (what STT is fed, in ``stt_chunk_ms``
chunks), Silero VAD on every 32 ms window (at the line's 8 kHz by default, as the voice
session runs it), and paced playback of an echo of the caller (in place of STT/agent/TTS).
Runs in its own process; the orchestrator reads this process's own CPU time
(``time.process_time()``) over the window it measures.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import math
import os
import time
from dataclasses import asdict
from multiprocessing.connection import Connection

from media_load import raise_priority
from operadora.audio.framing import Reframer
from operadora.audio.resample import StreamResampler
from operadora.audio.vad import SileroVad
from operadora.audio.vad_batch import SileroBatch, SileroBatchRunner
from operadora.audio.vad_pcm import PcmVadRunner
from operadora.audiosocket.native import NativeSession
from operadora.audiosocket.pacing import Pacer
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
STT_CHUNK_MS = 100  # audio is resampled for STT in chunks this long (20: every frame)
LAG_BUCKET_S = 0.0005
LAG_BUCKETS = 1000
STALL_GAP_S = 0.004  # a pacer wake this long after the one before is recorded as a stall


Stall = tuple[float, float, float, float, float]


class StallProbe:
    """Where the server's time went when its pacer woke late: wraps the pacer's wake-up and
    reads the loop thread's scheduler counters (``/proc/thread-self/schedstat``: time run on
    a CPU, time waited on a run queue) at the end of each one. A gap of ``gap_s`` or more
    between the ends of two wake-ups (the writes of the second included) is recorded as
    ``(ended_at, gap, ran, queued, armed)`` seconds: ``ran`` is the thread's time on a CPU in
    it (its own work, the kernel's work in its system calls, and on a kernel without IRQ time
    accounting the softirqs that ran on its CPU), ``queued`` its wait for a CPU behind other
    processes, ``armed`` how soon after the gap began the pacer's timer was due; the rest of
    the gap the thread neither ran nor waited for a CPU: it slept (in ``epoll_wait``, its
    timer due after ``armed``) or its virtual CPU was held by the hypervisor (steal, which a
    KVM guest leaves out of ``ran``; a timer on a halted virtual CPU also fires only when the
    host runs that CPU again). One ``pread`` per wake-up, about 1,000 a second: counted in the
    server's CPU like the rest of it."""

    def __init__(self, pacer: Pacer, gap_s: float = STALL_GAP_S) -> None:
        self.gap_s = gap_s
        self.stalls: list[Stall] = []
        self._pacer = pacer
        self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        self._wake = pacer._wake
        self._last = self._read()
        self._due = math.inf  # when the pacer's timer was due, as the last wake-up left it
        pacer._wake = self._probe  # type: ignore[method-assign]

    def _read(self) -> tuple[float, int, int]:
        ran, queued, _ = os.pread(self._fd, 64, 0).split()
        return time.monotonic(), int(ran), int(queued)

    def _probe(self) -> None:
        self._wake()
        now = self._read()  # from the end of one wake-up to the end of the next (its writes)
        at, ran, queued = self._last
        if now[0] - at >= self.gap_s and len(self.stalls) < 100_000:
            self.stalls.append(
                (
                    now[0],
                    now[0] - at,
                    (now[1] - ran) * 1e-9,
                    (now[2] - queued) * 1e-9,
                    self._due - at,
                )
            )
        self._last = now
        pacer = self._pacer
        self._due = pacer._timer_tick * pacer.slot_s if pacer._timer is not None else math.inf

    def since(self, start: float) -> list[Stall]:
        return [stall for stall in self.stalls if stall[0] >= start]


def io_thread_cpu() -> float:
    """CPU seconds of the native engine's I/O thread (named ``operadora-media``), else 0."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        if "(operadora-media)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


class Frontend:
    """What every call runs; ``vad`` is ``batch`` (one shared model, scored in batches on the
    loop), ``silero`` (a detector per call, on the loop) or ``none``. A batched VAD is fed the
    calls' slin bytes (:class:`PcmVadRunner`, which cuts and converts the windows of all calls
    at once), or with ``vad_windows`` float32 windows cut per call by a :class:`Reframer`
    (:class:`SileroBatchRunner`, on a worker thread with ``vad_threaded``)."""

    def __init__(
        self,
        vad: str,
        vad_rate: int = VAD_RATE,
        receiver: bool = True,
        vad_threaded: bool = False,
        vad_windows: bool = False,
        stt_chunk_ms: int = STT_CHUNK_MS,
    ) -> None:
        self.vad = vad
        self.vad_threaded = vad_threaded
        self.vad_windows = vad_windows or vad_threaded
        self.receiver = receiver
        self.vad_rate = vad_rate
        self.stt_chunk_ms = stt_chunk_ms
        self.batch = SileroBatch(vad_rate) if vad == "batch" else None
        self._runner: SileroBatchRunner | None = None
        self._pcm_runner: PcmVadRunner | None = None
        self.windows = 0
        self.speech_windows = 0
        # how long after its frame was read each item reached the front end (0.5 ms buckets
        # to 500 ms, then one overflow): the native engine reads on its own thread, so a loop
        # that falls behind shows here, not in the paced writes
        self.lag_histogram = [0] * (LAG_BUCKETS + 1)

    def _result(self, probability: float) -> None:
        self.windows += 1
        self.speech_windows += probability > 0.5

    def _window_result(self, index: int, probability: float) -> None:
        self._result(probability)

    def runner(self) -> SileroBatchRunner | None:
        if self.batch is not None and self.vad_windows and self._runner is None:
            self._runner = SileroBatchRunner(
                self.batch, BATCH_WAIT_S, BATCH_MAX, threaded=self.vad_threaded
            )
        return self._runner

    def pcm_runner(self) -> PcmVadRunner | None:
        if self.batch is not None and not self.vad_windows and self._pcm_runner is None:
            self._pcm_runner = PcmVadRunner(self.batch, BATCH_WAIT_S, BATCH_MAX)
        return self._pcm_runner

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.close()
        if self._pcm_runner is not None:
            await self._pcm_runner.close()

    async def handle(self, session: MediaSession) -> None:
        to_stt: StreamResampler | None = None
        stt_pending = bytearray()
        stt_chunk_bytes = 0
        reframer = Reframer(self.vad_rate * 32 // 1000)
        runner = self.runner()
        pcm_runner = self.pcm_runner()
        stream = self.batch.stream() if self.batch is not None else None
        pcm_stream = pcm_runner.stream(self._window_result) if pcm_runner is not None else None
        single = SileroVad(self.vad_rate) if self.vad == "silero" else None
        result = self._result
        lag_histogram = self.lag_histogram
        monotonic = time.monotonic

        def on_item(item: InboundItem) -> None:
            nonlocal to_stt, stt_chunk_bytes
            if type(item) is not AudioIn:
                return
            lag = int((monotonic() - item.received_at) / LAG_BUCKET_S)
            lag_histogram[lag if lag < LAG_BUCKETS else LAG_BUCKETS] += 1
            pcm = item.pcm
            if to_stt is None:
                to_stt = StreamResampler(item.sample_rate, STT_RATE)
                stt_chunk_bytes = item.sample_rate * self.stt_chunk_ms // 1000 * 2
            stt_pending.extend(pcm)
            wide = None
            if len(stt_pending) >= stt_chunk_bytes:
                wide = to_stt.process_array(bytes(stt_pending))  # what STT would be fed
                stt_pending.clear()
            if pcm_runner is not None and pcm_stream is not None:
                if self.vad_rate == item.sample_rate:
                    pcm_runner.feed(pcm_stream, pcm)  # the VAD at the line's own rate
                elif wide is not None:
                    pcm_runner.feed(pcm_stream, wide.tobytes())  # or at STT's
            else:
                # the VAD at the line's own rate (as the voice session runs it), or at STT's
                vad_audio = pcm if self.vad_rate == item.sample_rate else wide
                if vad_audio is not None:
                    for window in reframer.push(vad_audio):
                        if runner is not None and stream is not None:
                            runner.submit(stream, window, result)
                        elif single is not None:
                            result(single.speech_probability(window))
            session.play(pcm, item.sample_rate)  # the echo, paced like agent audio

        try:
            if isinstance(session, AudioSocketSession | NativeSession) and self.receiver:
                # frames are handled as they are read (no inbox, no task switch per frame)
                session.set_receiver(on_item)
                async for _ in session.inbound():
                    pass
            else:
                async for item in session.inbound():
                    on_item(item)
        finally:
            if pcm_runner is not None and pcm_stream is not None:
                pcm_runner.close_stream(pcm_stream)


def server_main(
    conn: Connection,
    port: int,
    vad: str,
    use_uvloop: bool,
    reuse_port: bool,
    priority: int,
    vad_rate: int = VAD_RATE,
    vad_threaded: bool = False,
    vad_windows: bool = False,
    stt_chunk_ms: int = STT_CHUNK_MS,
    engine: str = "auto",
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
        frontend = Frontend(
            vad,
            vad_rate,
            vad_threaded=vad_threaded,
            vad_windows=vad_windows,
            stt_chunk_ms=stt_chunk_ms,
        )
        loop.run_until_complete(_serve(conn, port, frontend, reuse_port, engine))
    finally:
        loop.close()
        if profiler is not None and profile_to:
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.{os.getpid()}")


async def _serve(
    conn: Connection, port: int, frontend: Frontend, reuse_port: bool, engine: str
) -> None:
    settings = MediaSettings(port=port, keepalive_after_s=0.5, engine=engine)  # type: ignore[arg-type]
    server = await start_media_server(settings, frontend.handle, reuse_port=reuse_port)
    # the asyncio server's writes wait on its loop: probe the loop; the native engine writes
    # from its own thread, which the loop's stalls do not hold up
    probe = StallProbe(server.pacer) if isinstance(server.pacer, Pacer) else None
    freeze_heap()  # as the media server and the voice engines do once started
    conn.send(("ready", server.port, type(server).__name__))
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_command() -> None:
        command = conn.recv()
        if command == "mark":  # cheap: taken at the edges of the measured window
            conn.send(
                {
                    "cpu_s": time.process_time(),
                    "sys_s": os.times().system,  # the kernel's share (loopback TCP)
                    "io_thread_s": io_thread_cpu(),
                    "at": time.monotonic(),
                    "windows": frontend.windows,
                    "speech_windows": frontend.speech_windows,
                    "lag_histogram": list(frontend.lag_histogram),
                }
            )
        elif command == "stats":  # costly with many calls: taken outside the window
            conn.send(
                {
                    "sessions": server.sessions,
                    "stats": asdict(server.stats()),
                    "stalls": probe.since(time.monotonic() - 60.0) if probe is not None else [],
                }
            )
        elif not done.done():
            done.set_result(None)

    loop.add_reader(conn.fileno(), on_command)
    await done
    loop.remove_reader(conn.fileno())
    await server.close()
    await frontend.close()
    conn.send("stopped")
