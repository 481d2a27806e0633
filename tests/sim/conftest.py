"""Fixtures for the PBX simulator tests (``operadora.sim``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from operadora.config import SimSettings
from operadora.sim.server import Simulator, start_simulator

SIM_USER = "callcenter-ai"
SIM_PASSWORD = "test-only-secret"

SettingsFactory = Callable[..., SimSettings]


@pytest.fixture
def sim_credentials() -> tuple[str, str]:
    return SIM_USER, SIM_PASSWORD


@pytest.fixture
def make_sim_settings() -> SettingsFactory:
    def make(**overrides: object) -> SimSettings:
        values: dict[str, object] = {
            "port": 0,
            "username": SIM_USER,
            "password": SecretStr(SIM_PASSWORD),
        }
        values.update(overrides)
        return SimSettings.model_validate(values)

    return make


@pytest.fixture
async def simulator(make_sim_settings: SettingsFactory) -> AsyncIterator[Simulator]:
    sim = await start_simulator(make_sim_settings())
    try:
        yield sim
    finally:
        await sim.close()


PlanSimulator = Callable[[str], Awaitable[tuple[Simulator, list[dict[str, Any]]]]]


@pytest.fixture
async def plan_simulator(
    tmp_path: Path, make_sim_settings: SettingsFactory
) -> AsyncIterator[PlanSimulator]:
    """Start simulators running a given ``extensions.conf`` text; each comes with the list
    of every event it publishes. All are closed at the end of the test."""
    started: list[Simulator] = []

    async def start(plan: str) -> tuple[Simulator, list[dict[str, Any]]]:
        path = tmp_path / f"extensions-{len(started)}.conf"
        path.write_text(plan, encoding="utf-8")
        simulator = await start_simulator(make_sim_settings(dialplan_file=path))
        started.append(simulator)
        events: list[dict[str, Any]] = []
        simulator.pbx.hub.listeners.append(events.append)
        return simulator, events

    try:
        yield start
    finally:
        for simulator in started:
            await simulator.close()
