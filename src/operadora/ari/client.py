"""The ARI REST client: one per Asterisk server, one pooled HTTP session, typed results.

Only operations declared in :mod:`operadora.ari.operations` can be sent. Errors become the
exceptions of :mod:`operadora.ari.errors`; idempotent operations are retried on 5xx and
timeouts with a short backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from operadora import metrics
from operadora.ari import operations as ops
from operadora.ari.errors import AriError, AriUnavailable, error_for_status
from operadora.ari.models import (
    AriModel,
    Bridge,
    Channel,
    Endpoint,
    LiveRecording,
    Playback,
    Variable,
)
from operadora.config import AriServerSettings, require_secret

log = logging.getLogger(__name__)

M = TypeVar("M", bound=AriModel)
ParamValue = str | int | bool | Sequence[str] | None


def build_request(
    operation: ops.Operation, params: Mapping[str, ParamValue]
) -> tuple[str, dict[str, str]]:
    """Pure: the path and query string of one call, refusing undeclared parameters."""
    path = operation.path
    query: dict[str, str] = {}
    for name, value in params.items():
        param = operation.param(name)
        if param is None:
            raise TypeError(f"ARI {operation.nickname} has no parameter {name!r}")
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        elif isinstance(value, str):
            text = value
        else:
            if not param.multiple:
                raise TypeError(f"ARI {operation.nickname}.{name} takes one value")
            text = ",".join(value)
        if param.where == "path":
            path = path.replace("{" + name + "}", quote(text, safe=""))
        else:
            query[name] = text
    if "{" in path:
        raise TypeError(f"ARI {operation.nickname}: missing path parameter in {path}")
    return path, query


class AriClient:
    """REST access to one Asterisk server's ARI."""

    def __init__(
        self,
        settings: AriServerSettings,
        *,
        retries: int = 2,
        retry_delay_s: float = 0.05,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.app = settings.app
        self._auth_header = aiohttp.encode_basic_auth(
            settings.username, require_secret(settings.password, "asterisk.servers.password")
        )
        self._retries = retries
        self._retry_delay_s = retry_delay_s
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return self.settings.url

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=self.settings.request_timeout_s,
                sock_connect=self.settings.connect_timeout_s,
            )
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self._auth_header},
                timeout=timeout,
                cookie_jar=aiohttp.DummyCookieJar(),  # ARI sets none; skip the per-request work
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, operation: ops.Operation, **params: ParamValue) -> Any:
        """Send one declared operation; returns the decoded JSON body (None for 204)."""
        path, query = build_request(operation, params)
        attempts = 1 + (self._retries if operation.idempotent else 0)
        for attempt in range(attempts):
            try:
                return await self._send(operation.method, path, query)
            except AriError as exc:
                if not exc.retryable or attempt == attempts - 1:
                    raise
                log.warning("ARI %s %s failed (%s), retrying", operation.method, path, exc)
                await asyncio.sleep(self._retry_delay_s * (2**attempt))
        raise AssertionError("unreachable")

    async def _send(self, method: str, path: str, query: dict[str, str]) -> Any:
        url = self.base_url + path
        try:
            async with self.session().request(method, url, params=query) as response:
                if response.status >= 400:
                    metrics.ARI_ERRORS.labels("http").inc()
                    raise error_for_status(
                        response.status, await _error_message(response), method=method, path=path
                    )
                if response.status == 204 or response.content_length == 0:
                    return None
                body = await response.read()
                if not body:
                    return None
                return await response.json(content_type=None)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            metrics.ARI_ERRORS.labels("unavailable").inc()
            raise AriUnavailable(0, _describe(exc), method=method, path=path) from exc

    async def _model(self, cls: type[M], operation: ops.Operation, **params: ParamValue) -> M:
        return cls.model_validate(await self.call(operation, **params))

    async def _models(
        self, cls: type[M], operation: ops.Operation, **params: ParamValue
    ) -> list[M]:
        return [cls.model_validate(item) for item in await self.call(operation, **params) or []]

    # -- asterisk / applications ---------------------------------------------------------

    async def asterisk_info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(ops.ASTERISK_INFO, only=["system"])
        return result

    async def application(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(ops.APPLICATION_GET, applicationName=self.app)
        return result

    # -- channels --------------------------------------------------------------------------

    async def list_channels(self) -> list[Channel]:
        return await self._models(Channel, ops.CHANNELS_LIST)

    async def get_channel(self, channel_id: str) -> Channel:
        return await self._model(Channel, ops.CHANNEL_GET, channelId=channel_id)

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        caller_id: str | None = None,
        ring_timeout_s: int | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
    ) -> Channel:
        return await self._model(
            Channel,
            ops.CHANNEL_ORIGINATE,
            endpoint=endpoint,
            app=app,
            appArgs=app_args,
            context=context,
            extension=extension,
            priority=priority,
            callerId=caller_id,
            timeout=ring_timeout_s,
            channelId=channel_id,
            otherChannelId=other_channel_id,
        )

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.call(ops.CHANNEL_HANGUP, channelId=channel_id, reason=reason)

    async def answer(self, channel_id: str) -> None:
        await self.call(ops.CHANNEL_ANSWER, channelId=channel_id)

    async def ring(self, channel_id: str) -> None:
        await self.call(ops.CHANNEL_RING, channelId=channel_id)

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        await self.call(
            ops.CHANNEL_CONTINUE,
            channelId=channel_id,
            context=context,
            extension=extension,
            priority=priority,
        )

    async def redirect(self, channel_id: str, endpoint: str) -> None:
        await self.call(ops.CHANNEL_REDIRECT, channelId=channel_id, endpoint=endpoint)

    async def external_media(
        self,
        *,
        channel_id: str,
        external_host: str,
        data: str,
        media_format: str = "slin16",
        encapsulation: str = "audiosocket",
        transport: str = "tcp",
    ) -> Channel:
        return await self._model(
            Channel,
            ops.CHANNEL_EXTERNAL_MEDIA,
            channelId=channel_id,
            app=self.app,
            external_host=external_host,
            encapsulation=encapsulation,
            transport=transport,
            format=media_format,
            data=data,
        )

    async def get_variable(self, channel_id: str, variable: str) -> str:
        result = await self._model(
            Variable, ops.CHANNEL_GET_VAR, channelId=channel_id, variable=variable
        )
        return result.value

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        await self.call(ops.CHANNEL_SET_VAR, channelId=channel_id, variable=variable, value=value)

    async def play(
        self, channel_id: str, media: str | Sequence[str], playback_id: str | None = None
    ) -> Playback:
        return await self._model(
            Playback, ops.CHANNEL_PLAY, channelId=channel_id, media=media, playbackId=playback_id
        )

    async def send_dtmf(self, channel_id: str, dtmf: str, duration_ms: int | None = None) -> None:
        await self.call(
            ops.CHANNEL_SEND_DTMF, channelId=channel_id, dtmf=dtmf, duration=duration_ms
        )

    async def stop_playback(self, playback_id: str) -> None:
        await self.call(ops.PLAYBACK_STOP, playbackId=playback_id)

    async def transfer_progress(self, channel_id: str, states: str) -> None:
        await self.call(ops.CHANNEL_TRANSFER_PROGRESS, channelId=channel_id, states=states)

    # -- bridges ---------------------------------------------------------------------------

    async def list_bridges(self) -> list[Bridge]:
        return await self._models(Bridge, ops.BRIDGES_LIST)

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return await self._model(Bridge, ops.BRIDGE_GET, bridgeId=bridge_id)

    async def create_bridge(
        self, bridge_id: str, bridge_type: str = "mixing", name: str | None = None
    ) -> Bridge:
        return await self._model(
            Bridge, ops.BRIDGE_CREATE, type=bridge_type, bridgeId=bridge_id, name=name
        )

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.call(ops.BRIDGE_DESTROY, bridgeId=bridge_id)

    async def add_channels(
        self, bridge_id: str, channel_ids: Sequence[str], role: str | None = None
    ) -> None:
        await self.call(ops.BRIDGE_ADD_CHANNEL, bridgeId=bridge_id, channel=channel_ids, role=role)

    async def remove_channels(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        await self.call(ops.BRIDGE_REMOVE_CHANNEL, bridgeId=bridge_id, channel=channel_ids)

    async def record_bridge(
        self,
        bridge_id: str,
        name: str,
        *,
        media_format: str = "wav",
        if_exists: str = "overwrite",
        max_duration_s: int | None = None,
    ) -> LiveRecording:
        return await self._model(
            LiveRecording,
            ops.BRIDGE_RECORD,
            bridgeId=bridge_id,
            name=name,
            format=media_format,
            ifExists=if_exists,
            maxDurationSeconds=max_duration_s,
        )

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        await self.call(ops.BRIDGE_START_MOH, bridgeId=bridge_id, mohClass=moh_class)

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        await self.call(ops.BRIDGE_STOP_MOH, bridgeId=bridge_id)

    # -- endpoints -------------------------------------------------------------------------

    async def list_endpoints(self) -> list[Endpoint]:
        return await self._models(Endpoint, ops.ENDPOINTS_LIST)

    async def get_endpoint(self, tech: str, resource: str) -> Endpoint:
        return await self._model(Endpoint, ops.ENDPOINT_GET, tech=tech, resource=resource)


async def _error_message(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return response.reason or ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.reason or ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
