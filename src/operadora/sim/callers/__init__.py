"""Simulated callers (personas), their arrivals, and simulated extensions and queue members."""

from operadora.sim.callers.scenario import (
    Persona,
    ScenarioError,
    load_persona,
    load_personas,
    parse_persona,
    shipped_personas,
)

__all__ = [
    "Persona",
    "ScenarioError",
    "load_persona",
    "load_personas",
    "parse_persona",
    "shipped_personas",
]
