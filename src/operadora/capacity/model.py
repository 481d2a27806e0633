"""The capacity model: per-component call limits, the bottleneck, and what feeds them."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from operadora.capacity import tables
from operadora.capacity.engine import EngineModel, LightLoad, SttSpin
from operadora.capacity.host import Gpu

Source = Literal["table", "measured", "detected", "flag"]
LlmPlacement = Literal["local", "remote", "none"]


class MediaStep(BaseModel):
    """One load step of the media benchmark: N calls, CPU per call-second, pacing held or not."""

    calls: int
    cpu_ms_per_call_s: float
    ok: bool


class Check(BaseModel):
    """A prediction from a per-call cost set against the maximum the benchmark measured."""

    predicted: int
    measured: int
    error_pct: float
    within_15_pct: bool
    basis: str


class Measured(BaseModel):
    """Per-call costs measured on this machine by the benchmarks (``--measure``)."""

    media_cpu_ms_per_call_s: float | None = None  # AudioSocket media path, CPU ms per call-second
    voice_cpu_ms_per_call_s: float | None = None  # VAD+STT+agent+TTS, CPU ms per call-second
    media_max_calls: int | None = None  # the most calls the media benchmark's server carried
    media_server_cores: int = 1  # the benchmark's server processes (its --workers)
    media_steps: list[MediaStep] = Field(default_factory=list)
    media_check: Check | None = None
    # bench_capacity: the whole AI call path in one server process (AudioSocket media, VAD,
    # STT, agent, TTS), CPU ms per call-second at N=1; and the most calls it carried
    engine_cpu_ms_per_call_s: float | None = None
    engine_max_calls: int | None = None
    # what the engine's process costs once while calls run (batched VAD, spinning thread
    # pools), CPU ms per second, apart from engine_cpu_ms_per_call_s, what each call adds
    engine_fixed_cpu_ms_per_s: float = 0.0
    engine_check: Check | None = None
    # bench_capacity's light loads (N=1, 4, 8): what operadora.capacity.engine predicts from
    engine_light_loads: list[LightLoad] = Field(default_factory=list)
    # and Whisper's CPU per decode back to back and after idle gaps, measured at its start
    engine_stt_spin: SttSpin | None = None
    # the telephony side's measured CPU per call-second, in place of the Asterisk table figure
    # (bench_capacity's check only: its callers stand in for Asterisk on the same cores)
    telephony_cpu_ms_per_call_s: float | None = None
    raw: dict[str, dict[str, str]] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class Machine(BaseModel):
    """The machine being planned: detected, or described by flags."""

    cores: int = Field(gt=0)
    ram_gb: float = Field(ge=0)
    gpus: list[Gpu] = Field(default_factory=list)
    transcoding: bool = False
    asterisk_on_host: bool = True
    llm: LlmPlacement = "local"
    telephony_channels: int | None = None  # None: SIP trunk only, no hardware limit
    telephony_basis: str = "SIP trunk only"
    media_workers: int = Field(1, ge=1)  # media server processes (media.workers)
    source: Literal["detected", "flags"] = "detected"


class Component(BaseModel):
    name: str
    max_calls: int | None  # None: sets no limit
    source: Source
    basis: str


class Plan(BaseModel):
    machine: Machine
    components: list[Component]
    max_calls: int
    bottleneck: str
    cpu_cost_per_call: float  # cores per simultaneous call
    measured: Measured | None = None


def cpu_component(machine: Machine, measured: Measured | None) -> tuple[Component, float]:
    """One CPU shared by Asterisk and Operadora: per-call costs (cores per call) add up."""
    parts: list[str] = []
    cost = 0.0
    source: Source = "table"
    telephony = measured.telephony_cpu_ms_per_call_s if measured else None
    if machine.asterisk_on_host and telephony is not None:
        cost += telephony / 1000
        parts.append(f"telephony {telephony:.1f} CPU ms per call-second (measured)")
    elif machine.asterisk_on_host:
        per_core = (
            tables.ASTERISK_CHANNELS_PER_CORE_TRANSCODING
            if machine.transcoding
            else tables.ASTERISK_CHANNELS_PER_CORE
        )
        cost += 1 / per_core
        parts.append(f"Asterisk {per_core}/core{' (transcoding)' if machine.transcoding else ''}")
    engine = measured.engine_cpu_ms_per_call_s if measured else None
    media = measured.media_cpu_ms_per_call_s if measured else None
    voice = measured.voice_cpu_ms_per_call_s if measured else None
    fixed = measured.engine_fixed_cpu_ms_per_s / 1000 if measured and engine is not None else 0.0
    if engine is not None:
        cost += engine / 1000
        source = "measured"
        parts.append(f"AI call path {engine:.1f} CPU ms per call-second (measured)")
        if fixed:
            parts.append(f"{fixed * 1000:.0f} CPU ms per second once (measured)")
    elif media is not None and voice is not None:
        cost += (media + voice) / 1000
        source = "measured"
        parts.append(f"media {media:.1f} + voice {voice:.1f} CPU ms per call-second (measured)")
    else:
        ai = (
            tables.AI_CHANNELS_PER_CORE_WITH_GPU
            if machine.gpus
            else tables.AI_CHANNELS_PER_CORE_CPU_ONLY
        )
        cost += 1 / ai
        parts.append(f"AI {ai}/core ({'GPU' if machine.gpus else 'CPU only'})")
    calls = math.floor(max(0.0, machine.cores - fixed) / cost) if cost > 0 else None
    basis = f"{machine.cores} cores; " + ", ".join(parts)
    return Component(name="cpu", max_calls=calls, source=source, basis=basis), cost


def gpu_components(machine: Machine) -> list[Component]:
    if not machine.gpus:
        return []
    rows = [tables.gpu_capacity(g.name, g.memory_gb) for g in machine.gpus]
    names = ", ".join(f"{r.name}{' (estimated)' if est else ''}" for r, est in rows)
    measured = [tables.measured_stt(g.name) for g in machine.gpus]
    stt = sum(m[1] if m else r.stt for (r, _), m in zip(rows, measured, strict=True))
    stt_basis = names
    found = sorted({m[0] for m in measured if m})
    if found:
        stt_basis += "; Whisper large-v3 measured on " + ", ".join(found) + " (docs/gpu.md)"
    stt_source: Source = "measured" if all(measured) else "table"  # basis names the measured
    out = [
        Component(name="stt_gpu", max_calls=stt, source=stt_source, basis=stt_basis),
        Component(
            name="tts_gpu", max_calls=sum(r.tts for r, _ in rows), source="table", basis=names
        ),
    ]
    if machine.llm == "local":
        out.append(
            Component(
                name="llm_gpu", max_calls=sum(r.llm for r, _ in rows), source="table", basis=names
            )
        )
    return out


def media_component(machine: Machine, measured: Measured | None) -> Component | None:
    """The most calls the media benchmark's server carried with its pacing held, per server
    process, times this machine's media workers. A maximum of 0 (pacing broke already at the
    benchmark's smallest load) only says "fewer than that" and is left out."""
    if measured is None or not measured.media_max_calls:
        return None
    per_process = measured.media_max_calls / measured.media_server_cores
    return Component(
        name="media",
        max_calls=math.floor(per_process * machine.media_workers),
        source="measured",
        basis=f"bench_media: {measured.media_max_calls} calls with pacing held on "
        f"{measured.media_server_cores} server process(es); {machine.media_workers} media "
        "worker(s) here",
    )


