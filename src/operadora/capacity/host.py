"""What this machine has: CPU cores, RAM, NVIDIA GPUs (``nvidia-smi``)."""

from __future__ import annotations

import asyncio
import os
import re

from pydantic import BaseModel

NVIDIA_SMI_ARGS = ("--query-gpu=name,memory.total", "--format=csv,noheader")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(MiB|GiB|MB|GB)?\s*$", re.I)


class Gpu(BaseModel):
    name: str
    memory_gb: float | None = None


class HostFacts(BaseModel):
    cores: int
    ram_gb: float
    gpus: list[Gpu]
    gpu_detail: str


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader`` lines to GPUs.

    A line reads ``NVIDIA GeForce RTX 4090, 24564 MiB``; ``[N/A]`` memory is kept as unknown.
    """
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, memory = line.rpartition(",")
        if not name:
            raise ValueError(f"unexpected nvidia-smi line {line!r}")
        match = _MEMORY.match(memory)
        memory_gb = None
        if match:
            value = float(match.group(1))
            unit = (match.group(2) or "MiB").lower()
            memory_gb = round(value / 1024 if unit in ("mib", "mb") else value, 1)
        gpus.append(Gpu(name=name.strip(), memory_gb=memory_gb))
    return gpus


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask, as containers restrict it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def ram_gb() -> float:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0.0
    return round(pages * size / 1024**3, 1)


async def detect_gpus(
    command: str = "nvidia-smi", timeout_s: float = 10.0
) -> tuple[list[Gpu], str]:
    """NVIDIA GPUs with a clear detail when there are none or nvidia-smi cannot tell."""
    try:
        proc = await asyncio.create_subprocess_exec(
            command,
            *NVIDIA_SMI_ARGS,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except (FileNotFoundError, PermissionError):
        return [], f"{command} not available: no NVIDIA GPU detected"
    except OSError as exc:
        return [], f"cannot run {command}: {exc}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return [], f"{command} did not answer in {timeout_s:g} s"
    if proc.returncode != 0:
        message = (err or out).decode(errors="replace").strip().splitlines()
        return [], f"{command} failed: {message[0] if message else proc.returncode}"
    try:
        gpus = parse_nvidia_smi(out.decode(errors="replace"))
    except ValueError as exc:
        return [], str(exc)
    return gpus, f"{len(gpus)} GPU(s) from {command}"


async def host_facts(nvidia_smi: str = "nvidia-smi") -> HostFacts:
    gpus, detail = await detect_gpus(nvidia_smi)
    return HostFacts(cores=cpu_cores(), ram_gb=ram_gb(), gpus=gpus, gpu_detail=detail)
