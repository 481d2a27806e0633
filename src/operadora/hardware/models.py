"""What hardware detection reports: plain pydantic models, serialisable to JSON."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

HardwareType = Literal["none", "gateway", "dahdi", "both"]
Route = Literal["dahdi", "gateway", "sip_trunk"]
ProbeOutcome = Literal["reachable", "unreachable", "timeout", "error"]


class GatewayEndpoint(BaseModel):
    """A PJSIP endpoint (an ARI ``Endpoint``) whose resource name marks it as an FXO gateway."""

    technology: str
    resource: str
    state: str = "unknown"  # ARI: unknown | offline | online
    channel_ids: list[str] = Field(default_factory=list)
    server: str = ""  # the configured Asterisk server (asterisk.servers[].name) that lists it

    @property
    def online(self) -> bool:
        return self.state == "online"


class GatewayProbe(BaseModel):
    """The fallback check of one configured gateway address (never a network scan)."""

    address: str
    host: str
    port: int
    transport: Literal["udp", "tcp"]
    outcome: ProbeOutcome
    detail: str = ""
    rtt_ms: float | None = None


class DahdiPort(BaseModel):
    """One analog channel as ``dahdi_scan`` prints it (``port=N,FXS``)."""

    channel: int
    kind: Literal["FXS", "FXO", "none", "unknown"]
    failed: bool = False


class DahdiSpan(BaseModel):
    """One ``[N]`` section of ``dahdi_scan``."""

    number: int
    active: bool = True
    alarms: str = ""
    description: str = ""
    name: str = ""
    manufacturer: str = ""
    devicetype: str = ""
    location: str = ""
    basechan: int = 0
    totchans: int = 0
    irq: int | None = None
    type: str = ""  # analog | digital-E1 | digital-T1 | ...; none when the span is unconfigured
    syncsrc: int | None = None
    lbo: str | None = None
    coding_opts: list[str] = Field(default_factory=list)
    framing_opts: list[str] = Field(default_factory=list)
    coding: str | None = None
    framing: str | None = None
    ports: list[DahdiPort] = Field(default_factory=list)

    @property
    def digital(self) -> bool:
        return self.type.startswith("digital-")

    @property
    def line_type(self) -> str:
        if self.digital:
            return self.type.removeprefix("digital-")
        return self.type or "unknown"

    @property
    def alarm_ok(self) -> bool:
        return self.alarms == "OK"


class DahdiCard(BaseModel):
    """Spans grouped by card (same manufacturer, device type and location)."""

    model: str  # the table key when recognised (A200, A104, TDM2400P, ...), else devicetype
    manufacturer: str
    devicetype: str
    location: str
    spans: list[int]
    line_type: str  # analog | E1 | T1 | J1 | BRI...
    fxo_ports: int = 0
    fxs_ports: int = 0
    voice_channels: int  # every channel that can carry a call (bearers, FXO and FXS ports)
    trunk_channels: int  # PSTN channels in service now: FXO ports, bearers of spans without alarm
    alarms: list[str] = Field(default_factory=list)


class DahdiReport(BaseModel):
    present: bool  # /dev/dahdi exists
    scanned: bool  # dahdi_scan ran and its output was parsed
    detail: str = ""
    spans: list[DahdiSpan] = Field(default_factory=list)
    cards: list[DahdiCard] = Field(default_factory=list)

    @property
    def trunk_channels(self) -> int:
        return sum(card.trunk_channels for card in self.cards)


class GatewayReport(BaseModel):
    source: Literal["ari", "probe", "none"]
    detail: str = ""
    endpoints: list[GatewayEndpoint] = Field(default_factory=list)
    probes: list[GatewayProbe] = Field(default_factory=list)
    lines_per_gateway: int = 1  # hardware.gateway_lines

    @property
    def channels(self) -> int:
        """FXO lines: ``lines_per_gateway`` per endpoint ARI lists, else per reachable address."""
        if self.endpoints:
            return len(self.endpoints) * self.lines_per_gateway
        reachable = sum(1 for p in self.probes if p.outcome == "reachable")
        return reachable * self.lines_per_gateway


class PipelineConfig(BaseModel):
    """How the call pipeline should run on what was found."""

    max_concurrent_calls: int | None  # None: not limited by telephony hardware (SIP trunk)
    route_preference: list[Route]
    codecs: list[str]
    use_transcoding: bool = False


class HardwareReport(BaseModel):
    hardware_type: HardwareType
    gateway: GatewayReport
    dahdi: DahdiReport
    gateway_channels: int
    dahdi_channels: int
    pipeline: PipelineConfig