def engine_component(machine: Machine, measured: Measured | None) -> Component | None:
    """One engine process on this machine's cores, predicted from bench_capacity's light
    loads (``operadora.capacity.engine``): the cost curves, and every call's turns queueing
    for Whisper's one decode at a time under the service criterion (v2v p95 <= 1 s). Asterisk
    takes its table cost per call in the place of the benchmark's callers (none when it runs
    elsewhere). Several media workers would each have their own Whisper: not modelled."""
    loads = measured.engine_light_loads if measured else []
    if len({x.calls for x in loads}) < 2:
        return None
    telephony = 0.0
    if machine.asterisk_on_host:
        per_core = (
            tables.ASTERISK_CHANNELS_PER_CORE_TRANSCODING
            if machine.transcoding
            else tables.ASTERISK_CHANNELS_PER_CORE
        )
        telephony = 1000 / per_core
    model = EngineModel.from_light(
        loads,
        machine.cores,
        telephony_cpu_ms=telephony,
        spin=measured.engine_stt_spin if measured else None,
    )
    prediction = model.predict()
    return Component(
        name="engine",
        max_calls=prediction.max_calls,
        source="measured",
        basis=f"limit {prediction.limit}; bench_capacity light loads, telephony "
        f"{telephony:.0f} CPU ms per call-second; {prediction.basis}",
    )


def plan(machine: Machine, measured: Measured | None = None) -> Plan:
    """Every component's limit; the smallest is the machine's maximum and its bottleneck."""
    cpu, cost = cpu_component(machine, measured)
    components = [
        Component(
            name="telephony",
            max_calls=machine.telephony_channels,
            source="detected" if machine.source == "detected" else "flag",
            basis=machine.telephony_basis,
        ),
        cpu,
        Component(
            name="ram",
            max_calls=math.floor(machine.ram_gb * 1024 / tables.RAM_MB_PER_CHANNEL),
            source="table",
            basis=f"{machine.ram_gb:g} GB at {tables.RAM_MB_PER_CHANNEL:.0f} MB per call",
        ),
        *gpu_components(machine),
    ]
    if not machine.gpus and machine.llm == "local":
        components.append(
            Component(
                name="llm_gpu",
                max_calls=0,
                source="table",
                basis="a local LLM needs a GPU; none found (use --llm remote or add a GPU)",
            )
        )
    if media := media_component(machine, measured):
        components.append(media)
    if engine := engine_component(machine, measured):
        components.append(engine)
    limited = [c for c in components if c.max_calls is not None]
    worst = min(limited, key=lambda c: c.max_calls if c.max_calls is not None else 0)
    return Plan(
        machine=machine,
        components=components,
        max_calls=worst.max_calls or 0,
        bottleneck=worst.name,
        cpu_cost_per_call=round(cost, 5),
        measured=measured,
    )
