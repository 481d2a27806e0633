"""Build the planned ``Machine`` from this host's detection or from a planned machine's flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from operadora.capacity import tables
from operadora.capacity.host import Gpu, HostFacts
from operadora.capacity.model import LlmPlacement, Machine
from operadora.config import Settings
from operadora.hardware.models import HardwareReport


def default_llm(settings: Settings, has_gpu: bool) -> LlmPlacement:
    """The scripted agent uses no LLM; an LLM agent runs on the local GPU if there is one."""
    if settings.voice.agent.engine != "llm":
        return "none"
    return "local" if has_gpu else "remote"


def telephony_from_flags(
    dahdi: Sequence[str], gateways: Sequence[str], trunk_channels: int | None
) -> tuple[int | None, str]:
    """Channels and a description from ``--dahdi A104 --gateway GXW4108:8 --trunk-channels 30``."""
    total = 0
    parts = []
    if len(dahdi) > tables.MAX_DAHDI_CARDS_PER_SERVER:
        raise ValueError(
            f"{len(dahdi)} DAHDI cards: a server has about "
            f"{tables.MAX_DAHDI_CARDS_PER_SERVER} PCIe slots"
        )
    for name in dahdi:
        device, channels = tables.lookup(tables.DAHDI_CARDS, name)
        total += channels
        parts.append(f"{device.name} {channels}")
    for name in gateways:
        device, channels = tables.lookup(tables.GATEWAYS, name)
        total += channels
        parts.append(f"{device.name} {channels}")
    if trunk_channels is not None:
        total += trunk_channels
        parts.append(f"SIP trunk {trunk_channels}")
    if not parts:
        return None, "SIP trunk only (no channel limit given)"
    return total, " + ".join(parts)


def telephony_from_report(report: HardwareReport) -> tuple[int | None, str]:
    limit = report.pipeline.max_concurrent_calls
    if report.hardware_type == "none":
        return None, "no gateway or DAHDI card found: SIP trunk only"
    cards = ", ".join(f"{c.model} {c.trunk_channels}" for c in report.dahdi.cards)
    parts = []
    if report.gateway_channels:
        parts.append(f"gateway {report.gateway_channels} ({report.gateway.source})")
    if report.dahdi.present:
        parts.append(f"DAHDI {report.dahdi_channels}" + (f" ({cards})" if cards else ""))
    return limit, " + ".join(parts)


def machine_from_host(
    settings: Settings, facts: HostFacts, report: HardwareReport, transcoding: bool
) -> Machine:
    channels, basis = telephony_from_report(report)
    return Machine(
        cores=facts.cores,
        ram_gb=facts.ram_gb,
        gpus=facts.gpus,
        transcoding=transcoding,
        llm=default_llm(settings, bool(facts.gpus)),
        telephony_channels=channels,
        telephony_basis=basis,
        media_workers=settings.media.workers,
        source="detected",
    )


def gpus_from_flags(gpu: str | None, count: int) -> list[Gpu]:
    if gpu is None:
        return []
    row, _ = tables.gpu_capacity(gpu)  # flags name a table GPU; raises on an unknown name
    return [Gpu(name=row.name, memory_gb=row.memory_gb) for _ in range(count)]


@dataclass(frozen=True, slots=True)
class MachineFlags:
    """What ``operadora capacity`` was told about the machine; ``None``: detect or default."""

    cores: int | None = None
    ram_gb: float | None = None
    gpu: str | None = None
    gpus: int = 1
    transcoding: bool = False
    dahdi: Sequence[str] = ()
    gateways: Sequence[str] = ()
    trunk_channels: int | None = None
    llm: LlmPlacement | None = None
    asterisk_elsewhere: bool = False

    @property
    def planned(self) -> bool:
        """A machine described by flags alone (``--cores``): nothing is detected."""
        return self.cores is not None

    @property
    def names_telephony(self) -> bool:
        return bool(self.dahdi or self.gateways) or self.trunk_channels is not None


def machine_from_flags(settings: Settings, flags: MachineFlags) -> Machine:
    """A planned machine; raises ValueError for unknown devices or GPUs."""
    if flags.cores is None:
        raise ValueError("a planned machine needs --cores")
    channels, basis = telephony_from_flags(flags.dahdi, flags.gateways, flags.trunk_channels)
    gpus = gpus_from_flags(flags.gpu, flags.gpus)
    return Machine(
        cores=flags.cores,
        ram_gb=flags.ram_gb if flags.ram_gb is not None else flags.cores * 2.0,
        gpus=gpus,
        transcoding=flags.transcoding,
        asterisk_on_host=not flags.asterisk_elsewhere,
        llm=flags.llm or default_llm(settings, bool(gpus)),
        telephony_channels=channels,
        telephony_basis=basis,
        media_workers=settings.media.workers,
        source="flags",
    )


def apply_flags(settings: Settings, detected: Machine, flags: MachineFlags) -> Machine:
    """This machine as detected, with what the flags say instead."""
    updates: dict[str, object] = {
        "transcoding": flags.transcoding,
        "asterisk_on_host": not flags.asterisk_elsewhere,
    }
    if flags.ram_gb is not None:
        updates["ram_gb"] = flags.ram_gb
    gpus = gpus_from_flags(flags.gpu, flags.gpus) if flags.gpu is not None else detected.gpus
    updates["gpus"] = gpus
    updates["llm"] = flags.llm or default_llm(settings, bool(gpus))
    if flags.names_telephony:
        channels, basis = telephony_from_flags(flags.dahdi, flags.gateways, flags.trunk_channels)
        updates |= {"telephony_channels": channels, "telephony_basis": basis}
    return detected.model_copy(update=updates)
