"""The design's decision tree (``shared/seed`` section 7) as a recommendation for a load."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from operadora.capacity import tables
from operadora.capacity.model import Plan

Tier = Literal["under-20", "20-100", "over-100"]

REDIS_ADVISED_ABOVE = 50  # section 6: "Más de 50 llamadas simultáneas" -> Redis
E1_CHANNELS = 30


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


def _carried(row: tables.GpuCapacity, uses_llm: bool) -> int:
    return min(row.stt, row.tts, row.llm) if uses_llm else min(row.stt, row.tts)


def gpu_advice(calls: int, min_model: str, uses_llm: bool) -> str:
    """The smallest table GPU (from ``min_model`` up) whose slowest stage carries the load;
    when none does alone, how many of each it takes."""
    models = list(tables.GPUS.values())
    models = models[[g.name for g in models].index(min_model) :]
    what = "calls with STT, TTS and LLM" if uses_llm else "calls of STT and TTS"
    for row in models:
        if _carried(row, uses_llm) >= calls:
            return f"one {row.name} ({row.memory_gb} GB): ~{_carried(row, uses_llm)} {what}"
    options = [f"{math.ceil(calls / _carried(row, uses_llm))} x {row.name}" for row in models]
    return " or ".join(options) + f" ({what})"


def telephony_advice(calls: int, fixed_lines: int | None) -> str:
    """Lines for ``calls``: the design's gateway-or-card choice, sized with its tables."""
    lines = fixed_lines if fixed_lines is not None else calls
    gxw4108 = tables.GATEWAYS["GXW4108"]
    mtg = tables.GATEWAYS["MTG1000"]
    a400 = tables.DAHDI_CARDS["A400"]
    if lines <= gxw4108.channels:
        model = "GXW4104" if lines <= tables.GATEWAYS["GXW4104"].channels else "GXW4108"
        return f"an FXO gateway (Grandstream {model}) for {lines} fixed line(s)"
    if lines <= mtg.max_channels:
        card = f" or an analog card ({a400.name}, up to {a400.max_channels})"
        card = card if lines <= a400.max_channels else ""
        return f"an FXO gateway ({mtg.name}, up to {mtg.max_channels} lines){card}"
    spans = math.ceil(lines / E1_CHANNELS)
    a104, a108 = tables.DAHDI_CARDS["A104"], tables.DAHDI_CARDS["A108"]
    if lines <= a104.channels:
        return f"a digital card: {a104.name} ({spans} of its 4 E1 spans, 30 channels each)"
    return (
        f"several digital cards: {math.ceil(lines / a104.channels)} x {a104.name} or "
        f"{math.ceil(lines / a108.channels)} x {a108.name} ({spans} E1 spans)"
    )


def recommend(
    calls: int, plan: Plan | None = None, fixed_lines: int | None = None
) -> Recommendation:
    """What to build for ``calls`` simultaneous calls, given this machine's plan if any."""
    tier = tier_for(calls)
    uses_llm = plan is None or plan.machine.llm != "none"
    per_machine = plan.max_calls if plan is not None and plan.max_calls > 0 else None
    needed = math.ceil(calls / per_machine) if per_machine else 1
    warnings: list[str] = []
    if plan is not None and calls > plan.max_calls:
        warnings.append(
            f"this machine carries about {plan.max_calls} calls (bottleneck: {plan.bottleneck}); "
            f"{calls} need more machines or the fix for {plan.bottleneck}"
        )
    telephony = telephony_advice(calls, fixed_lines)
    if tier == "under-20":
        return Recommendation(
            calls=calls,
            tier=tier,
            redis="no: one instance keeps its state in memory and PostgreSQL",
            instances=1,
            backend="a single Operadora instance",
            pbx="FreePBX + ARI",
            telephony=telephony,
            gpu=gpu_advice(calls, "RTX 3060", uses_llm),
            extras=[],
            warnings=warnings,
        )
    if tier == "20-100":
        instances = max(needed, 1 if calls <= REDIS_ADVISED_ABOVE else 2)
        redis = (
            "optional: needed once you run more than one instance"
            if calls <= REDIS_ADVISED_ABOVE and instances == 1
            else "recommended: several instances share calls, state and events through Redis"
        )
        return Recommendation(
            calls=calls,
            tier=tier,
            redis=redis,
            instances=instances,
            backend="a single Operadora instance"
            if instances == 1
            else "Operadora instances sharing Redis (the design: 2-3 at this load)",
            pbx="FreePBX + ARI",
            telephony=telephony,
            gpu=gpu_advice(calls, "RTX 3090", uses_llm),
            extras=[],
            warnings=warnings,
        )
    instances = max(needed, 3)
    return Recommendation(
        calls=calls,
        tier=tier,
        redis="required: shared state, locks and events across instances",
        instances=instances,
        backend="Operadora instances behind a load balancer",
        pbx="FreePBX + ARI + an Asterisk cluster",
        telephony=telephony,
        gpu=gpu_advice(calls, "A100", uses_llm),
        extras=["a CDN for static audio prompts"],
        warnings=warnings,
    )
