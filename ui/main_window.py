"""The window: Chat | System Monitor tabs and a status bar (HTTP endpoint, model warm-up with a
progress bar, the last message). Closing it is handed to the Desktop, which stops answers and
closes the runtime before the window really goes."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar, QTabWidget


class MainWindow(QMainWindow):
    def __init__(self, chat, monitor, runtime, *, on_close: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self.setWindowTitle("JARVIS")
        self.resize(1280, 820)
        self.chat = chat
        self.monitor = monitor
        self.runtime = runtime
        self._on_close = on_close
        self.tabs = QTabWidget()
        self.tabs.addTab(chat, "Chat")
        self.tabs.addTab(monitor, "System Monitor")
        self.setCentralWidget(self.tabs)

        bar = self.statusBar()
        self.message = QLabel()
        bar.addWidget(self.message, 1)
        self.model_state = QLabel()
        bar.addPermanentWidget(self.model_state)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # indeterminate: llama.cpp reports no load fraction we can trust
        self.progress.setFixedWidth(120)
        self.progress.hide()
        bar.addPermanentWidget(self.progress)
        self.server = QLabel()
        bar.addPermanentWidget(self.server)
        chat.status_message.connect(self.show_message)
        monitor.status_message.connect(self.show_message)

        self._state_timer = QTimer(self)
        self._state_timer.setInterval(500)
        self._state_timer.timeout.connect(self.update_state)
        self._state_timer.start()
        self.update_state()

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #b91c1c;" if error else "")
        self.message.setText(text)
        self.message.setToolTip(text)

    def update_state(self) -> None:
        runtime = self.runtime
        manager = runtime.assistant.manager
        loading = manager.loading()
        loaded = manager.loaded()
        if loading:
            self.model_state.setText(f"Loading {', '.join(loading)}…")
            self.progress.show()
        else:
            self.progress.hide()
            if loaded:
                names = ", ".join(f"{m['name']} ({m['load_ms']:.0f} ms)" for m in loaded)
                self.model_state.setText(f"Ready: {names}")
            else:
                self.model_state.setText("No model loaded")
        if runtime.server is not None:
            self.server.setText(f"API {runtime.server.url}")
            self.server.setStyleSheet("color: #047857;")
            self.server.setToolTip("")
        elif runtime.server_error:
            self.server.setText("API off: port busy")
            self.server.setStyleSheet("color: #b91c1c;")
            self.server.setToolTip(runtime.server_error)
        else:
            self.server.setText("API off")

    def closeEvent(self, event) -> None:
        if self._on_close is not None and not self._on_close():
            event.ignore()  # the Desktop closes us once answers are saved and the runtime is closed
            return
        self._state_timer.stop()
        super().closeEvent(event)
