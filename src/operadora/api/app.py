"""``create_app``: the REST API, the live stream, ``/metrics`` and the dashboard at ``/``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from operadora import __version__
from operadora.api.actions import CallActions
from operadora.api.auth import TokenAuth, Viewer
from operadora.api.errors import ERROR_RESPONSES, install_error_handlers
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
    app.state.store = store
    app.state.bus = bus
    app.state.actions = actions
    app.state.services = services
    app.state.live = services.live
    app.state.state = state
    app.state.rate_limiter = state.rate_limiter
    app.state.auth = TokenAuth(store.tokens)
    install_error_handlers(app)
    app.include_router(router)

    @app.get("/metrics", tags=["metrics"], responses=ERROR_RESPONSES, response_class=Response)
    async def metrics(_: Viewer) -> Response:
        """Prometheus metrics (scrape with a viewer token as bearer)."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app
