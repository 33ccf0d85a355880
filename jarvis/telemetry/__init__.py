"""Telemetry: records, the bus that carries them, and the consumers (PerfMonitor, logs, sampler).

Imports no other core module; everything may report to it.
"""

from jarvis.telemetry.bus import RecordBus
from jarvis.telemetry.records import ModelRecord, QueueRecord, RequestRecord, StepRecord

__all__ = ["RecordBus", "RequestRecord", "StepRecord", "QueueRecord", "ModelRecord"]
