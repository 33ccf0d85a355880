"""The desktop application: one QApplication whose event loop is asyncio (qasync), one Runtime.

`Desktop` owns the runtime, the conversation store (on a thread of its own) and the window;
`main(settings)` runs it. Closing the window: cancel running answers (each is saved as 'stopped'),
pause downloads (their partial files stay for resume), close the runtime (which unloads the
models and stops the HTTP endpoint) and the store, then leave the loop. Nothing of it blocks
the loop: every wait is an await on another thread's work.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback

from PySide6.QtWidgets import QApplication, QMessageBox

from jarvis.conversations_async import AsyncConversationStore
from jarvis.runtime import API_ROUTES, Runtime

from ui.chat.chat_view import ChatView
from ui.heartbeat import UiHeartbeat
from ui.main_thread_gc import MainThreadGC
from ui.main_window import MainWindow
from ui.monitor.monitor_view import MonitorView

log = logging.getLogger("ui.app")


class Desktop:
    def __init__(self, settings, *, runtime: Runtime | None = None) -> None:
        self.settings = settings
        # Cycles are collected on this (the GUI) thread from now on: one collected on the engine's
        # thread destroys its Qt objects there, and their timers then fire into freed memory.
        # Held for the process's life; tests release it once per desktop (tests/ui_support.py).
        MainThreadGC.hold()
        self.runtime = runtime or Runtime(settings, registrars=[API_ROUTES])
        self.store = AsyncConversationStore(settings.database_path)  # opens on its own thread
        self.chat = ChatView(self.runtime.assistant, self.store)
        self.monitor = MonitorView(self.runtime)
        self.window = MainWindow(self.chat, self.monitor, self.runtime, on_close=self._close_requested)
        self.heartbeat = UiHeartbeat(self.runtime, parent=self.window)  # the UI stall, measured
        self.get_models = None  # the "Get models" dialog, made on first use
        self.chat.settings_panel.get_models_requested.connect(self.open_get_models)
        self.tools = self._tools(settings)
        self.closed = asyncio.Event()
        self._closing: asyncio.Task | None = None
        self.shutdown_ms: dict[str, float] = {}

    def _tools(self, settings):
        """With [mcp.servers.NAME] tables: answers may call their tools, and a Tools tab shows them.
        No server starts before its tools are first needed (the tab's first Refresh or an answer)."""
        if not settings.mcp.servers:
            return None
        from jarvis.mcp.hub import McpHub

        from ui.chat.tools_panel import ToolsController, ToolsPanel

        hub = McpHub(settings.mcp, settings_file=settings.settings_file)
        self.chat.enable_tools(hub, max_rounds=settings.mcp.max_rounds, result_max_kb=settings.mcp.result_max_kb)
        panel = ToolsPanel()
        self.window.tabs.addTab(panel, "Tools")
        controller = ToolsController(panel, hub, self.runtime.assistant, self.chat.tasks)
        self.monitor.show_tool_servers(hub)
        self.window.tabs.currentChanged.connect(
            lambda i: controller.refresh() if self.window.tabs.widget(i) is panel else None)
        return controller

    async def start(self, *, http: bool | None = None, warmup: bool | None = None) -> None:
        warm = bool(self.settings.models.warmup) if warmup is None else warmup
        if self.settings.telemetry.heartbeat_ms:
            self.heartbeat.start()
        listing = self.chat.tasks.spawn(self.chat.load(), name="chat-load")  # the list while the runtime starts
        await self.runtime.start(http=http, warmup=warm)
        self.chat.refresh_models()  # the first scan is done: the picker shows what it found
        warning = await listing
        if warning:
            self.window.show_message(warning, error=True)
        if not self.monitor.isVisible():  # the first switch to the monitor: no relayout then
            self.monitor.prepare(self.window.tabs.currentWidget().geometry())
        self.window.update_state()
        MainThreadGC.freeze()  # what start-up made is long-lived: later passes skip it
        if self.runtime.server_error:
            self.window.show_message(self.runtime.server_error, error=True)

    def open_get_models(self):
        from jarvis.downloads.curated import Machine
        from ui.downloads.dialog import GetModelsDialog

        if self.get_models is None:
            # What fits is judged against the sampler's last GPU reading: NVML never runs on the loop.
            system = self.runtime.hub.latest_system()
            machine = Machine.from_gpus(system.gpus if system else ())
            self.get_models = GetModelsDialog(self.settings, machine=machine, parent=self.window)
            self.get_models.models_changed.connect(self._models_changed)
        self.get_models.show()
        self.get_models.raise_()
        return self.get_models

    def _models_changed(self) -> None:
        """A download landed or a model was deleted: rescan on the catalog's thread (the loop only
        reads snapshots), then the chat's picker shows it."""
        async def rescan_then_show() -> None:
            await self.runtime.assistant.catalog.refresh()
            self.chat.refresh_models()
        self.chat.tasks.spawn(rescan_then_show(), name="catalog-rescan")

    async def _stop_downloads(self) -> None:
        """Stop every download, keeping its partial file for a resume next time, and await the
        threads' ends off the loop (a stalled one sees the stop at its read timeout)."""
        if self.get_models is None:
            return
        self.get_models.timer.stop()
        await self.get_models.stop_all()

    def _close_requested(self) -> bool:
        """closeEvent asks: True lets the window close (shutdown done), False defers it."""
        if self.closed.is_set():
            return True
        if self._closing is None:
            self.window.hide()  # gone for the user at once; the runtime closes behind it
            self._closing = asyncio.get_event_loop().create_task(self.shutdown())
        return False

    async def shutdown(self) -> None:
        if self.closed.is_set():
            return
        started = time.perf_counter()
        self.monitor.stop()
        self.heartbeat.stop()
        await self.chat.stop_all()       # answers first: each saves its text as 'stopped'
        await self._stop_downloads()
        await self.monitor.tasks.cancel_all()
        if self.tools is not None:
            await self.tools.hub.close()  # every MCP server it started
        saved = time.perf_counter()
        await self.runtime.close()       # unloads models, stops the endpoint and the sampler
        await self.store.close()
        done = time.perf_counter()
        self.shutdown_ms = {"answers_saved": (saved - started) * 1000, "runtime_closed": (done - started) * 1000}
        log.info("shutdown: answers saved in %.0f ms, runtime closed in %.0f ms", *self.shutdown_ms.values())
        self.closed.set()
        self.window.close()

    async def run(self) -> int:
        self.window.show()
        await self.start()
        await self.closed.wait()
        return 0


def install_excepthook(window_getter) -> None:
    """Exceptions in Qt slots and our tasks end here (qasync #36): log them and show them."""
    def hook(kind, value, tb) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        log.error("Unhandled error:\n%s", text)
        sys.__stderr__.write(text)
        window = window_getter()
        if window is None:
            return
        window.show_message(f"Error: {value}", error=True)
        box = QMessageBox(QMessageBox.Warning, "JARVIS: unexpected error", str(value), QMessageBox.Ok, window)
        box.setDetailedText(text)
        box.open()  # not exec(): a nested loop inside the qasync loop re-enters it (qasync #59)
        window._error_box = box
    sys.excepthook = hook


def main(settings) -> int:
    from jarvis import crash_log
    from ui.async_bridge import new_event_loop

    crash_log.enable(settings.app_log_path, settings.general.log_level)  # a native crash leaves every thread's stack

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("JARVIS")
    loop = new_event_loop(app)
    asyncio.set_event_loop(loop)
    holder: dict = {}
    install_excepthook(lambda: getattr(holder.get("desktop"), "window", None))
    with loop:
        async def run() -> int:
            desktop = Desktop(settings)
            holder["desktop"] = desktop
            return await desktop.run()
        return loop.run_until_complete(run())
