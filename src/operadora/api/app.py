"""``create_app``: the REST API, the live stream, ``/metrics`` and the dashboard at ``/``."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from operadora import __version__
from operadora.api.actions import CallActions
from operadora.api.auth import TokenAuth, Viewer
from operadora.api.errors import ERROR_RESPONSES, install_error_handlers
from operadora.api.hardware import router as hardware_router
from operadora.api.live import LiveView
from operadora.api.routes import router
from operadora.config import Settings
from operadora.events import EventBus
from operadora.metrics import MetricsRecorder
from operadora.state import StateBackend, open_state
from operadora.store import Store

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)


class ApiServices:
    """What the app runs beside its routes; started by the app's lifespan (or by the engine
    with ``start()``/``stop()`` when it mounts the app inside another one)."""

    def __init__(
        self, store: Store, bus: EventBus, state: StateBackend, *, owns_state: bool
    ) -> None:
        self.store, self.bus, self.state = store, bus, state
        self.live = LiveView(state.cluster_bus)
        self.metrics = MetricsRecorder(bus)
        self._owns_state = owns_state
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.live.load(self.store)
        await self.live.start()
        await self.metrics.start()
        if self._owns_state:
            await self.state.start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._owns_state:
            await self.state.stop()
        await self.metrics.stop()
        await self.live.stop()


class ApiServer(uvicorn.Server):
    """uvicorn for the API: ends the dashboards' event streams first when it shuts down
    (uvicorn otherwise waits for those endless responses), and leaves signals to its owner
    unless ``handle_signals``."""

    def __init__(self, config: uvicorn.Config, *, handle_signals: bool = False) -> None:
        super().__init__(config)
        self._handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        live = getattr(getattr(app, "state", None), "live", None)
        if isinstance(live, LiveView):
            live.close_streams()
        await super().shutdown(sockets)


def api_server(app: FastAPI, settings: Settings, *, handle_signals: bool = False) -> ApiServer:
    """The server for ``app`` on ``api.host:api.port``."""
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log.level.lower(),
        timeout_graceful_shutdown=5,
    )
    return ApiServer(config, handle_signals=handle_signals)


def create_app(
    settings: Settings,
    store: Store,
    bus: EventBus,
    actions: CallActions | None = None,
    *,
    state: StateBackend | None = None,
) -> FastAPI:
    """The API app. ``actions`` is call control (hang up, record); ``state`` the shared
    state backend (built from ``settings.state`` when not given, and then owned by the app)."""
    owns_state = state is None
    if state is None:
        state = open_state(settings.state, settings.api, bus)
    services = ApiServices(store, bus, state, owns_state=owns_state)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="Operadora",
        version=__version__,
        description="Live calls, call records and actions of an Operadora call center.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.bus = bus
    app.state.actions = actions
    app.state.services = services
    app.state.live = services.live
    app.state.state = state
    app.state.rate_limiter = state.rate_limiter
    app.state.auth = TokenAuth(store.tokens)
    app.state.heartbeat_s = 15.0  # keep-alive comments on the event stream
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(hardware_router)

    @app.get("/metrics", tags=["metrics"], responses=ERROR_RESPONSES, response_class=Response)
    async def metrics(_: Viewer) -> Response:
        """Prometheus metrics (scrape with a viewer token as bearer)."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app
