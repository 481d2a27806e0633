"""The capacity model and the decision tree (pure)."""

from __future__ import annotations

import pytest

from operadora.capacity.host import Gpu, parse_nvidia_smi
from operadora.capacity.machine import (
    MachineFlags,
    apply_flags,
    machine_from_flags,
    telephony_from_flags,
)
from operadora.capacity.model import Machine, Measured, plan
from operadora.capacity.recommend import gpu_advice, recommend, telephony_advice, tier_for
from operadora.config import load_settings

pytestmark = pytest.mark.unit


def machine(**kw: object) -> Machine:
    base: dict[str, object] = {"cores": 8, "ram_gb": 16, "llm": "none", "source": "flags"}
    return Machine.model_validate(base | kw)


def limits(m: Machine, measured: Measured | None = None) -> dict[str, int | None]:
    return {c.name: c.max_calls for c in plan(m, measured).components}


def test_cpu_costs_of_asterisk_and_ai_add_up() -> None:
    # 1/25 + 1/2 core per call on 8 cores -> 8 / 0.54 = 14.8
    result = plan(machine())
    assert limits(machine())["cpu"] == 14
    assert result.bottleneck == "cpu" and result.max_calls == 14
    assert result.cpu_cost_per_call == pytest.approx(0.54)


def test_transcoding_and_asterisk_elsewhere_change_the_cpu_line() -> None:
    assert limits(machine(transcoding=True))["cpu"] == 13  # 8 / (0.1 + 0.5)
    assert limits(machine(asterisk_on_host=False))["cpu"] == 16  # 8 / 0.5


def test_gpu_machine_is_limited_by_the_llm() -> None:
    gpus = [Gpu(name="RTX 4090", memory_gb=24)]
    result = plan(machine(cores=16, ram_gb=64, gpus=gpus, llm="local"))
    by_name = {c.name: c.max_calls for c in result.components}
    assert by_name["stt_gpu"] == 30 and by_name["tts_gpu"] == 40 and by_name["llm_gpu"] == 15
    assert by_name["cpu"] == 66  # 16 / (1/25 + 1/5)
    assert (result.bottleneck, result.max_calls) == ("llm_gpu", 15)


def test_two_gpus_double_the_gpu_lines_and_remote_llm_drops_it() -> None:
    gpus = [Gpu(name="RTX 3090", memory_gb=24)] * 2
    result = plan(machine(cores=32, ram_gb=64, gpus=gpus, llm="remote"))
    names = {c.name: c.max_calls for c in result.components}
    assert "llm_gpu" not in names
    assert (names["stt_gpu"], names["tts_gpu"]) == (40, 60)
    assert result.bottleneck == "stt_gpu"


def test_an_h200_takes_its_measured_whisper_figure_and_the_table_for_the_rest() -> None:
    gpus = [Gpu(name="NVIDIA H200", memory_gb=139.8), Gpu(name="RTX 4090", memory_gb=24)]
    result = plan(machine(cores=32, ram_gb=128, gpus=gpus, llm="local"))
    by_name = {c.name: c for c in result.components}
    stt = by_name["stt_gpu"]
    assert (stt.max_calls, stt.source) == (100 + 30, "table")  # a mix: the basis says which
    assert "measured on H200" in stt.basis
    # TTS and LLM: the H200 counts as the table's A100, the 4090 as itself
    assert (by_name["tts_gpu"].max_calls, by_name["llm_gpu"].max_calls) == (60 + 40, 30 + 15)
    only = plan(machine(cores=32, ram_gb=128, gpus=gpus[:1], llm="local"))
    assert next(c for c in only.components if c.name == "stt_gpu").source == "measured"
    h100 = plan(
        machine(cores=32, ram_gb=128, gpus=[Gpu(name="NVIDIA H100 80GB HBM3", memory_gb=79.6)])
    )
    stt = next(c for c in h100.components if c.name == "stt_gpu")
    assert (stt.max_calls, stt.source) == (90, "measured") and "measured on H100" in stt.basis


