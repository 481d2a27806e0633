"""Host facts: nvidia-smi as a real subprocess (a stand-in script), cores and RAM."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from operadora.capacity.host import cpu_cores, detect_gpus, host_facts, ram_gb
from operadora.cli import app

pytestmark = pytest.mark.integration


def tool(tmp_path: Path, body: str) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


TWO_GPUS = """
assert sys.argv[1:] == ["--query-gpu=name,memory.total", "--format=csv,noheader"], sys.argv
print("NVIDIA GeForce RTX 3090, 24576 MiB")
print("NVIDIA GeForce RTX 3090, 24576 MiB")
"""


async def test_gpus_from_nvidia_smi(tmp_path: Path) -> None:
    gpus, detail = await detect_gpus(tool(tmp_path, TWO_GPUS))
    assert [(g.name, g.memory_gb) for g in gpus] == [("NVIDIA GeForce RTX 3090", 24.0)] * 2
    assert detail.startswith("2 GPU(s)")


async def test_nvidia_smi_problems_mean_no_gpu_with_a_reason(tmp_path: Path) -> None:
    gpus, detail = await detect_gpus(str(tmp_path / "absent"))
    assert gpus == [] and "no NVIDIA GPU" in detail
    failing = tool(
        tmp_path,
        "print('NVIDIA-SMI has failed because it couldn\\'t communicate with the NVIDIA driver.')"
        "\nsys.exit(9)",
    )
    gpus, detail = await detect_gpus(failing)
    assert gpus == [] and "couldn't communicate" in detail
    gpus, detail = await detect_gpus(tool(tmp_path, "time.sleep(30)"), timeout_s=0.3)
    assert gpus == [] and "did not answer" in detail


async def test_host_facts() -> None:
    facts = await host_facts("definitely-not-nvidia-smi")
    assert facts.cores == cpu_cores() == len(os.sched_getaffinity(0))
    assert 0 < facts.ram_gb == ram_gb()


def test_capacity_uses_detected_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("OPERADORA_") or key == "ARI_PASSWORD":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPERADORA_HARDWARE__NVIDIA_SMI", tool(tmp_path, TWO_GPUS))
    monkeypatch.setenv("OPERADORA_HARDWARE__DAHDI_DEV", str(tmp_path / "none"))
    monkeypatch.setenv("OPERADORA_VOICE__AGENT__ENGINE", "llm")
    result = CliRunner().invoke(app, ["capacity", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    assert plan["machine"]["llm"] == "local" and len(plan["machine"]["gpus"]) == 2
    limits = {c["name"]: c["max_calls"] for c in plan["components"]}
    assert (limits["stt_gpu"], limits["tts_gpu"], limits["llm_gpu"]) == (40, 60, 20)


def test_capacity_measure_with_stand_in_benchmarks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("OPERADORA_") or key == "ARI_PASSWORD":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPERADORA_HARDWARE__DAHDI_DEV", str(tmp_path / "none"))
    monkeypatch.setenv("OPERADORA_HARDWARE__NVIDIA_SMI", str(tmp_path / "none"))
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_media.py").write_text(
        "print('N=   20  cpu  4.000 ms/call-s  pacing p99 1.0 ms  ok')\n"
        "print('cpu_ms_per_call_second: 5')\nprint('max_concurrent_calls: 230')\n"
    )
    (bench / "bench_capacity.py").write_text(
        "print('cpu_ms_per_call_second: 90')\nprint('caller_cpu_ms_per_call_second: 10')\n"
        "print('cores: 2')\n"
        "print('predicted_max_calls: 999')\nprint('measured_max_calls: 19')\n"
    )
    args = ["capacity", "--json", "--measure", "--bench-dir", str(bench), "--asterisk-elsewhere"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    cpu = next(c for c in plan["components"] if c["name"] == "cpu")
    assert cpu["source"] == "measured"
    assert cpu["max_calls"] == int(cpu_cores() / 0.09)  # 90 ms: bench_capacity's
    measured = plan["measured"]
    assert measured["media_max_calls"] == 230
    check = measured["media_check"]
    assert (check["predicted"], check["measured"], check["within_15_pct"]) == (250, 230, True)
    engine = measured["engine_check"]  # 2 x 1000 / (90 + 10), not the printed 999
    assert (engine["predicted"], engine["measured"], engine["error_pct"]) == (20, 19, 5.3)
    table = CliRunner().invoke(app, args[:1] + args[2:], env={"COLUMNS": "240"})
    assert "media prediction" in table.stdout and "within ±15 %" in table.stdout
    assert "predicted 20 calls vs 19 measured" in table.stdout
