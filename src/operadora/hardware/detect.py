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
    GatewayReport,
    HardwareReport,
    HardwareType,
    PipelineConfig,
    Route,
)

log = logging.getLogger(__name__)

DAHDI_SCAN_MIN_TIMEOUT_S = 5.0  # dahdi_scan sleeps 1 s per E1 span to check CRC4 alignment


async def detect_hardware(settings: Settings, ari: AriGet | None = None) -> HardwareReport:
    """Detect FXO gateways (ARI, else configured addresses) and DAHDI cards; never raises.

    ``ari`` GETs a path under the ARI root and returns JSON; by default a small aiohttp client
    for the first configured Asterisk server is used.
    """
    hw = settings.hardware
    why_no_ari = ""
    if ari is None:
        if not settings.asterisk.servers:
            why_no_ari = "no Asterisk server configured"
        else:
            try:
                ari = make_ari_get(settings.asterisk.servers[0])
            except AriUnavailable as exc:
                why_no_ari = str(exc)
    gateway_task = asyncio.create_task(_gateways(hw, ari, why_no_ari))
    dahdi = await scan_dahdi(
        hw.dahdi_dev, hw.dahdi_scan, max(hw.probe_timeout_s, DAHDI_SCAN_MIN_TIMEOUT_S)
    )
    report = build_report(await gateway_task, dahdi)
    log_report(report)
    return report


async def _gateways(hw: HardwareSettings, ari: AriGet | None, why_no_ari: str) -> GatewayReport:
    reasons = [why_no_ari] if why_no_ari else []
    if ari is not None:
        try:
            endpoints = await ari_gateways(ari, hw.gateway_prefixes)
        except AriUnavailable as exc:
            reasons.append(f"ARI: {exc}")
        except Exception as exc:  # an injected client may raise anything
            reasons.append(f"ARI: {type(exc).__name__}: {exc}")
        else:
            if endpoints:
                online = sum(1 for e in endpoints if e.online)
                return GatewayReport(
                    source="ari",
                    detail=f"{len(endpoints)} PJSIP endpoint(s), {online} online",
                    endpoints=endpoints,
                )
            prefixes = ", ".join(hw.gateway_prefixes)
            reasons.append(f"ARI lists no PJSIP endpoint starting with {prefixes}")
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
    return GatewayReport(source="probe", detail="; ".join(reasons), probes=list(probes))


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
