"""Fixtures for the PBX simulator tests (``operadora.sim``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

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
