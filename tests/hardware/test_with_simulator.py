"""The loop between `operadora asterisk-config` and `operadora hardware`: the PJSIP gateway
endpoints we render are the ones detection finds through ARI, here on the PBX simulator
loaded with our generated pjsip.conf, extensions.conf and queues.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from operadora.config import SimSettings, load_settings
from operadora.dialplan.render import render
from operadora.hardware import detect_hardware
from operadora.sim.server import start_simulator

pytestmark = pytest.mark.integration

PASSWORD = "sim-test-pw"


async def test_rendered_gateways_are_detected_through_ari(tmp_path: Path) -> None:
    settings = load_settings(
        asterisk={"servers": [{"password": PASSWORD}]},
        hardware={"gateway_addresses": ["192.0.2.10", "192.0.2.11:5062"]},
    )
    for name, text in render(settings, show_secrets=True).files.items():
        (tmp_path / name).write_text(text)
    sim = await start_simulator(
        SimSettings(
            port=0,
            password=PASSWORD,
            dialplan_file=tmp_path / "extensions.conf",
            queues_file=tmp_path / "queues.conf",
            pjsip_file=tmp_path / "pjsip.conf",
            endpoints={},
        )
    )
    try:
        against_sim = load_settings(
            asterisk={"servers": [{"url": sim.ari_url, "password": PASSWORD}]},
            hardware={"dahdi_dev": str(tmp_path / "no-dahdi")},
        )
        report = await detect_hardware(against_sim)
        assert report.gateway.source == "ari"
        assert [e.resource for e in report.gateway.endpoints] == ["gateway-fxo-1", "gateway-fxo-2"]
        assert report.hardware_type == "gateway" and report.pipeline.max_concurrent_calls == 2
        sim.set_endpoint_state("PJSIP/gateway-fxo-2", "online")
        report = await detect_hardware(against_sim)
        assert [e.state for e in report.gateway.endpoints] == ["offline", "online"]
    finally:
        await sim.close()
