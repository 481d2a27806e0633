"""The ARI events WebSocket of one Stasis application, kept open for as long as we run.

When the connection drops (or cannot be made: Asterisk down, wrong password) it is retried
with exponential backoff and jitter; each failure is logged once per distinct reason. After
every successful (re)connection ``on_connect(reconnected)`` runs so call control can
resynchronise with what happened while no events could arrive.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable

import aiohttp

from operadora import metrics
from operadora.ari.client import AriClient
from operadora.ari.errors import AriError, AriUnavailable, error_for_status
from operadora.ari.events import AriEvent, AriEventError, parse_message

log = logging.getLogger(__name__)

EventHandler = Callable[[AriEvent], None]
ConnectHandler = Callable[[bool], Awaitable[None]]


def events_url(base_url: str) -> str:
    """``http://host:8088/ari`` → ``ws://host:8088/ari/events``."""
    if base_url.startswith("https://"):
        return "wss://" + base_url.removeprefix("https://") + "/events"
    return "ws://" + base_url.removeprefix("http://") + "/events"


class Backoff:
    """Exponential backoff with full jitter, reset after a good connection."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0


class EventStream:
    """Receives one application's events and hands each, parsed, to ``handler``."""

    def __init__(
        self,
        client: AriClient,
        handler: EventHandler,
        *,
        on_connect: ConnectHandler | None = None,
        subscribe_all: bool = False,
        initial_backoff_s: float = 0.1,
        heartbeat_s: float = 10.0,
        wanted: Iterable[str] | None = None,
    ) -> None:
        self.client = client
        # the event types the handler acts on; others are dropped before any parsing
        self._wanted = tuple(f'"{name}"' for name in wanted) if wanted is not None else None
        self.skipped = 0
        self._handler = handler
        self._on_connect = on_connect
        self._subscribe_all = subscribe_all
        self._heartbeat_s = heartbeat_s
        self.backoff = Backoff(initial_backoff_s, client.settings.reconnect_max_backoff_s)
        self.connected = asyncio.Event()
        self.connections = 0
        self.last_error: AriError | None = None
        self.malformed = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False

    async def run(self) -> None:
        """Connect, receive, reconnect; returns only after :meth:`stop`."""
        while not self._stopping:
            try:
                await self._session()
            except AriError as exc:
                self._report(exc)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in a callback must not end the stream for good
                log.exception("ARI %s: events connection failed", self.client.name)
            finally:
                self.connected.clear()
                self._ws = None
            if self._stopping:
                break
            await asyncio.sleep(self.backoff.next_delay())

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()

    async def drop(self) -> None:
        """Close the current connection from our side (it will be reopened)."""
        if self._ws is not None:
            await self._ws.close()

    async def _session(self) -> None:
        ws = await self._connect()
        self._ws = ws
        self.connections += 1
        reconnected = self.connections > 1
        if self.last_error is not None:
            log.info("ARI %s: events connected again", self.client.name)
        self.last_error = None
        self.backoff.reset()
        try:
            if self._on_connect is not None:
                await self._on_connect(reconnected)  # resync before reading new events
            self.connected.set()
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._dispatch(message.data)
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
        finally:
            await ws.close()
        if not self._stopping:
            metrics.ARI_ERRORS.labels("websocket").inc()
            log.warning("ARI %s: events WebSocket closed; reconnecting", self.client.name)

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        params = {"app": self.client.app}
        if self._subscribe_all:
            params["subscribeAll"] = "true"
        url = events_url(self.client.base_url)
        try:
            return await self.client.session().ws_connect(
                url, params=params, heartbeat=self._heartbeat_s, autoping=True
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise error_for_status(exc.status, exc.message, method="GET", path="/events") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriUnavailable(0, str(exc) or type(exc).__name__) from exc

    def _dispatch(self, text: str) -> None:
        if self._wanted is not None and not any(name in text for name in self._wanted):
            self.skipped += 1  # cannot be a wanted type: its name is nowhere in the text
            return
        try:
            event = parse_message(text)
        except AriEventError as exc:
            self.malformed += 1
            log.warning("ARI %s: ignored a malformed event: %s", self.client.name, exc)
            return
        try:
            self._handler(event)
        except Exception:
            log.exception("ARI %s: handler failed on %s", self.client.name, event.type)

    def _report(self, exc: AriError) -> None:
        metrics.ARI_ERRORS.labels("websocket").inc()
        same = self.last_error is not None and str(self.last_error) == str(exc)
        self.last_error = exc
        if same:
            log.debug("ARI %s: still failing: %s", self.client.name, exc)
            return
        log.error("%s", describe_failure(self.client, exc))


def describe_failure(client: AriClient, exc: AriError) -> str:
    """One line an operator can act on."""
    where = f"ARI {client.name} ({client.base_url}, app {client.app})"
    if exc.status in (401, 403):
        return (
            f"{where}: Asterisk refused user {client.settings.username!r}: wrong password or "
            "user not in ari.conf; retrying"
        )
    if exc.status == 0:
        return f"{where}: cannot reach Asterisk: {exc.message}; retrying"
    return f"{where}: {exc}; retrying"
