"""detect_hardware end to end: an ARI server over real HTTP, SIP probes over real sockets, and
dahdi_scan as a real subprocess (a script printing a fixture)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from pydantic import SecretStr

from operadora.config import AriServerSettings, Settings, load_settings
from operadora.hardware import detect_hardware
from operadora.hardware.dahdi import scan_dahdi
from operadora.hardware.gateway import AriUnavailable, make_ari_get, probe_gateway

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
TRACE = Path(__file__).parents[3] / "shared/asterisk/ari-traces/e1_sip_call_into_stasis.jsonl"
PASSWORD = "test-ari-secret"


def recorded_endpoint() -> dict[str, Any]:
    """The real GET /ari/endpoints/PJSIP/sipp answer of Asterisk 22 in the e1 trace."""
    if TRACE.exists():
        for line in TRACE.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("kind") == "response" and entry.get("path") == "/ari/endpoints/PJSIP/sipp":
                body: dict[str, Any] = entry["body"]
                return body
    # the same object, as the trace holds it, for checkouts without shared/
    return {
        "technology": "PJSIP",
        "resource": "sipp",
        "state": "offline",
        "channel_ids": ["1795639419.50"],
    }


def endpoint_list() -> list[dict[str, Any]]:
    sipp = recorded_endpoint()
    return [
        sipp,
        {**sipp, "resource": "gateway-fxo-2", "state": "offline", "channel_ids": []},
        {**sipp, "resource": "gateway-fxo-1", "state": "online"},
        {**sipp, "resource": "agent1", "state": "online", "channel_ids": []},
        # no state: it is optional in the Swagger Endpoint model
        {k: v for k, v in sipp.items() if k != "state"} | {"resource": "gateway-fxo-3"},
    ]


class FakeAri:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[str, str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, request.headers.get("Authorization")))
        expected = "Basic " + base64.b64encode(f"operadora:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Authentication required"}, status=401)
        if self.status != 200:
            return web.json_response({"message": "boom"}, status=self.status)
        tech = request.match_info.get("tech")
        items = [e for e in endpoint_list() if tech in (None, e["technology"])]
        return web.json_response(items)


@pytest.fixture
async def ari_server() -> AsyncIterator[tuple[FakeAri, str]]:
    fake = FakeAri()
    app = web.Application()
    app.router.add_get("/ari/endpoints", fake.handle)
    app.router.add_get("/ari/endpoints/{tech}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake, f"http://127.0.0.1:{port}/ari"
    finally:
        await runner.cleanup()


def settings_for(url: str | None, password: str | None = PASSWORD, **hardware: Any) -> Settings:
    server: dict[str, Any] = {"url": url or "http://127.0.0.1:9/ari"}
    if password is not None:
        server["password"] = password
    hw = {"dahdi_dev": "/nonexistent/dahdi", "probe_timeout_s": 1.0, **hardware}
    return load_settings(asterisk={"servers": [server]}, hardware=hw)


async def test_gateways_found_through_ari(ari_server: tuple[FakeAri, str]) -> None:
    fake, url = ari_server
    report = await detect_hardware(settings_for(url))
    assert fake.requests[0][0] == "/ari/endpoints/PJSIP"
    assert report.hardware_type == "gateway"
    assert report.gateway.source == "ari"
    names = [(e.resource, e.state) for e in report.gateway.endpoints]
    assert names == [
        ("gateway-fxo-1", "online"),
        ("gateway-fxo-2", "offline"),
        ("gateway-fxo-3", "unknown"),
    ]
    assert report.gateway.endpoints[0].channel_ids == ["1795639419.50"]
    assert report.gateway_channels == 3
    assert report.pipeline.max_concurrent_calls == 3
    assert report.pipeline.route_preference == ["gateway", "sip_trunk"]
    assert report.pipeline.codecs == ["ulaw", "alaw"]
    assert "1 online" in report.gateway.detail
    # the report is JSON for the REST API
    assert json.loads(report.model_dump_json())["hardware_type"] == "gateway"


async def test_prefixes_come_from_settings(ari_server: tuple[FakeAri, str]) -> None:
    _, url = ari_server
    report = await detect_hardware(settings_for(url, gateway_prefixes=["agent"]))
    assert [e.resource for e in report.gateway.endpoints] == ["agent1"]


async def test_injected_ari_callable_is_used() -> None:
    calls: list[str] = []

    async def ari(path: str) -> Any:
        calls.append(path)
        return endpoint_list()

    report = await detect_hardware(settings_for(None, password=None), ari=ari)
    assert calls == ["/endpoints/PJSIP"]
    assert report.gateway_channels == 3


async def test_wrong_password_falls_back_and_says_why(ari_server: tuple[FakeAri, str]) -> None:
    _, url = ari_server
    report = await detect_hardware(settings_for(url, password="wrong"))
    assert report.hardware_type == "none"
    assert "HTTP 401" in report.gateway.detail
    assert "no gateway address configured" in report.gateway.detail


async def test_ari_down_and_no_password_are_clear() -> None:
    port = _closed_tcp_port()
    report = await detect_hardware(settings_for(f"http://127.0.0.1:{port}/ari"))
    assert report.hardware_type == "none" and "ARI: GET" in report.gateway.detail
    report = await detect_hardware(settings_for(None, password=None))
    assert "ARI password" in report.gateway.detail
    with pytest.raises(AriUnavailable, match="not set"):
        make_ari_get(AriServerSettings(password=SecretStr("")))


async def test_injected_client_errors_do_not_escape() -> None:
    async def broken(path: str) -> Any:
        raise RuntimeError("socket closed")

    report = await detect_hardware(settings_for(None), ari=broken)
    assert "RuntimeError: socket closed" in report.gateway.detail


# --- reachability fallback ------------------------------------------------------------------


class SipResponder(asyncio.DatagramProtocol):
    """Answers any OPTIONS with 200 OK, echoing the Via/From/To/Call-ID/CSeq headers."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)
        lines = data.decode().split("\r\n")
        keep = [ln for ln in lines if ln.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
        reply = "\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0", "", ""])
        assert self.transport is not None
        self.transport.sendto(reply.encode(), addr)


