"""Telephony hardware detection: FXO gateways through ARI and DAHDI cards."""

from operadora.hardware.detect import build_report, detect_hardware, pipeline_config
from operadora.hardware.models import HardwareReport, PipelineConfig

__all__ = ["HardwareReport", "PipelineConfig", "build_report", "detect_hardware", "pipeline_config"]
