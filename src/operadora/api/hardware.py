"""``/api/hardware`` and ``/api/capacity``: what ``operadora hardware`` / ``capacity`` say,
detected on this machine and cached for a minute (detection probes devices and the network)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from operadora.api.auth import Viewer
from operadora.api.errors import ERROR_RESPONSES
from operadora.capacity.host import host_facts
from operadora.capacity.machine import machine_from_host
from operadora.capacity.model import Plan, plan
from operadora.capacity.recommend import Recommendation, recommend
from operadora.config import Settings
from operadora.hardware.detect import detect_hardware
from operadora.hardware.models import HardwareReport

router = APIRouter(prefix="/api", responses=ERROR_RESPONSES, tags=["hardware"])
CACHE_S = 60.0


class CapacityOut(BaseModel):
    plan: Plan
    recommendation: Recommendation


class _Detected:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.at = 0.0
        self.value: tuple[Any, HardwareReport] | None = None

    async def get(self, settings: Settings) -> tuple[Any, HardwareReport]:
        async with self.lock:
            if self.value is None or time.monotonic() - self.at > CACHE_S:
                facts, report = await asyncio.gather(
                    host_facts(settings.hardware.nvidia_smi), detect_hardware(settings)
                )
                self.value, self.at = (facts, report), time.monotonic()
            return self.value


def _detected(request: Request) -> _Detected:
    state = request.app.state
    if not hasattr(state, "detected"):
        state.detected = _Detected()
    detected: _Detected = state.detected
    return detected


@router.get("/hardware", response_model=HardwareReport)
async def hardware(request: Request, _: Viewer) -> HardwareReport:
    """FXO gateways and DAHDI cards found, and the pipeline configuration they imply."""
    _, report = await _detected(request).get(request.app.state.settings)
    return report


@router.get("/capacity", response_model=CapacityOut)
async def capacity(
    request: Request,
    _: Viewer,
    calls: Annotated[int | None, Query(ge=1, le=100_000, description="target calls")] = None,
    transcoding: bool = False,
) -> CapacityOut:
    """Maximum simultaneous calls of this machine, its bottleneck, and what to build."""
    settings: Settings = request.app.state.settings
    facts, report = await _detected(request).get(settings)
    result = plan(machine_from_host(settings, facts, report, transcoding))
    return CapacityOut(
        plan=result, recommendation=recommend(calls or max(result.max_calls, 1), result)
    )
