"""The design's decision tree (``shared/seed`` section 7) as a recommendation for a load."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from operadora.capacity import tables
from operadora.capacity.model import Plan

Tier = Literal["under-20", "20-100", "over-100"]

REDIS_ADVISED_ABOVE = 50  # section 6: "Más de 50 llamadas simultáneas" -> Redis


class Recommendation(BaseModel):
    calls: int
    tier: Tier
    redis: str
    instances: int
    backend: str
    pbx: str
    telephony: str
    gpu: str
    extras: list[str]
    warnings: list[str]


def tier_for(calls: int) -> Tier:
    if calls < 20:
        return "under-20"
    if calls <= 100:
        return "20-100"
    return "over-100"


def _gpu_for(calls: int, min_model: str, uses_llm: bool) -> str:
    """The smallest table GPU (from ``min_model`` up) whose slowest stage carries the load."""
    models = list(tables.GPUS.values())
    start = [g.name for g in models].index(min_model)

    def carried(row: tables.GpuCapacity) -> int:
        return min(row.stt, row.tts, row.llm) if uses_llm else min(row.stt, row.tts)

    what = "calls with STT, TTS and LLM" if uses_llm else "calls of STT and TTS"
    for row in models[start:]:
        if carried(row) >= calls:
            return f"one {row.name} ({row.memory_gb} GB) carries ~{carried(row)} {what}"
    biggest = models[-1]
    count = math.ceil(calls / carried(biggest))
    return f"{count} x {biggest.name} (~{carried(biggest)} {what} each)"


def recommend(
    calls: int, plan: Plan | None = None, fixed_lines: int | None = None
) -> Recommendation:
    """What to build for ``calls`` simultaneous calls, given this machine's plan if any."""
    tier = tier_for(calls)
    warnings: list[str] = []
    uses_llm = plan is None or plan.machine.llm != "none"
    per_machine = plan.max_calls if plan is not None and plan.max_calls > 0 else None
    if plan is not None and calls > plan.max_calls:
        warnings.append(
            f"this machine carries about {plan.max_calls} calls (bottleneck: {plan.bottleneck}); "
            f"{calls} need more machines or the fix for {plan.bottleneck}"
        )
    if tier == "under-20":
        lines = fixed_lines if fixed_lines is not None else calls
        telephony = (
            "an FXO gateway (Grandstream GXW4104/GXW4108) for fixed lines"
            if lines < 8
            else "an FXO gateway with more ports (Dinstar MTG1000) or an analog card (A400)"
        )
        return Recommendation(
            calls=calls,
            tier=tier,
            redis="no: one instance keeps its state in memory and PostgreSQL",
            instances=1,
            backend="a single Operadora instance",
            pbx="FreePBX + ARI",
            telephony=telephony,
            gpu=_gpu_for(calls, "RTX 3060", uses_llm),
            extras=[],
            warnings=warnings,
        )
    if tier == "20-100":
        instances = 1 if calls <= REDIS_ADVISED_ABOVE else min(3, max(2, math.ceil(calls / 50)))
        if per_machine is not None:
            instances = max(instances, math.ceil(calls / per_machine))
        redis = (
            "optional: needed once you run more than one instance"
            if calls <= REDIS_ADVISED_ABOVE
            else "recommended: more than 50 calls, several instances share state through Redis"
        )
        return Recommendation(
            calls=calls,
            tier=tier,
            redis=redis,
            instances=instances,
            backend=f"{instances} Operadora instance(s) (the design: scale to 2-3)",
            pbx="FreePBX + ARI",
            telephony="an FXO gateway (MTG1000, up to 32 lines) or a basic card "
            "(A200/A400 analog, A104 for E1/T1)",
            gpu=_gpu_for(calls, "RTX 3090", uses_llm),
            extras=[],
            warnings=warnings,
        )
    instances = max(3, math.ceil(calls / per_machine) if per_machine else 3)
    a104 = tables.DAHDI_CARDS["A104"].channels
    cards = math.ceil(calls / a104)
    a100 = tables.GPUS["A100"]
    per_gpu = min(a100.stt, a100.tts, a100.llm) if uses_llm else min(a100.stt, a100.tts)
    gpus = math.ceil(calls / per_gpu)
    return Recommendation(
        calls=calls,
        tier=tier,
        redis="required: shared state, locks and events across instances",
        instances=instances,
        backend=f"{instances} Operadora instances behind a load balancer",
        pbx="FreePBX + ARI + an Asterisk cluster",
        telephony=f"several digital cards: {cards} x A104 (120 E1 channels each) or "
        f"{math.ceil(calls / tables.DAHDI_CARDS['A108'].channels)} x A108",
        gpu=f"{gpus} x A100 (~{per_gpu} calls each)",
        extras=["a CDN for static audio prompts"],
        warnings=warnings,
    )