@pytest.fixture
async def sip_gateway() -> AsyncIterator[tuple[SipResponder, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        SipResponder, local_addr=("127.0.0.1", 0)
    )
    try:
        yield proto, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def _closed_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_udp_sip_options_probe(sip_gateway: tuple[SipResponder, int]) -> None:
    responder, port = sip_gateway
    probe = await probe_gateway(f"127.0.0.1:{port}", 5060, "udp", 2.0)
    assert probe.outcome == "reachable"
    assert probe.detail == "SIP/2.0 200 OK"
    assert probe.rtt_ms is not None
    request = responder.received[0].decode()
    assert request.startswith(f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n")
    assert "\r\nCSeq: 1 OPTIONS\r\n" in request and request.endswith("\r\n\r\n")


async def test_probe_fallback_used_when_ari_has_no_gateway(
    ari_server: tuple[FakeAri, str], sip_gateway: tuple[SipResponder, int]
) -> None:
    _, url = ari_server
    _, port = sip_gateway
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound but never answers: a timeout, not a refusal
    try:
        settings = settings_for(
            url,
            gateway_prefixes=["no-such-prefix"],
            gateway_addresses=[f"127.0.0.1:{port}", f"127.0.0.1:{silent.getsockname()[1]}"],
            probe_timeout_s=0.3,
        )
        report = await detect_hardware(settings)
    finally:
        silent.close()
    assert report.gateway.source == "probe"
    assert [p.outcome for p in report.gateway.probes] == ["reachable", "timeout"]
    assert report.hardware_type == "gateway" and report.gateway_channels == 1
    assert "ARI lists no PJSIP endpoint starting with no-such-prefix" in report.gateway.detail


async def test_tcp_probe_accepted_and_refused() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        ok = await probe_gateway(f"127.0.0.1:{port}", 5060, "tcp", 1.0)
    refused = await probe_gateway(f"127.0.0.1:{_closed_tcp_port()}", 5060, "tcp", 1.0)
    assert ok.outcome == "reachable"
    assert refused.outcome == "unreachable" and refused.detail == "connection refused"


async def test_bad_address_is_an_error_not_a_crash() -> None:
    probe = await probe_gateway("10.0.0.1:notaport", 5060, "udp", 0.2)
    assert probe.outcome == "error"


# --- dahdi_scan as a subprocess ---------------------------------------------------------------


@pytest.fixture
def fake_tool(tmp_path: Path) -> Callable[[str], str]:
    def make(body: str) -> str:
        path = tmp_path / "dahdi_scan"
        path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    return make


async def test_scan_runs_the_tool_and_groups_cards(
    tmp_path: Path, fake_tool: Callable[[str], str]
) -> None:
    fixture = FIXTURES / "two_cards.txt"
    tool = fake_tool(f"sys.stdout.write(open({str(fixture)!r}).read())")
    report = await scan_dahdi(tmp_path, tool, 5.0)
    assert report.present and report.scanned
    assert [c.model for c in report.cards] == ["TDM410P", "TE131"]
    assert report.trunk_channels == 26


async def test_scan_failures_are_explained(tmp_path: Path, fake_tool: Callable[[str], str]) -> None:
    missing = await scan_dahdi(tmp_path / "dahdi", "dahdi_scan", 1.0)
    assert not missing.present and "does not exist" in missing.detail
    no_tool = await scan_dahdi(tmp_path, str(tmp_path / "no-such-tool"), 1.0)
    assert no_tool.present and not no_tool.scanned and "not installed" in no_tool.detail
    failing = await scan_dahdi(
        tmp_path,
        fake_tool(
            "sys.stderr.write('Unable to open /dev/dahdi/ctl: Permission denied\\n'); sys.exit(1)"
        ),
        1.0,
    )
    assert "Permission denied" in failing.detail
    slow = await scan_dahdi(tmp_path, fake_tool("time.sleep(30)"), 0.3)
    assert "did not finish" in slow.detail
    garbage = await scan_dahdi(tmp_path, fake_tool("print('hello')"), 1.0)
    assert "unexpected" in garbage.detail
    not_a_program = tmp_path / "junk"
    not_a_program.write_bytes(b"\x00\x01\x02 not an executable")
    not_a_program.chmod(0o755)
    junk = await scan_dahdi(tmp_path, str(not_a_program), 1.0)
    assert junk.present and not junk.scanned and "cannot run" in junk.detail
    not_executable = tmp_path / "plain"
    not_executable.write_text("#!/bin/sh\n")
    denied = await scan_dahdi(tmp_path, str(not_executable), 1.0)
    assert "no permission" in denied.detail


async def test_dahdi_and_gateway_together(
    tmp_path: Path, fake_tool: Callable[[str], str], ari_server: tuple[FakeAri, str]
) -> None:
    _, url = ari_server
    tool = fake_tool(f"sys.stdout.write(open({str(FIXTURES / 'sangoma_a104_e1.txt')!r}).read())")
    settings = settings_for(url, dahdi_dev=str(tmp_path), dahdi_scan=tool)
    report = await detect_hardware(settings)
    assert report.hardware_type == "both"
    assert (report.gateway_channels, report.dahdi_channels) == (3, 90)
    assert report.pipeline.max_concurrent_calls == 93
    assert report.pipeline.route_preference == ["dahdi", "gateway", "sip_trunk"]
    assert report.pipeline.codecs[0] == "alaw"  # E1 network


async def test_every_configured_server_is_asked(ari_server: tuple[FakeAri, str]) -> None:
    _, url = ari_server
    down = f"http://127.0.0.1:{_closed_tcp_port()}/ari"
    settings = load_settings(
        asterisk={
            "servers": [
                {"name": "pbx-a", "url": url, "password": PASSWORD},
                {"name": "pbx-b", "url": down, "password": PASSWORD},
                {"name": "pbx-c", "url": url},
            ]
        },
        hardware={"dahdi_dev": "/nonexistent/dahdi"},
    )
    report = await detect_hardware(settings)
    assert {e.server for e in report.gateway.endpoints} == {"pbx-a"}
    assert report.gateway_channels == 3
    assert "pbx-b: ARI: GET" in report.gateway.detail
    assert "pbx-c: ARI password for pbx-c is not set" in report.gateway.detail


async def test_lines_per_gateway(ari_server: tuple[FakeAri, str]) -> None:
    _, url = ari_server
    report = await detect_hardware(settings_for(url, gateway_lines=8))
    assert report.gateway_channels == 3 * 8
    assert report.pipeline.max_concurrent_calls == 24
