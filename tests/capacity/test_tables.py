"""The planner's defaults are the design's own tables (shared/seed section 2), read back here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from operadora.capacity import tables
from support import require

pytestmark = pytest.mark.unit

SEED_DIR = Path(__file__).parents[3] / "shared" / "seed"


def seed_text() -> str:
    files = sorted(SEED_DIR.glob("*.txt")) if SEED_DIR.is_dir() else []
    require(bool(files), "shared/seed (the user's design)")
    return files[0].read_text()


def rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the markdown table that follows ``header``."""
    after = text[text.index(header) :]
    out = []
    for line in after.splitlines()[1:]:
        if not line.startswith("|"):
            if out:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if set(cells[0]) <= {"-", ":"}:
            continue
        out.append(cells)
    return out[1:]  # drop the header row


def first_int(cell: str) -> int:
    match = re.search(r"\d+", cell.replace(",", ""))
    assert match, cell
    return int(match.group())


def test_cpu_figures_match_the_seed() -> None:
    text = seed_text()
    assert f"Sin transcoding: ~{tables.ASTERISK_CHANNELS_PER_CORE} canales por core" in text
    assert (
        f"Con transcoding (g729 ↔ ulaw): ~{tables.ASTERISK_CHANNELS_PER_CORE_TRANSCODING} "
        "canales por core" in text
    )
    low, high = tables.AI_CHANNELS_PER_CORE_CPU_ONLY, tables.AI_CHANNELS_PER_CORE_WITH_GPU
    assert f"Con IA (STT/TTS/LLM): ~{low}-{high} canales por core" in text
    first = rows(text, "#### A. CPU y RAM")[0]
    assert first[0] == "2 cores, 4GB RAM" and first_int(first[1]) == 50
    assert tables.RAM_MB_PER_CHANNEL == 4 * 1024 / 50


def test_gpu_table_matches_the_seed() -> None:
    seed = {}
    for cells in rows(seed_text(), "#### B. GPU"):
        name = cells[0].split("(")[0].strip()
        seed[name] = (first_int(cells[1]), first_int(cells[2]), first_int(cells[3]))
    ours = {k: (g.stt, g.tts, g.llm) for k, g in tables.GPUS.items()}
    assert ours == seed


def test_dahdi_and_gateway_tables_match_the_seed() -> None:
    text = seed_text()
    for cells in rows(text, "#### C. Tarjetas DAHDI"):
        key = cells[0].split()[-1].removesuffix("D")
        card = tables.DAHDI_CARDS[key]
        numbers = [int(n) for n in re.findall(r"\d+", cells[2].replace(",", ""))]
        expected_max = numbers[1] if "-" in cells[2] else numbers[0]
        assert (card.channels, card.max_channels) == (numbers[0], expected_max)
    for cells in rows(text, "#### D. Gateway FXO/FXS"):
        key = cells[0].split()[-1]
        gateway = tables.GATEWAYS[key]
        numbers = [int(n) for n in re.findall(r"\d+", cells[2])]
        assert (gateway.channels, gateway.max_channels) == (numbers[0], numbers[-1])
    assert f"Máximo ~{tables.MAX_DAHDI_CARDS_PER_SERVER} tarjetas por servidor" in text


def test_lookup_and_port_override() -> None:
    device, channels = tables.lookup(tables.GATEWAYS, "mtg1000:16")
    assert (device.name, channels) == ("Dinstar MTG1000", 16)
    assert tables.lookup(tables.DAHDI_CARDS, "A200D")[1] == 2
    with pytest.raises(ValueError, match="1 to 8"):
        tables.lookup(tables.GATEWAYS, "GXW4108:9")
    with pytest.raises(ValueError, match="unknown device"):
        tables.lookup(tables.GATEWAYS, "FOO")


def test_gpu_names_from_nvidia_smi_and_unknown_gpus() -> None:
    row, estimated = tables.gpu_capacity("NVIDIA GeForce RTX 4090")
    assert (row.name, estimated) == ("RTX 4090", False)
    row, estimated = tables.gpu_capacity("NVIDIA A100-SXM4-40GB")
    assert row.llm == 30 and not estimated
    h100, estimated = tables.gpu_capacity("NVIDIA H100 80GB HBM3", 79.6)
    assert estimated and (h100.stt, h100.tts, h100.llm) == (50, 60, 30)
    h200, estimated = tables.gpu_capacity("H200")  # memory known without detection
    assert estimated and (h200.memory_gb, h200.stt) == (141, 50)
    small, estimated = tables.gpu_capacity("GeForce GTX 1660", 6.0)
    assert estimated and (small.stt, small.tts, small.llm) == (5, 7, 2)
    with pytest.raises(ValueError, match="unknown GPU"):
        tables.gpu_capacity("Voodoo 3")