def test_local_llm_without_gpu_is_zero_and_says_why() -> None:
    result = plan(machine(llm="local"))
    assert result.bottleneck == "llm_gpu" and result.max_calls == 0
    assert "needs a GPU" in next(c.basis for c in result.components if c.name == "llm_gpu")


def test_telephony_can_be_the_bottleneck() -> None:
    channels, basis = telephony_from_flags([], ["GXW4104"], None)
    result = plan(machine(telephony_channels=channels, telephony_basis=basis))
    assert (result.bottleneck, result.max_calls) == ("telephony", 4)
    assert basis == "Grandstream GXW4104 4"


def test_telephony_flags_add_up_and_refuse_too_many_cards() -> None:
    channels, basis = telephony_from_flags(["A104", "A200:8"], ["GXW4108"], 30)
    assert channels == 120 + 8 + 8 + 30
    assert "Sangoma A104 120" in basis and "SIP trunk 30" in basis
    assert telephony_from_flags([], [], None)[0] is None
    with pytest.raises(ValueError, match="PCIe"):
        telephony_from_flags(["A108"] * 9, [], None)


def test_measured_costs_replace_the_ai_guess() -> None:
    measured = Measured(media_cpu_ms_per_call_s=2.0, voice_cpu_ms_per_call_s=38.0)
    result = plan(machine(cores=2, asterisk_on_host=False), measured)
    cpu = next(c for c in result.components if c.name == "cpu")
    assert cpu.source == "measured" and cpu.max_calls == 50  # 2 cores / 0.040
    # half a measurement is not a measurement: the table stays
    half = plan(machine(cores=2), Measured(media_cpu_ms_per_call_s=2.0))
    assert next(c for c in half.components if c.name == "cpu").source == "table"


def test_ram_line() -> None:
    assert limits(machine(ram_gb=4))["ram"] == 50  # the seed's 2 cores / 4 GB row


@pytest.mark.parametrize(
    ("calls", "tier"),
    [(1, "under-20"), (19, "under-20"), (20, "20-100"), (100, "20-100"), (101, "over-100")],
)
def test_tiers(calls: int, tier: str) -> None:
    assert tier_for(calls) == tier


def test_small_site_recommendation() -> None:
    advice = recommend(6, plan(machine(llm="local", gpus=[Gpu(name="RTX 3060", memory_gb=12)])))
    assert advice.redis.startswith("no") and advice.instances == 1
    assert advice.telephony == "an FXO gateway (Grandstream GXW4108) for 6 fixed line(s)"
    assert advice.gpu.startswith("one RTX 3090")  # a 3060 carries 5 LLM calls, not 6
    assert recommend(3).telephony.endswith("(Grandstream GXW4104) for 3 fixed line(s)")
    assert advice.pbx == "FreePBX + ARI"


def test_medium_site_recommendation() -> None:
    result = plan(machine(cores=16, ram_gb=32, gpus=[Gpu(name="RTX 4090")], llm="local"))
    advice = recommend(60, result)
    assert advice.tier == "20-100" and advice.redis.startswith("recommended")
    assert advice.instances == 4  # 60 calls on machines of 15 each
    assert "RTX" in advice.gpu or "A100" in advice.gpu
    assert any("bottleneck: llm_gpu" in w for w in advice.warnings)
    assert recommend(30).redis.startswith("optional")


def test_large_site_recommendation() -> None:
    advice = recommend(300)
    assert advice.tier == "over-100" and advice.redis.startswith("required")
    assert "3 x Sangoma A104" in advice.telephony and "2 x Sangoma A108" in advice.telephony
    assert advice.gpu.startswith("10 x A100")
    assert "Asterisk cluster" in advice.pbx and advice.extras == ["a CDN for static audio prompts"]


