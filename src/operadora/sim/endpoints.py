"""Endpoints the simulator knows: PJSIP endpoints from ``pjsip.conf`` plus configured ones
(e.g. FXO gateways ``gateway-fxo-1``), each with a state (online/offline/unknown)."""

from __future__ import annotations

from dataclasses import dataclass, field

from operadora.sim.dialplan.conf import parse_sections, resolved
from operadora.sim.model import Channel, Json


@dataclass(slots=True)
class Endpoint:
    technology: str
    resource: str
    state: str = "offline"
    context: str = "default"
    contact: str | None = None  # sip:agent2@127.0.0.1:5071 (AOR contact)

    def json(self, channels: list[Channel]) -> Json:
        prefix = f"{self.technology}/{self.resource}-"
        return {
            "technology": self.technology,
            "resource": self.resource,
            "state": self.state,
            "channel_ids": [c.id for c in channels if c.name.startswith(prefix)],
        }


@dataclass
class EndpointRegistry:
    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)

    def add(self, endpoint: Endpoint) -> None:
        self.endpoints[(endpoint.technology.upper(), endpoint.resource)] = endpoint

    def get(self, technology: str, resource: str) -> Endpoint | None:
        return self.endpoints.get((technology.upper(), resource))

    def by_technology(self, technology: str) -> list[Endpoint]:
        return [e for (tech, _), e in self.endpoints.items() if tech == technology.upper()]

    def all(self) -> list[Endpoint]:
        return list(self.endpoints.values())

    def set_state(self, technology: str, resource: str, state: str) -> Endpoint:
        endpoint = self.get(technology, resource)
        if endpoint is None:
            endpoint = Endpoint(technology, resource)
            self.add(endpoint)
        endpoint.state = state
        return endpoint


def parse_pjsip(text: str, source: str = "pjsip.conf") -> list[Endpoint]:
    sections = parse_sections(text, source)
    names = {s.name for s in sections if not s.is_template}
    out: list[Endpoint] = []
    for name in sorted(names):
        sec = resolved(sections, name)
        if "endpoint" not in sec.all("type"):
            continue
        contact = None
        for aor in (sec.get("aors") or "").split(","):
            aor_sec = resolved(sections, aor.strip()) if aor.strip() else None
            if aor_sec is not None and aor_sec.get("contact"):
                contact = aor_sec.get("contact")
        out.append(Endpoint("PJSIP", name, "offline", sec.get("context") or "default", contact))
    return out
