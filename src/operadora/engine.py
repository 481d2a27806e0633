"""One running Operadora engine.

It assembles: an ARI client, events WebSocket and Stasis router per configured Asterisk
server; the AudioSocket media server whose connections call control matches to calls; the
voice agent run on each call; the event bus every component publishes to; and the consumer
of the agent's requests (``ActionRequestedEvent``) that call control executes; the shared
state (``operadora.state``: the rate limit per caller ID, the cluster event bus) given to call
control and to the API; and, in the background, the telephony hardware detection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from operadora import events as ev
from operadora.ari.client import AriClient
from operadora.ari.operations import Operation
from operadora.ari.websocket import EventStream
from operadora.calls.actions import EngineCallActions
from operadora.calls.agent import CallAgent
from operadora.calls.call import CallContext
from operadora.calls.resync import recover, resync
from operadora.calls.services import CallService
from operadora.calls.stasis import StasisRouter
from operadora.config import AriServerSettings, Settings
from operadora.media import MediaSession
from operadora.state import StateBackend, open_state

if TYPE_CHECKING:
    from operadora.hardware.models import HardwareReport

log = logging.getLogger(__name__)

AgentFactory = Callable[[Settings, ev.EventBus], CallAgent]
HARDWARE_DETECTION_TIMEOUT_S = 30.0  # detection runs beside the calls; it never delays them


class EngineStartError(Exception):
    """Something the engine needs at start is not there (e.g. the Redis of ``state``)."""


def default_instance_id(settings: Settings) -> str:
    """This engine's name when ``state.instance_id`` is unset: host name and media port.

    Stable across restarts of the same installation, and distinct for two engines on one
    machine (they cannot share the AudioSocket port), so the close-out of calls a crashed run
    left open on restart touches only this engine's calls.
    """
    return f"{socket.gethostname()}:{settings.media.port}"


@dataclass(slots=True)
class AriConnection:
    """Everything that talks to one Asterisk server."""

    client: AriClient
    stream: EventStream
    router: StasisRouter
    task: asyncio.Task[None] | None = None
    resyncs: int = 0


@dataclass(slots=True)
class EngineStatus:
    servers: dict[str, bool] = field(default_factory=dict)  # name -> events connected
    live_calls: int = 0
    ended_calls: int = 0
    media_port: int = 0


class Engine:
    """Start with :meth:`start` (or ``async with``); :meth:`stop` hangs up and closes all."""

    def __init__(
        self,
        settings: Settings,
        *,
        agent: CallAgent | None = None,
        bus: ev.EventBus | None = None,
        agent_factory: AgentFactory | None = None,
        with_store: bool = False,
        with_api: bool = False,
        rate_limit: bool = True,
        detect_hardware: bool = True,
    ) -> None:
        self.settings = settings
        self.bus = bus or ev.EventBus()
        self._agent = agent
        self._agent_factory = agent_factory
        self.service: CallService | None = None
        self.actions: EngineCallActions | None = None
        self.connections: dict[str, AriConnection] = {}
        self.media_server: Any = None
        self._actions_task: asyncio.Task[None] | None = None
        self._actions: asyncio.Queue[ev.DomainEvent] | None = None
        self._with_store = with_store or with_api
        self._with_api = with_api
        self._rate_limit = rate_limit
        self._detect_hardware = detect_hardware
        self.instance = settings.state.instance_id or default_instance_id(settings)
        self.state: StateBackend | None = None
        self.hardware: HardwareReport | None = None  # set once the detection at start is done
        self._hardware_task: asyncio.Task[None] | None = None
        self.app: Any = None
        self.store: Any = None
        self.recorder: Any = None
        self._api: Any = None
        self._api_task: asyncio.Task[None] | None = None

    @property
    def calls(self) -> CallService:
        if self.service is None:
            raise RuntimeError("the engine is not started")
        return self.service

    async def start(self) -> Engine:
        from operadora.audiosocket.server import start_media_server

        settings = self.settings
        agent = self._agent or (self._agent_factory or default_agent)(settings, self.bus)
        state_settings = settings.state.model_copy(update={"instance_id": self.instance})
        self.state = open_state(state_settings, settings.api, self.bus)
        self.service = CallService(
            agent=agent,
            bus=self.bus,
            media_address=settings.asterisk.media_address,
            media_format=settings.asterisk.media_format,
            media_connect_timeout_s=settings.asterisk.media_connect_timeout_s,
            instance=self.instance,
            rate_limiter=self.state.rate_limiter if self._rate_limit else None,
            refusal_media=settings.asterisk.refusal_media,
            refusal_max_s=settings.asterisk.refusal_max_s,
        )
        self.actions = EngineCallActions(self.service)
        try:
            try:
                await self.state.start()
            except Exception as exc:  # Redis unreachable, refused, wrong URL
                raise EngineStartError(
                    f"cannot start the shared state (state.backend={settings.state.backend}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if self._with_store:  # first, so the recorder sees every event of every call
                await self._start_store()
            self._actions = self.bus.subscribe()
            self._actions_task = asyncio.get_running_loop().create_task(self._run_actions())
            self.media_server = await start_media_server(settings.media, self.service.on_media)
            for server in settings.asterisk.servers:
                self._connect(server)
            if self._with_api:
                self._start_api()
            if self._detect_hardware:
                self._hardware_task = asyncio.get_running_loop().create_task(
                    self._detect(), name="hardware-detection"
                )
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start_store(self) -> None:
        from operadora.store import Store
        from operadora.store.recorder import CallRecorder

        self.store = await Store.open(self.settings.store)
        self.recorder = CallRecorder(
            self.store, self.bus, actions=self.actions, instance=self.instance
        )
        await self.recorder.start()

    def _start_api(self) -> None:
        from operadora.api.app import api_server, create_app

        self.app = create_app(self.settings, self.store, self.bus, self.actions, state=self.state)
        # ends the dashboards' event streams when it shuts down; the engine owns the signals
        self._api = api_server(self.app, self.settings)
        self._api_task = asyncio.get_running_loop().create_task(self._api.serve(), name="api")

    async def _detect(self) -> None:
        """Detect the telephony hardware once (``detect_hardware`` logs the one-line result)."""
        from operadora.hardware import detect_hardware

        ari = None
        if self.connections:
            ari = ari_get(next(iter(self.connections.values())).client)
        try:
            async with asyncio.timeout(HARDWARE_DETECTION_TIMEOUT_S):
                self.hardware = await detect_hardware(self.settings, ari=ari)
        except TimeoutError:
            log.warning(
                "telephony hardware detection took over %.0f s; given up",
                HARDWARE_DETECTION_TIMEOUT_S,
            )
        except Exception:  # detection must never take the engine down
            log.warning("telephony hardware detection failed", exc_info=True)

    def _connect(self, server: AriServerSettings) -> None:
        service = self.calls
        client = AriClient(server)
        service.add_client(client)
        router = StasisRouter(service, client.name, self.actions, app=client.app)

        async def on_connect(reconnected: bool) -> None:
            alone = self.settings.state.backend == "memory"  # the only engine on this Asterisk
            if reconnected:
                connection.resyncs += 1
                await resync(service, client, router if alone else None)
            elif alone:
                await recover(service, client, router)

        stream = EventStream(
            client,
            router,
            on_connect=on_connect,
            subscribe_all=server.subscribe_all,
            wanted=router.wanted,
        )
        connection = AriConnection(client, stream, router)
        connection.task = asyncio.get_running_loop().create_task(
            stream.run(), name=f"ari-events-{client.name}"
        )
        self.connections[client.name] = connection

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Wait until every server's events WebSocket is open."""
        async with asyncio.timeout(timeout_s):
            for connection in self.connections.values():
                await connection.stream.connected.wait()

    def status(self) -> EngineStatus:
        service = self.service
        return EngineStatus(
            servers={n: c.stream.connected.is_set() for n, c in self.connections.items()},
            live_calls=len(service.calls) if service else 0,
            ended_calls=service.ended_calls if service else 0,
            media_port=int(getattr(self.media_server, "port", 0) or 0),
        )

    async def _run_actions(self) -> None:
        assert self._actions is not None
        while True:
            event = await self._actions.get()
            if not isinstance(event, ev.ActionRequestedEvent):
                continue
            if event.action == "hangup":
                self.calls.spawn(
                    self.calls.hangup(event.call_id, event.requested_by or "agent"),
                    name=f"action-hangup-{event.call_id}",
                )
            else:
                log.info(
                    "call %s: action %r to %r requested by %s (not handled by call control yet)",
                    event.call_id,
                    event.action,
                    event.target,
                    event.requested_by,
                    extra={"call_id": event.call_id},
                )

    async def stop(self) -> None:
        if self._hardware_task is not None:
            self._hardware_task.cancel()
            await asyncio.gather(self._hardware_task, return_exceptions=True)
            self._hardware_task = None
        if self.service is not None:
            await self.service.close()
        for connection in self.connections.values():
            await connection.stream.stop()
            if connection.task is not None:
                connection.task.cancel()
                await asyncio.gather(connection.task, return_exceptions=True)
            await connection.client.close()
        self.connections.clear()
        if self._actions_task is not None:
            self._actions_task.cancel()
            await asyncio.gather(self._actions_task, return_exceptions=True)
        if self._actions is not None:
            self.bus.unsubscribe(self._actions)
        if self.media_server is not None:
            await self.media_server.close()
            self.media_server = None
        if self._api is not None and self._api_task is not None:
            self._api.should_exit = True
            await asyncio.gather(self._api_task, return_exceptions=True)
            self._api = self._api_task = None
        if self.recorder is not None:
            await self.recorder.stop()
            self.recorder = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self.state is not None:
            await self.state.stop()
            self.state = None

    async def __aenter__(self) -> Engine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def ari_get(client: AriClient) -> Callable[[str], Awaitable[Any]]:
    """``GET <path under the ARI root>`` through the engine's client (hardware detection)."""

    async def get(path: str) -> Any:
        return await client.call(Operation("any", "get", "GET", path, (), "object", True))

    return get


def default_agent(settings: Settings, bus: ev.EventBus) -> CallAgent:
    """The configured voice agent (``operadora.voice``), its engines loaded once per process."""
    from operadora.voice.engines import CallerInfo
    from operadora.voice.factory import build_engines
    from operadora.voice.session import VoiceAgentSession

    engines = build_engines(settings.voice)

    async def run(media: MediaSession, context: CallContext) -> None:
        session = VoiceAgentSession(
            media,
            engines,
            settings.voice,
            bus,
            context.call_id,
            caller=CallerInfo(context.caller_id, context.caller_name, context.did),
        )
        await session.run()

    return run