def test_parse_nvidia_smi() -> None:
    text = (
        "NVIDIA GeForce RTX 4090, 24564 MiB\nNVIDIA A100-SXM4-40GB, 40960 MiB\nTesla K80, [N/A]\n"
    )
    gpus = parse_nvidia_smi(text)
    assert [(g.name, g.memory_gb) for g in gpus] == [
        ("NVIDIA GeForce RTX 4090", 24.0),
        ("NVIDIA A100-SXM4-40GB", 40.0),
        ("Tesla K80", None),
    ]
    assert parse_nvidia_smi("") == []
    with pytest.raises(ValueError):
        parse_nvidia_smi("no comma here\n")


def test_flags_for_a_planned_machine_and_over_a_detected_one() -> None:
    llm_settings = load_settings(voice={"agent": {"engine": "llm"}})
    planned = machine_from_flags(llm_settings, MachineFlags(cores=8, gpu="A100", gpus=2))
    assert planned.ram_gb == 16 and planned.llm == "local" and len(planned.gpus) == 2
    assert machine_from_flags(llm_settings, MachineFlags(cores=8)).llm == "remote"
    assert machine_from_flags(load_settings(), MachineFlags(cores=8)).llm == "none"
    detected = machine(cores=4, ram_gb=8, llm="remote", source="detected")
    changed = apply_flags(llm_settings, detected, MachineFlags(gpu="RTX 3060", trunk_channels=10))
    assert changed.llm == "local"  # a GPU given on the command line hosts the LLM
    assert (changed.cores, changed.ram_gb, changed.telephony_channels) == (4, 8, 10)
    kept = apply_flags(llm_settings, detected, MachineFlags(asterisk_elsewhere=True))
    assert kept.telephony_channels is None and not kept.asterisk_on_host
    with pytest.raises(ValueError, match="--cores"):
        machine_from_flags(llm_settings, MachineFlags())


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        (12, "an FXO gateway (Dinstar MTG1000, up to 32 lines) or an analog card (Sangoma A400"),
        (30, "an FXO gateway (Dinstar MTG1000, up to 32 lines)"),
        (80, "a digital card: Sangoma A104 (3 of its 4 E1 spans"),
    ],
)
def test_telephony_advice_is_sized(calls: int, expected: str) -> None:
    advice = telephony_advice(calls, None)
    assert advice.startswith(expected)
    if calls == 30:
        assert "A400" not in advice  # an A400 takes 24 at most


def test_gpu_advice_counts_each_model_when_none_suffices_alone() -> None:
    assert gpu_advice(80, "RTX 3090", True) == (
        "8 x RTX 3090 or 6 x RTX 4090 or 3 x A100 (calls with STT, TTS and LLM)"
    )
    assert gpu_advice(25, "RTX 3090", False).startswith("one RTX 4090")


def test_measured_media_maximum_is_a_component() -> None:
    measured = Measured(media_cpu_ms_per_call_s=9.1, media_max_calls=10, media_server_cores=1)
    result = plan(machine(cores=2, ram_gb=8, asterisk_on_host=False, media_workers=2), measured)
    media = next(c for c in result.components if c.name == "media")
    assert (media.max_calls, media.source) == (20, "measured")
    assert "10 calls with pacing held" in media.basis
    # the CPU line still needs the voice cost to be measured: it stays the table's
    assert limits(machine(cores=2), measured)["cpu"] == 3
    # a benchmark that broke at its smallest load measured no maximum: no component
    broken = Measured(media_cpu_ms_per_call_s=5.8, media_max_calls=0)
    assert "media" not in limits(machine(), broken)
    fast_cpu = machine(cores=64, ram_gb=256, asterisk_on_host=False)
    both = Measured(media_cpu_ms_per_call_s=1, voice_cpu_ms_per_call_s=9, media_max_calls=40)
    assert (plan(fast_cpu, both).bottleneck, plan(fast_cpu, both).max_calls) == ("media", 40)
