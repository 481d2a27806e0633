"""``detect_hardware``: what telephony hardware this Asterisk has, and the pipeline it implies."""

from __future__ import annotations

import asyncio
import logging

from operadora.config import HardwareSettings, Settings
from operadora.hardware.dahdi import scan_dahdi
from operadora.hardware.gateway import (
    AriGet,
    AriUnavailable,
    ari_gateways,
    make_ari_get,
    probe_gateway,
)
from operadora.hardware.models import (
    DahdiReport,
    GatewayEndpoint,
    GatewayReport,
    HardwareReport,
    HardwareType,
    PipelineConfig,
    Route,
)

log = logging.getLogger(__name__)

DAHDI_SCAN_MIN_TIMEOUT_S = 5.0  # dahdi_scan may sleep 1 s per E1 span to check CRC4 framing


AriSource = tuple[str, AriGet | None, str]  # server name, GET helper, why there is none


async def detect_hardware(settings: Settings, ari: AriGet | None = None) -> HardwareReport:
    """Detect FXO gateways (ARI, else configured addresses) and DAHDI cards; never raises.

    ``ari`` GETs a path under the ARI root and returns JSON (the engine passes its ARI
    client); without it a small aiohttp client asks every configured Asterisk server.
    DAHDI is looked for on this machine.
    """
    hw = settings.hardware
    gateway_task = asyncio.create_task(_gateways(hw, _ari_sources(settings, ari)))
    dahdi = await scan_dahdi(
        hw.dahdi_dev, hw.dahdi_scan, max(hw.probe_timeout_s, DAHDI_SCAN_MIN_TIMEOUT_S)
    )
    report = build_report(await gateway_task, dahdi)
    log_report(report)
    return report


def _ari_sources(settings: Settings, ari: AriGet | None) -> list[AriSource]:
    servers = settings.asterisk.servers
    if ari is not None:
        return [(servers[0].name if servers else "asterisk", ari, "")]
    if not servers:
        return [("asterisk", None, "no Asterisk server configured")]
    sources: list[AriSource] = []
    for server in servers:
        try:
            sources.append((server.name, make_ari_get(server), ""))
        except AriUnavailable as exc:
            sources.append((server.name, None, str(exc)))
    return sources


async def _ask(name: str, ari: AriGet, prefixes: list[str]) -> list[GatewayEndpoint] | str:
    try:
        endpoints = await ari_gateways(ari, prefixes)
    except AriUnavailable as exc:
        return f"ARI: {exc}"
    except Exception as exc:  # an injected client may raise anything
        return f"ARI: {type(exc).__name__}: {exc}"
    return [e.model_copy(update={"server": name}) for e in endpoints]


async def _gateways(hw: HardwareSettings, sources: list[AriSource]) -> GatewayReport:
    several = len(sources) > 1
    reasons: list[str] = []
    endpoints: list[GatewayEndpoint] = []
    asked = [(name, ari) for name, ari, _ in sources if ari is not None]
    answers = await asyncio.gather(*(_ask(name, ari, hw.gateway_prefixes) for name, ari in asked))
    for name, ari, why in sources:
        prefix = f"{name}: " if several else ""
        if ari is None:
            reasons.append(prefix + why)
    for (name, _), answer in zip(asked, answers, strict=True):
        prefix = f"{name}: " if several else ""
        if isinstance(answer, str):
            reasons.append(prefix + answer)
        elif not answer:
            wanted = ", ".join(hw.gateway_prefixes)
            reasons.append(f"{prefix}ARI lists no PJSIP endpoint starting with {wanted}")
        endpoints += answer if isinstance(answer, list) else []
    if endpoints:
        online = sum(1 for e in endpoints if e.online)
        detail = f"{len(endpoints)} PJSIP endpoint(s), {online} online"
        return GatewayReport(
            source="ari",
            detail="; ".join([detail, *reasons]),
            endpoints=endpoints,
            lines_per_gateway=hw.gateway_lines,
        )
    if not hw.gateway_addresses:
        reasons.append("no gateway address configured (hardware.gateway_addresses)")
        return GatewayReport(source="none", detail="; ".join(reasons))
    probes = await asyncio.gather(
        *(
            probe_gateway(a, hw.sip_port, hw.probe_transport, hw.probe_timeout_s)
            for a in hw.gateway_addresses
        )
    )
    reachable = sum(1 for p in probes if p.outcome == "reachable")
    reasons.append(f"{reachable}/{len(probes)} configured address(es) reachable")
    return GatewayReport(
        source="probe",
        detail="; ".join(reasons),
        probes=list(probes),
        lines_per_gateway=hw.gateway_lines,
    )


def build_report(gateway: GatewayReport, dahdi: DahdiReport) -> HardwareReport:
    """Combine both findings into the hardware type and the pipeline configuration."""
    gateway_channels = gateway.channels
    has_gateway = gateway_channels > 0
    has_dahdi = dahdi.present and (dahdi.trunk_channels > 0 or not dahdi.scanned)
    kind: HardwareType
    if has_gateway and has_dahdi:
        kind = "both"
    elif has_gateway:
        kind = "gateway"
    elif has_dahdi:
        kind = "dahdi"
    else:
        kind = "none"
    return HardwareReport(
        hardware_type=kind,
        gateway=gateway,
        dahdi=dahdi,
        gateway_channels=gateway_channels,
        dahdi_channels=dahdi.trunk_channels,
        pipeline=pipeline_config(kind, gateway_channels, dahdi),
    )


def pipeline_config(
    kind: HardwareType, gateway_channels: int, dahdi: DahdiReport
) -> PipelineConfig:
    """The design's pipeline rules, with channel counts taken from what was found.

    Lines from gateways and DAHDI cards arrive as G.711, so the codecs stay G.711 and nothing
    is transcoded; an E1 network is A-law first. With neither, calls come over a SIP trunk and
    the telephony hardware sets no limit (the capacity planner gives the machine's).
    """
    e1 = any(span.line_type == "E1" for span in dahdi.spans)
    g711 = ["alaw", "ulaw"] if e1 else ["ulaw", "alaw"]
    routes: list[Route]
    if kind == "none":
        return PipelineConfig(
            max_concurrent_calls=None,
            route_preference=["sip_trunk"],
            codecs=["opus", "ulaw", "alaw"],
            use_transcoding=True,
        )
    if kind == "gateway":
        routes = ["gateway", "sip_trunk"]
    elif kind == "dahdi":
        routes = ["dahdi", "sip_trunk"]
    else:
        routes = ["dahdi", "gateway", "sip_trunk"]
    channels = gateway_channels + dahdi.trunk_channels
    # /dev/dahdi without a readable scan: the card is there but its size is unknown
    limit = channels if channels > 0 else None
    return PipelineConfig(max_concurrent_calls=limit, route_preference=routes, codecs=g711)


def log_report(report: HardwareReport) -> None:
    limit = report.pipeline.max_concurrent_calls
    log.info(
        "telephony hardware: %s (gateway channels %d: %s; dahdi channels %d: %s); "
        "max concurrent calls %s, routes %s, codecs %s",
        report.hardware_type,
        report.gateway_channels,
        report.gateway.detail,
        report.dahdi_channels,
        report.dahdi.detail,
        "not limited by hardware" if limit is None else limit,
        ",".join(report.pipeline.route_preference),
        ",".join(report.pipeline.codecs),
    )
