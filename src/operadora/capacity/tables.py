"""The design's capacity tables (``shared/seed`` section 2), the planner's defaults.

Every number here is the user's design document's own figure; ``--measure`` replaces the CPU
ones with what this machine does.
"""

from __future__ import annotations

from dataclasses import dataclass

# A. CPU and RAM
ASTERISK_CHANNELS_PER_CORE = 25  # "Sin transcoding: ~25 canales por core"
ASTERISK_CHANNELS_PER_CORE_TRANSCODING = 10  # "Con transcoding (g729 <-> ulaw): ~10 por core"
AI_CHANNELS_PER_CORE_WITH_GPU = 5  # "Con IA (STT/TTS/LLM): ~2-5 canales por core (depende de GPU)"
AI_CHANNELS_PER_CORE_CPU_ONLY = 2  # the low end: speech models run on the CPU too
# "2 cores, 4GB RAM ~50 canales" ... "16 cores, 32GB RAM ~500": the tightest row gives 80 MB/call
RAM_MB_PER_CHANNEL = 4 * 1024 / 50
RAM_RESERVED_MB = 0  # the table's rows already include the system


@dataclass(frozen=True, slots=True)
class GpuCapacity:
    """B. Calls one GPU carries for each model (Whisper STT, F5-TTS, an 8-14B LLM)."""

    name: str
    memory_gb: int
    stt: int
    tts: int
    llm: int


GPUS: dict[str, GpuCapacity] = {
    "RTX 3060": GpuCapacity("RTX 3060", 12, stt=10, tts=15, llm=5),
    "RTX 3090": GpuCapacity("RTX 3090", 24, stt=20, tts=30, llm=10),
    "RTX 4090": GpuCapacity("RTX 4090", 24, stt=30, tts=40, llm=15),
    "A100": GpuCapacity("A100", 40, stt=50, tts=60, llm=30),
}


# Whisper large-v3 calls one GPU carries, measured on the card (bench/bench_gpu_stt.py,
# docs/gpu.md): callers speaking half the time, p95 <= 300 ms from the end of an utterance to
# its transcript, fp16 with a CUDA-graph decoder, STT alone on the GPU (H200: 103 measured,
# H100 80 GB: 94; rounded down). Replaces the table's STT figure for that card; TTS and LLM
# stay the table's.
MEASURED_STT: dict[str, int] = {"H200": 100, "H100": 90}


# Memory of cards outside the design's table, for planning with ``--gpu NAME`` alone.
GPU_MEMORY_GB: dict[str, float] = {"H200": 141, "H100": 80, "L40S": 48}


def measured_stt(name: str) -> tuple[str, int] | None:
    """``(card, calls)`` when Whisper's calls per GPU were measured on this card."""
    norm = name.upper().replace(" ", "")
    for key, calls in MEASURED_STT.items():
        if key in norm:
            return key, calls
    return None


@dataclass(frozen=True, slots=True)
class TelephonyDevice:
    """C. DAHDI cards and D. FXO/FXS gateways: ports and simultaneous channels."""

    name: str
    kind: str  # dahdi-analog | dahdi-digital | gateway
    channels: int  # the nominal (base) channel count
    max_channels: int  # with every module fitted
    note: str


DAHDI_CARDS: dict[str, TelephonyDevice] = {
    "A200": TelephonyDevice("Sangoma A200D", "dahdi-analog", 2, 24, "analog FXO/FXS, 2-24"),
    "A400": TelephonyDevice("Sangoma A400", "dahdi-analog", 4, 24, "analog FXO/FXS, 4-24"),
    "A104": TelephonyDevice("Sangoma A104", "dahdi-digital", 120, 120, "4 E1/T1/PRI"),
    "A108": TelephonyDevice("Sangoma A108", "dahdi-digital", 240, 240, "8 E1/T1/PRI"),
}
MAX_DAHDI_CARDS_PER_SERVER = 8  # PCIe slots

GATEWAYS: dict[str, TelephonyDevice] = {
    "GXW4104": TelephonyDevice("Grandstream GXW4104", "gateway", 4, 4, "4 FXO"),
    "GXW4108": TelephonyDevice("Grandstream GXW4108", "gateway", 8, 8, "8 FXO"),
    "MTG1000": TelephonyDevice("Dinstar MTG1000", "gateway", 8, 32, "8-32 FXO"),
    "VG224": TelephonyDevice("Cisco VG224", "gateway", 24, 24, "24 FXS"),
}


def lookup(table: dict[str, TelephonyDevice], name: str) -> tuple[TelephonyDevice, int]:
    """A device by table key (case and spaces ignored), ``NAME:PORTS`` overriding the count."""
    key, _, ports = name.partition(":")
    norm = key.replace(" ", "").upper()
    for table_key, device in table.items():
        if norm in (table_key, table_key + "D", device.name.replace(" ", "").upper()):
            if not ports:
                return device, device.channels
            count = int(ports)
            if not 0 < count <= device.max_channels:
                raise ValueError(f"{device.name} has 1 to {device.max_channels} ports, not {count}")
            return device, count
    raise ValueError(f"unknown device {key!r}; known: {', '.join(table)}")


def gpu_capacity(name: str, memory_gb: float | None = None) -> tuple[GpuCapacity, bool]:
    """The table row for a GPU name; ``(row, estimated)``.

    A GPU not in the table takes the row of the largest listed GPU whose memory it has, or,
    below 12 GB, the RTX 3060 row scaled down by memory.
    """
    norm = name.upper().replace("NVIDIA", "").replace("GEFORCE", "").replace(" ", "")
    for key, row in GPUS.items():
        if key.replace(" ", "").upper() in norm:
            return row, False
    if memory_gb is None:
        memory_gb = next((gb for key, gb in GPU_MEMORY_GB.items() if key in norm), None)
    if memory_gb is None:
        raise ValueError(f"unknown GPU {name!r} and no memory size; known: {', '.join(GPUS)}")
    fitting = [row for row in GPUS.values() if row.memory_gb <= memory_gb]
    if fitting:
        best = max(fitting, key=lambda r: (r.memory_gb, r.llm))
        return GpuCapacity(name, int(memory_gb), best.stt, best.tts, best.llm), True
    scale = memory_gb / GPUS["RTX 3060"].memory_gb
    base = GPUS["RTX 3060"]
    return (
        GpuCapacity(
            name,
            int(memory_gb),
            int(base.stt * scale),
            int(base.tts * scale),
            int(base.llm * scale),
        ),
        True,
    )
