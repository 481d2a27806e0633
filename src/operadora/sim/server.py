"""The ARI-compatible PBX simulator server: ``start_simulator(settings) -> Simulator``.

HTTP REST under ``/ari`` and the events WebSocket ``/ari/events``, basic auth, on
``settings.host`` (127.0.0.1 by default). Extensions (callers, fault injection, ``/sim/...``
control routes) are callables ``(simulator, app)`` run before the server starts: they may add
routes, middlewares and startup/cleanup hooks to the aiohttp application.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path

from aiohttp import web

from operadora.config import SimSettings, require_secret
from operadora.sim import calls
from operadora.sim.dialplan.conf import parse_sections
from operadora.sim.dialplan.plan import parse_dialplan
from operadora.sim.dialplan.queues import parse_queues
from operadora.sim.endpoints import Endpoint, EndpointRegistry, parse_pjsip
from operadora.sim.lines import DialHandler, Line
from operadora.sim.pbx import Pbx, PbxConfig, PbxError
from operadora.sim.routes import bridges, channels, events, misc
from operadora.sim.routes.params import PBX_KEY, json_response
from operadora.sim.sip.ua import SipUserAgent

log = logging.getLogger(__name__)

Extension = Callable[["Simulator", web.Application], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REALM = "Asterisk REST Interface"


def _shipped(name: str) -> str:
    return resources.files("operadora.sim").joinpath("data", name).read_text(encoding="utf-8")


def _read(path: Path | None, shipped: str) -> tuple[str, str]:
    if path is None:
        return _shipped(shipped), f"(shipped) {shipped}"
    return Path(path).expanduser().read_text(encoding="utf-8"), str(path)


def build_pbx(settings: SimSettings) -> Pbx:
    """The simulated Asterisk from the configured (or shipped) configuration files."""
    text, source = _read(settings.dialplan_file, "extensions.conf")
    dialplan = parse_dialplan(text, source)
    text, source = _read(settings.queues_file, "queues.conf")
    queues = parse_queues(text, source)
    text, source = _read(settings.musiconhold_file, "musiconhold.conf")
    moh = {s.name for s in parse_sections(text, source) if s.name != "general"} or {"default"}
    text, source = _read(settings.pjsip_file, "pjsip.conf")
    registry = EndpointRegistry()
    for endpoint in parse_pjsip(text, source):
        registry.add(endpoint)
    for name, state in settings.endpoints.items():
        tech, _, resource = name.partition("/")
        if not resource:
            tech, resource = "PJSIP", name
        registry.add(Endpoint(tech, resource, state))
    config = PbxConfig(
        dialplan=dialplan,
        queues=queues,
        moh_classes=moh,
        sounds_dir=settings.sounds_dir,
        globals=dict(settings.globals),
    )
    pbx = Pbx(config, registry)
    pbx.user_agent = _pjsip_user_agent(text, source)
    return pbx


def _pjsip_user_agent(text: str, source: str) -> str:
    """``user_agent`` of pjsip.conf's ``[global]`` (the Server/User-Agent of our SIP)."""
    for section in parse_sections(text, source):
        if section.name == "global" and section.get("user_agent"):
            return str(section.get("user_agent"))
    return "Operadora PBX simulator"


class Simulator:
    """A running simulator. ``ari_url`` is the ARI base (``http://127.0.0.1:PORT/ari``)."""

    def __init__(self, pbx: Pbx, settings: SimSettings, password: str) -> None:
        self.pbx = pbx
        self.settings = settings
        self.username = settings.username
        self.password = password
        self.app = web.Application(middlewares=[self._errors, self._auth])
        self.app[PBX_KEY] = pbx
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.sip: SipUserAgent | None = None

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ari_url(self) -> str:
        return f"{self.base_url}/ari"

    @property
    def sip_port(self) -> int | None:
        """The UDP port of the simulator's SIP (``sim.sip_port``), None when SIP is off."""
        return self.sip.port if self.sip is not None else None

    # ----- the hook for simulated devices -----
    def set_dial_handler(self, handler: DialHandler | None) -> None:
        """Who plays the device when the PBX dials ``PJSIP/...`` (extensions, queue members)."""
        self.pbx.dial_handler = handler

    def inbound_call(
        self,
        endpoint: str = "PJSIP/gateway-fxo-1",
        *,
        context: str = "call-center",
        extension: str = "110",
        caller_id: str = "",
        variables: dict[str, str] | None = None,
    ) -> Line:
        """A call arrives from ``endpoint`` and runs ``context,extension,1`` (e.g. the AI route
        ``Stasis(callcenter-ai,inbound,110)``); attach audio with ``line.attach(...)``."""
        return calls.inbound_call(
            self.pbx,
            endpoint=endpoint,
            context=context,
            extension=extension,
            caller_id=caller_id,
            variables=variables,
        )

    def set_endpoint_state(self, endpoint: str, state: str) -> None:
        tech, _, resource = endpoint.partition("/")
        self.pbx.endpoints.set_state(tech, resource, state)
        self.pbx.emit(
            "EndpointStateChange",
            endpoint={"technology": tech, "resource": resource, "state": state, "channel_ids": []},
        )

    # ----- lifecycle -----
    async def start(self) -> None:
        self.app.add_routes(events.routes)
        self.app.add_routes(channels.routes)
        self.app.add_routes(bridges.routes)
        self.app.add_routes(misc.routes)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.settings.port
        log.info("PBX simulator listening on %s", self.ari_url)
        if self.settings.sip_port is not None:
            try:
                self.sip = await SipUserAgent.start(
                    self.pbx, self.settings.host, self.settings.sip_port, self.pbx.user_agent
                )
            except OSError:
                await self._runner.cleanup()
                self._runner = None
                raise

    async def close(self) -> None:
        await self.pbx.close()  # SIP calls get their BYE here
        if self.sip is not None:
            await self.sip.close()
            self.sip = None
        self.pbx.hub.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- middlewares -----
    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except PbxError as exc:
            return json_response({"message": exc.message}, status=exc.status)
        except web.HTTPNotFound:
            return json_response({"message": "Resource not found"}, status=404)
        except web.HTTPMethodNotAllowed:
            return json_response({"message": "Invalid method"}, status=405)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/ari") or self._authorized(request):
            return await handler(request)
        response = json_response({"message": "Authentication required"}, status=401)
        response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
        return response

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif "api_key" in request.query:
            decoded = request.query["api_key"]
        else:
            return False
        user, _, password = decoded.partition(":")
        return hmac.compare_digest(user, self.username) and hmac.compare_digest(
            password, self.password
        )


async def start_simulator(
    settings: SimSettings, *, extensions: Sequence[Extension] = ()
) -> Simulator:
    """Start the simulator; refuses (ConfigError) without ``sim.password``."""
    password = require_secret(settings.password, "sim.password")
    sim = Simulator(build_pbx(settings), settings, password)
    for extension in extensions:
        extension(sim, sim.app)
    await sim.start()
    return sim
