"""Hardware type and pipeline configuration from findings (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from operadora.hardware import build_report
from operadora.hardware.dahdi import group_cards, parse_dahdi_scan
from operadora.hardware.models import (
    DahdiReport,
    GatewayEndpoint,
    GatewayProbe,
    GatewayReport,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"
NO_DAHDI = DahdiReport(present=False, scanned=False, detail="/dev/dahdi does not exist")
NO_GATEWAY = GatewayReport(source="none", detail="nothing configured")


def dahdi(name: str) -> DahdiReport:
    spans = parse_dahdi_scan((FIXTURES / name).read_text())
    return DahdiReport(present=True, scanned=True, spans=spans, cards=group_cards(spans))


def ari_gateways(*states: str) -> GatewayReport:
    eps = [
        GatewayEndpoint(technology="PJSIP", resource=f"gateway-fxo-{i}", state=s)
        for i, s in enumerate(states, 1)
    ]
    return GatewayReport(source="ari", endpoints=eps)


def test_nothing_found_means_sip_trunk_without_a_hardware_limit() -> None:
    report = build_report(NO_GATEWAY, NO_DAHDI)
    assert report.hardware_type == "none"
    assert report.pipeline.max_concurrent_calls is None
    assert report.pipeline.route_preference == ["sip_trunk"]
    assert report.pipeline.codecs == ["opus", "ulaw", "alaw"]


def test_gateway_only() -> None:
    report = build_report(ari_gateways("online", "offline"), NO_DAHDI)
    assert report.hardware_type == "gateway"
    assert report.pipeline.max_concurrent_calls == 2
    assert report.pipeline.route_preference == ["gateway", "sip_trunk"]
    assert not report.pipeline.use_transcoding


def test_analog_dahdi_only_counts_fxo_ports() -> None:
    report = build_report(NO_GATEWAY, dahdi("wctdm24xxp_analog.txt"))
    assert report.hardware_type == "dahdi"
    assert report.dahdi_channels == 8
    assert report.pipeline.max_concurrent_calls == 8
    assert report.pipeline.route_preference == ["dahdi", "sip_trunk"]
    assert report.pipeline.codecs == ["ulaw", "alaw"]


def test_e1_prefers_alaw() -> None:
    report = build_report(NO_GATEWAY, dahdi("sangoma_a104_e1.txt"))
    assert report.pipeline.codecs == ["alaw", "ulaw"]
    assert report.pipeline.max_concurrent_calls == 90


def test_both() -> None:
    report = build_report(ari_gateways("online"), dahdi("two_cards.txt"))
    assert report.hardware_type == "both"
    assert report.pipeline.max_concurrent_calls == 1 + 26
    assert report.pipeline.route_preference == ["dahdi", "gateway", "sip_trunk"]


def test_probe_counts_only_reachable_addresses() -> None:
    probes = [
        GatewayProbe(address=a, host=a, port=5060, transport="udp", outcome=o)
        for a, o in (("10.0.0.1", "reachable"), ("10.0.0.2", "timeout"))
    ]
    report = build_report(GatewayReport(source="probe", probes=probes), NO_DAHDI)
    assert report.gateway_channels == 1 and report.hardware_type == "gateway"


def test_dahdi_device_without_scan_is_dahdi_of_unknown_size() -> None:
    present = DahdiReport(present=True, scanned=False, detail="dahdi_scan not installed")
    report = build_report(NO_GATEWAY, present)
    assert report.hardware_type == "dahdi"
    assert report.pipeline.max_concurrent_calls is None


def test_configured_dahdi_without_spans_is_none() -> None:
    empty = DahdiReport(present=True, scanned=True, detail="no spans configured")
    assert build_report(NO_GATEWAY, empty).hardware_type == "none"
