"""``operadora demo``: a small call center on this machine, with simulated callers.

It starts the PBX simulator (ARI on loopback, generated password), the engine (AudioSocket media
server, call control, the voice agent, the call store, the REST API and dashboard), places calls
from personas in English and Spanish at a steady rate,
shows each call live (state, who speaks, transcript lines as they happen) and ends with a
summary of outcomes, transcripts and latency. Everything runs offline on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr
from rich.console import Console
from rich.live import Live

from operadora import events as ev
from operadora.config import AriServerSettings, Settings
from operadora.sim.callers.arrivals import ArrivalSettings, arrivals
from operadora.sim.callers.audio import CallerAudio
from operadora.sim.callers.devices import (
    DEMO_DIALPLAN,
    DEMO_DIRECTORY,
    DID_CONTEXT,
    LINE_RATE,
    call_in,
    extension_dial_handler,
)
from operadora.sim.callers.extensions import Directory, DirectorySettings
from operadora.sim.callers.lines import AudioSocketLine
from operadora.sim.callers.live import CallView, DemoBoard, latency_summary, summary_table
from operadora.sim.callers.outcome import judge
from operadora.sim.callers.persona import CallerEvent, CallerReport, PersonaRun
from operadora.sim.callers.scenario import Persona, load_personas, shipped_personas
from operadora.sim.callers.voices import CallerVoice, TtsFactory, espeak_factory
from operadora.sim.faults import FaultInjector
from operadora.voice.engines import SpeechToText

log = logging.getLogger(__name__)

DemoLanguage = Literal["en", "es", "both"]
# A newcomer sees a bit of everything in the first five calls, alternating languages.
DEMO_ORDER = (
    "opening-hours-en",
    "sales-es",
    "human-en",
    "callback-es",
    "hangup-mid-sentence-en",
    "sales-en",
    "opening-hours-es",
    "callback-en",
    "human-es",
    "billing-dtmf-en",
    "hangup-mid-sentence-es",
)


CHAOS_DUPLICATES = 0.1
CHAOS_DROP_AFTER_S = 1.0  # after the call's media connected: during the greeting


class DemoError(Exception):
    """The demo cannot run as asked; the message says what to do."""


@dataclass(slots=True)
class DemoOptions:
    calls: int = 5
    language: DemoLanguage = "both"
    keep_running: bool = False
    rate_per_s: float = 0.2
    personas: tuple[str, ...] = ()  # shipped persona names, in order; default: DEMO_ORDER
    scenario_paths: tuple[Path, ...] = ()  # extra persona files or folders
    arrivals: Literal["uniform", "poisson"] = "uniform"
    seed: int | None = None
    live: bool = True
    caller_stt: bool = False  # callers transcribe what they hear (costs CPU)
    call_timeout_s: float = 120.0
    dashboard: bool = True
    route: Literal["sim", "direct"] = "sim"  # through the PBX simulator, or AudioSocket only
    directory: DirectorySettings | None = None  # who answers what the PBX dials
    chaos: bool = False  # drop the engine's events WebSocket mid-call, duplicate events


@dataclass(slots=True)
class DemoResult:
    calls: list[CallView]
    dashboard_url: str | None = None
    admin_token: str | None = None
    skipped_languages: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for c in self.calls if c.verdict is not None and c.verdict.ok is not False)


def pick_personas(
    available: Sequence[Persona], options: DemoOptions, languages: Sequence[str]
) -> list[Persona]:
    """The personas to call with, in order, ``options.calls`` of them (cycling)."""
    by_name = {p.name: p for p in available}
    if options.personas:
        unknown = [n for n in options.personas if n not in by_name]
        if unknown:
            raise DemoError(f"unknown persona(s): {', '.join(unknown)}; known: {sorted(by_name)}")
        order = [by_name[n] for n in options.personas]
    else:
        order = [by_name[n] for n in DEMO_ORDER if n in by_name]
        order += [p for p in available if p.name not in DEMO_ORDER]
    order = [p for p in order if p.language in languages]
    if not order:
        raise DemoError(f"no persona speaks {' or '.join(languages)}")
    return [order[i % len(order)] for i in range(options.calls)]


def _languages(option: DemoLanguage) -> list[str]:
    return ["en", "es"] if option == "both" else [option]


class Demo:
    def __init__(
        self,
        settings: Settings,
        options: DemoOptions,
        console: Console | None = None,
        *,
        caller_tts: TtsFactory | None = None,
        when_done: Callable[[DemoResult], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.console = console or Console()
        self.bus = ev.EventBus()
        self._tts_factory = caller_tts or espeak_factory()
        self._when_done = when_done
        self._voices: dict[str, Any] = {}  # language -> operadora.voice.session.Engines
        self._caller_stt: dict[str, SpeechToText] = {}
        self._by_call_id: dict[str, CallView] = {}
        self._by_channel: dict[str, CallView] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self.engine: Any = None
        self.simulator: Any = None
        self.faults = FaultInjector()
        self._chaos_tasks: set[asyncio.Task[None]] = set()
        self.board = DemoBoard([])
        self.result = DemoResult([])

    # ----- the stack ----------------------------------------------------------------------
    async def _start(self, stack: contextlib.AsyncExitStack, state_dir: Path) -> None:
        await self._load_voices()
        if self.options.route == "sim":
            await self._start_simulator(stack, state_dir)
        await self._start_engine(stack, state_dir)
        if self.simulator is not None:
            self._status("connecting the engine to the simulator's ARI…")
            try:
                await self.engine.wait_connected(15.0)
            except TimeoutError:
                raise DemoError(
                    f"the engine could not open the ARI events WebSocket of the simulator at "
                    f"{self.simulator.ari_url} within 15 s (see the log above)"
                ) from None

    async def _load_voices(self) -> None:
        from operadora.voice.errors import ProviderError
        from operadora.voice.factory import build_engines

        for language in _languages(self.options.language):
            self._status(f"loading the {language} voice agent (speech models)…")
            try:
                self._voices[language] = await asyncio.to_thread(
                    build_engines, self.settings.voice, language
                )
            except ProviderError as exc:
                message = f"the {language} voice agent cannot start: {exc}"
                if self.options.language != "both":
                    raise DemoError(message) from None
                self.result.skipped_languages.append(language)
                self.console.print(f"[yellow]skipping {language} calls:[/yellow] {message}")
        if not self._voices:
            raise DemoError("no voice agent could start")
        if self.options.caller_stt:
            from operadora.voice.factory import build_stt

            for language in self._voices:
                voice = self.settings.voice
                self._caller_stt[language] = await asyncio.to_thread(
                    build_stt, voice.stt, voice.models_dir, language
                )

    async def _start_simulator(self, stack: contextlib.AsyncExitStack, state_dir: Path) -> None:
        from operadora.sim.server import start_simulator

        self._status("starting the PBX simulator…")
        shipped = (resources.files("operadora.sim") / "data" / "extensions.conf").read_text(
            encoding="utf-8"
        )
        dialplan = state_dir / "extensions.conf"
        dialplan.write_text(shipped + DEMO_DIALPLAN, encoding="utf-8")
        password = secrets.token_urlsafe(18)
        sim_settings = self.settings.sim.model_copy(
            update={
                "host": "127.0.0.1",
                "port": _free_port("127.0.0.1", self.settings.sim.port),
                "password": SecretStr(password),
                "dialplan_file": dialplan,
            }
        )
        self.simulator = await start_simulator(sim_settings, extensions=[self.faults.extension])
        stack.push_async_callback(self.simulator.close)
        tts = CallerVoice(self._tts_factory)
        self.simulator.set_dial_handler(
            extension_dial_handler(
                Directory(self.options.directory or DEMO_DIRECTORY), tts, self._on_dialled
            )
        )

    def _engine_settings(self, state_dir: Path) -> Settings:
        s = self.settings
        media_port = _free_port("127.0.0.1", 0)
        servers: list[AriServerSettings] = []
        if self.simulator is not None:
            servers.append(
                AriServerSettings(
                    name="simulator",
                    url=self.simulator.ari_url,
                    username=self.simulator.username,
                    password=SecretStr(self.simulator.password),
                    app=s.asterisk.servers[0].app if s.asterisk.servers else "callcenter-ai",
                )
            )
        update: dict[str, Any] = {
            "log": s.log.model_copy(update={"level": "WARNING"}),
            "media": s.media.model_copy(update={"host": "127.0.0.1", "port": media_port}),
            "asterisk": s.asterisk.model_copy(
                update={"servers": servers, "media_address": f"127.0.0.1:{media_port}"}
            ),
            "store": s.store.model_copy(
                update={
                    "url": SecretStr(f"sqlite+aiosqlite:///{state_dir / 'demo.db'}"),
                    "recordings_dir": state_dir / "recordings",
                }
            ),
            "api": s.api.model_copy(update={"port": _free_port(s.api.host, s.api.port)}),
        }
        return s.model_copy(update=update)

    async def _start_engine(self, stack: contextlib.AsyncExitStack, state_dir: Path) -> None:
        from operadora.engine import Engine

        self._status("starting the engine (media server, call control, voice agent)…")
        settings = self._engine_settings(state_dir)
        with_api = self.options.dashboard
        self.engine = Engine(settings, agent=self._agent(settings), bus=self.bus, with_api=with_api)
        await self.engine.start()
        stack.push_async_callback(self.engine.stop)
        if with_api:
            token, _ = await self.engine.store.tokens.create("admin", "demo")
            self.result.admin_token = token
            host, port = settings.api.host, settings.api.port
            await _wait_port(host, port, 15.0)
            self.result.dashboard_url = f"http://{host}:{port}/"

    def _agent(self, settings: Settings) -> Any:
        """The engine's agent: the voice agent in the language of the call's caller."""
        from operadora.voice.session import VoiceAgentSession

        fallback = next(iter(self._voices))

        async def run(media: Any, context: Any) -> None:
            view = self._by_channel.get(context.channel_id) or self._by_call_id.get(context.call_id)
            language = view.persona.language if view is not None else fallback
            session = VoiceAgentSession(
                media,
                self._voices.get(language, self._voices[fallback]),
                settings.voice,
                self.bus,
                context.call_id,
                language=language,
            )
            await session.run()

        return run

    def _status(self, text: str) -> None:
        self.console.print(f"[dim]• {text}[/dim]")

    def _on_dialled(self, endpoint: str, action: str) -> None:
        self.console.log(f"[yellow]{endpoint} rings; it will {action.replace('_', ' ')}[/yellow]")

    # ----- the calls ----------------------------------------------------------------------
    async def run(self) -> DemoResult:
        own = load_personas(self.options.scenario_paths)
        personas = [p for p in shipped_personas() if p.name not in {o.name for o in own}] + own
        if own and not self.options.personas:  # callers of your own: they make the calls
            self.options.personas = tuple(p.name for p in own)
        with tempfile.TemporaryDirectory(prefix="operadora-demo-") as tmp:
            async with contextlib.AsyncExitStack() as stack:
                await self._start(stack, Path(tmp))
                chosen = pick_personas(personas, self.options, list(self._voices))
                self.board = DemoBoard(self._header())
                self.board.calls = [CallView(i, p) for i, p in enumerate(chosen)]
                self.result.calls = self.board.calls
                events = asyncio.create_task(self._follow_events(), name="demo-events")
                try:
                    await self._show(self._place_calls())
                finally:
                    events.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await events
                self.faults.clear()
                self._chaos_report()
                compact = self.console.width < 110
                self.console.print(summary_table(self.board.calls, compact=compact))
                self.console.print(latency_summary(self.board.calls))
                self.console.print(
                    f"[bold]{self.result.passed}/{len(self.board.calls)}[/bold] calls ended "
                    "as their persona expected."
                )
                self._hints()
                if self._when_done is not None:
                    await self._when_done(self.result)
                if self.options.keep_running and self.result.dashboard_url:
                    self.console.print(
                        f"Dashboard still up at {self.result.dashboard_url} (Ctrl-C to stop)."
                    )
                    await asyncio.Event().wait()
        return self.result

    def _hints(self) -> None:
        if self.result.skipped_languages:
            self.console.print(
                "[dim]Spanish calls need the multilingual speech model: "
                "operadora models install whisper-base[/dim]"
            )
        if not self.options.keep_running and self.result.dashboard_url:
            self.console.print(
                "[dim]Add --keep-running to browse these calls on the dashboard afterwards.[/dim]"
            )
        elif self.simulator is not None:
            sim = self.simulator
            self.console.print(
                f"[dim]Try a fault while it runs: curl -u {sim.username}:{sim.password} "
                f"-X POST {sim.base_url}/sim/faults/ws-drop[/dim]"
            )

    def _header(self) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        if self.simulator is not None:
            rows.append(("PBX simulator", f"{self.simulator.ari_url}  (ARI, basic auth)"))
            rows.append(("ARI user", self.simulator.username))
            rows.append(("ARI password", f"{self.simulator.password}  (generated)"))
        else:
            rows.append(("PBX", "direct AudioSocket route (dialplan extension 100)"))
        rows.append(("media server", f"127.0.0.1:{self.engine.media_server.port} (AudioSocket)"))
        if self.result.dashboard_url:
            rows.append(("dashboard", self.result.dashboard_url))
            rows.append(("admin token", f"{self.result.admin_token}  (generated)"))
        rows.append(
            ("calls", f"{self.options.calls}, about one every {1 / self.options.rate_per_s:.1f} s")
        )
        if self.options.chaos and self.simulator is not None:
            rows.append(
                (
                    "faults",
                    f"events WebSocket dropped {CHAOS_DROP_AFTER_S:g} s into each call, "
                    f"{CHAOS_DUPLICATES:.0%} of events duplicated",
                )
            )
        return rows

    async def _show(self, work: Any) -> None:
        if not self.options.live:
            for name, value in self.board.header:
                self.console.print(f"[bold]{name}:[/bold] {value}")
            await work
            return
        with Live(self.board, console=self.console, refresh_per_second=8, transient=False):
            await work

    def _arm_chaos(self) -> None:
        if not (self.options.chaos and self.simulator is not None):
            return
        self.faults.duplicate_events(count=None, probability=CHAOS_DUPLICATES)

    def _chaos_report(self) -> None:
        if not (self.options.chaos and self.simulator is not None):
            return
        c = self.faults.counters
        self.console.print(
            f"Faults injected: {c.ws_drops} WebSocket drops, {c.duplicated} duplicated events "
            f"(out of {c.events_seen}); the engine reconnected and resynchronised each time."
        )

    async def _place_calls(self) -> None:
        self._arm_chaos()
        settings = ArrivalSettings(
            rate_per_s=self.options.rate_per_s,
            process=self.options.arrivals,
            seed=self.options.seed,
        )
        calls: list[asyncio.Task[None]] = []
        async for arrival, view in arrivals(self.board.calls, len(self.board.calls), settings):
            calls.append(asyncio.create_task(self._call(view), name=f"demo-call-{arrival.index}"))
        await asyncio.gather(*calls)

    async def _call(self, view: CallView) -> None:
        persona = view.persona
        view.state, view.started_at = "dialing", time.monotonic()
        tts = CallerVoice(self._tts_factory, persona.voice)
        stt = self._caller_stt.get(persona.language)
        on_event = self._on_caller_event(view)
        try:
            if self.simulator is not None:
                call = call_in(
                    self.simulator,
                    persona,
                    tts,
                    stt,
                    context=DID_CONTEXT,
                    extension=persona.did,
                    on_line=lambda line: self._by_channel.__setitem__(line.channel_id, view),
                    on_event=on_event,
                )
            else:
                call = self._call_direct(view, tts, stt, on_event)
            view.state = "talking"
            view.report = await asyncio.wait_for(call, self.options.call_timeout_s)
        except (TimeoutError, OSError) as exc:
            view.detail = f"{type(exc).__name__}: {exc}"
            log.warning("demo call %d failed: %s", view.index + 1, exc)
        if view.call_id:
            ended = self._ended.setdefault(view.call_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), 5.0)
        view.ended_at = time.monotonic()
        view.speaking = ""
        view.state = "ended"
        view.verdict = judge(view.events, view.report, persona.expect)
        if view.report is None:
            view.verdict.outcome, view.verdict.ok = "failed", False

    async def _call_direct(
        self,
        view: CallView,
        tts: CallerVoice,
        stt: SpeechToText | None,
        on_event: Callable[[CallerEvent], None],
    ) -> CallerReport:
        """The seed's direct route: the persona connects to the media server as AudioSocket()."""
        audio = CallerAudio(LINE_RATE)
        line = AudioSocketLine("127.0.0.1", self.engine.media_server.port, audio)
        view.call_id = str(line.call_uuid)
        self._by_call_id[view.call_id] = view
        try:
            await line.connect()
            return await PersonaRun(view.persona, audio, line, tts, stt, on_event=on_event).run()
        finally:
            await line.close()

    def _on_caller_event(self, view: CallView) -> Callable[[CallerEvent], None]:
        def on_event(event: CallerEvent) -> None:
            if event.kind == "state":
                view.detail = event.text
                if event.text == "speaking":
                    view.speaking = "caller"
            elif event.kind == "said":
                view.speaking = "caller"
                if event.text.endswith("—"):  # cut short: the agent never gets this turn
                    self.board.say(view, "caller", event.text + " (hangs up)")
            elif event.kind == "dtmf":
                self.board.say(view, "caller", f"(presses {event.text})")
            elif event.kind == "heard" and not view.events:
                self.board.say(view, "agent", event.text)
            elif event.kind == "ended":
                view.detail = {"caller": "caller hung up", "far_end": "the line hung up"}.get(
                    event.text, event.text
                )

        return on_event

    async def _follow_events(self) -> None:
        queue = self.bus.subscribe()
        try:
            while True:
                self._on_domain_event(await queue.get())
        finally:
            self.bus.unsubscribe(queue)

    def _on_domain_event(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.CallArrivedEvent) and event.channel_id in self._by_channel:
            arrived = self._by_channel[event.channel_id]
            arrived.call_id = event.call_id
            self._by_call_id[event.call_id] = arrived
        view = self._by_call_id.get(event.call_id)
        if view is None:
            return
        view.events.append(event)
        if isinstance(event, ev.SpeakingEvent):
            if event.speaking:
                view.speaking = event.speaker
            elif view.speaking == event.speaker:
                view.speaking = ""
        elif isinstance(event, ev.TurnEvent) and event.text:
            text = event.text + (" …(interrupted)" if event.interrupted else "")
            self.board.say(view, event.speaker, text)
        elif isinstance(event, ev.ActionRequestedEvent):
            target = f" → {event.target}" if event.target else ""
            self.board.note(view, f"agent asks call control: {event.action}{target}")
        elif isinstance(event, ev.TransferEvent):
            self.board.note(view, f"transfer {event.kind} → {event.target}: {event.state}")
        elif isinstance(event, ev.DtmfEvent):
            view.detail = f"agent got key {event.digit}"
        elif isinstance(event, ev.CallEndedEvent):
            self._ended.setdefault(event.call_id, asyncio.Event()).set()
        elif isinstance(event, ev.MediaConnectedEvent) and self.options.chaos:
            self._drop_later(view)

    def _drop_later(self, view: CallView) -> None:
        """Chaos: drop the engine's events WebSocket while this call is in conversation."""

        async def drop() -> None:
            await asyncio.sleep(CHAOS_DROP_AFTER_S)
            if view.state != "ended" and await self.faults.drop_websockets("abort"):
                self.board.note(view, "fault: the engine's events WebSocket was dropped")

        task = asyncio.get_running_loop().create_task(drop())
        self._chaos_tasks.add(task)
        task.add_done_callback(self._chaos_tasks.discard)


async def _wait_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise DemoError(f"the dashboard did not start on {host}:{port}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


def _free_port(host: str, preferred: int) -> int:
    """``preferred`` when it can be bound, else a free port the system picks."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise DemoError(f"no free port on {host}")


async def run_demo(
    settings: Settings, options: DemoOptions, console: Console | None = None
) -> DemoResult:
    return await Demo(settings, options, console).run()
