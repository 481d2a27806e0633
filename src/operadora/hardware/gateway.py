"""FXO gateways: PJSIP endpoints seen through ARI, and a reachability probe of configured
addresses (a SIP OPTIONS over UDP or a TCP connect). Nothing here ever scans a network."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

import aiohttp
from pydantic import ValidationError

from operadora.config import AriServerSettings
from operadora.hardware.models import GatewayEndpoint, GatewayProbe

AriGet = Callable[[str], Awaitable[Any]]
"""GET a path under the ARI root (``/endpoints/PJSIP``) and return the decoded JSON."""


class AriUnavailable(Exception):
    """ARI could not be asked (not configured, unreachable, refused, bad answer)."""


def make_ari_get(server: AriServerSettings) -> AriGet:
    """A tiny aiohttp GET against one ARI server, for when no ARI client is injected."""
    if server.password is None or not server.password.get_secret_value():
        raise AriUnavailable(
            f"ARI password for {server.name} is not set (OPERADORA_ASTERISK__SERVERS or "
            "ARI_PASSWORD)"
        )
    credentials = f"{server.username}:{server.password.get_secret_value()}".encode()
    auth = "Basic " + base64.b64encode(credentials).decode()
    timeout = aiohttp.ClientTimeout(
        total=server.request_timeout_s, connect=server.connect_timeout_s
    )

    async def get(path: str) -> Any:
        url = server.url + path
        try:
            async with (
                aiohttp.ClientSession(headers={"Authorization": auth}, timeout=timeout) as session,
                session.get(url) as resp,
            ):
                if resp.status != 200:
                    raise AriUnavailable(f"GET {url}: HTTP {resp.status}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AriUnavailable(f"GET {url}: {type(exc).__name__}: {exc}") from None

    return get


def select_gateways(endpoints: Any, prefixes: Iterable[str]) -> list[GatewayEndpoint]:
    """The ARI ``Endpoint`` objects whose resource starts with one of the prefixes."""
    if not isinstance(endpoints, list):
        raise AriUnavailable(f"expected a list of endpoints, got {type(endpoints).__name__}")
    wanted = tuple(prefixes)
    found = []
    for item in endpoints:
        try:
            endpoint = GatewayEndpoint.model_validate(item)
        except ValidationError:
            continue
        if endpoint.technology == "PJSIP" and endpoint.resource.startswith(wanted):
            found.append(endpoint)
    return sorted(found, key=lambda e: e.resource)


async def ari_gateways(ari: AriGet, prefixes: Iterable[str]) -> list[GatewayEndpoint]:
    return select_gateways(await ari("/endpoints/PJSIP"), prefixes)


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` into host and port."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else default_port
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port)
    return address, default_port


def sip_options(host: str, port: int, local: tuple[str, int], call_id: str) -> bytes:
    """A minimal RFC 3261 OPTIONS request, the usual SIP keepalive a gateway answers."""
    lhost, lport = local
    branch = "z9hG4bK" + call_id[:16]
    lines = [
        f"OPTIONS sip:{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {lhost}:{lport};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:operadora@{lhost}>;tag={call_id[:8]}",
        f"To: <sip:{host}:{port}>",
        f"Call-ID: {call_id}@{lhost}",
        "CSeq: 1 OPTIONS",
        "Accept: application/sdp",
        "User-Agent: operadora-hardware-probe",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


class _SipReply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def probe_gateway(
    address: str, default_port: int, transport: Literal["udp", "tcp"], timeout_s: float
) -> GatewayProbe:
    """Check one configured gateway address; never raises."""
    try:
        host, port = split_address(address, default_port)
    except ValueError:
        return GatewayProbe(
            address=address,
            host=address,
            port=0,
            transport=transport,
            outcome="error",
            detail="bad address (expected host or host:port)",
        )
    start = time.perf_counter()
    base = {"address": address, "host": host, "port": port, "transport": transport}
    try:
        async with asyncio.timeout(timeout_s):
            detail = await (
                _probe_tcp(host, port) if transport == "tcp" else _probe_udp(host, port)
            )
    except TimeoutError:
        return GatewayProbe(**base, outcome="timeout", detail=f"no answer in {timeout_s:g} s")
    except ConnectionRefusedError:
        return GatewayProbe(**base, outcome="unreachable", detail="connection refused")
    except OSError as exc:
        return GatewayProbe(**base, outcome="error", detail=f"{type(exc).__name__}: {exc}")
    rtt = (time.perf_counter() - start) * 1000
    return GatewayProbe(**base, outcome="reachable", detail=detail, rtt_ms=round(rtt, 2))


async def _probe_tcp(host: str, port: int) -> str:
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()
    return "TCP connect accepted"


async def _probe_udp(host: str, port: int) -> str:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_SipReply, remote_addr=(host, port))
    try:
        local = transport.get_extra_info("sockname")[:2]
        transport.sendto(sip_options(host, port, local, secrets.token_hex(12)))
        reply = await protocol.reply
    finally:
        transport.close()
    status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    if not status.startswith("SIP/2.0"):
        return f"UDP reply (not SIP): {status[:40]!r}"
    return status
