"""Telemetry: records, the bus that carries them, and the consumers (PerfMonitor, logs, sampler).

Imports no other core module; everything may report to it.
"""

from jarvis.telemetry.bus import RecordBus
from jarvis.telemetry.gpu import GpuDevice, GpuProbe
from jarvis.telemetry.perf import PerfMonitor
from jarvis.telemetry.records import ModelRecord, QueueRecord, RequestRecord, StallRecord, StepRecord
from jarvis.telemetry.request_log import RequestLog
from jarvis.telemetry.series import SeriesPoint, TelemetryHub
from jarvis.telemetry.system import SystemSampler, SystemSnapshot

__all__ = [
    "RecordBus", "RequestRecord", "StepRecord", "QueueRecord", "ModelRecord", "StallRecord",
    "PerfMonitor", "GpuProbe", "GpuDevice", "SystemSampler", "SystemSnapshot",
    "TelemetryHub", "SeriesPoint", "RequestLog",
]
