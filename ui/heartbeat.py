"""The UI thread's heartbeat: a precise QTimer whose lateness is the UI stall.

Every `telemetry.heartbeat_ms` the timer asks to run; when the Qt thread is busy (a paint, a
relayout, a long slot), it runs late, and the core-side HeartbeatMeter turns the lateness into
StallRecords on the runtime's bus (the monitor's "Window responsiveness" chart, the stats JSON,
/metrics). The core never imports Qt: this module only feeds it numbers.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer


class UiHeartbeat(QObject):
    def __init__(self, runtime, parent=None) -> None:
        super().__init__(parent)
        self.meter = runtime.heartbeat_meter("ui")
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(max(1, int(self.meter.interval_ms)))
        self.timer.timeout.connect(self.meter.beat)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self.meter.pause()

    @property
    def running(self) -> bool:
        return self.timer.isActive()
