"""The Tools panel: per MCP server its state, last error and a Restart button; its tools, each with
its switch and the tokens its schema costs in the current model's prompt; and the total.

It only paints what it is given (`show`) and says what the user did (signals); `ToolsController`
asks the hub and counts tokens off the loop."""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout,
                               QWidget)

log = logging.getLogger("ui.tools")
STATE_COLOURS = {"ready": "#15803d", "failed": "#b91c1c", "crashed": "#b91c1c", "hung": "#b45309",
                 "disabled": "#6b7280", "stopped": "#6b7280", "starting": "#2563eb"}


class ToolsPanel(QWidget):
    restart_requested = Signal(str)  # server
    tool_toggled = Signal(str, str, bool)  # server, tool, enabled
    refresh_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        top = QHBoxLayout()
        self.total = QLabel("")
        top.addWidget(self.total, 1)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh_requested.emit)
        top.addWidget(refresh)
        outer.addLayout(top)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        self._body = QWidget()
        self._rows = QVBoxLayout(self._body)
        self._rows.addStretch(1)
        scroll.setWidget(self._body)
        outer.addWidget(scroll, 1)
        self.switches: dict[tuple[str, str], QCheckBox] = {}
        self.restart_buttons: dict[str, QPushButton] = {}

    def show_servers(self, statuses, costs: dict[tuple[str, str], int], total: int, model: str) -> None:
        while self._rows.count() > 1:
            item = self._rows.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.switches.clear()
        self.restart_buttons.clear()
        if not statuses:
            self.total.setText("No MCP servers are configured: `jarvis mcp add NAME -- COMMAND` or "
                               "`jarvis mcp import mcp.json` adds some.")
            return
        self.total.setText(f"The enabled tools take <b>{total}</b> tokens of every prompt in {model}."
                           if model else "The tools' token cost shows once a local model is the default.")
        for status in statuses:
            self._rows.insertWidget(self._rows.count() - 1, self._server_box(status, costs))

    def _server_box(self, status, costs) -> QFrame:
        box = QFrame()
        box.setObjectName("server")
        box.setStyleSheet("QFrame#server { border: 1px solid #e5e7eb; border-radius: 8px; background: #ffffff; }")
        layout = QVBoxLayout(box)
        header = QHBoxLayout()
        colour = STATE_COLOURS.get(status.state, "#374151")
        header.addWidget(QLabel(f"<b>{status.name}</b> <span style='color:{colour}'>{status.state}</span> "
                                f"<span style='color:#6b7280'>· {status.transport} · {status.where}</span>"), 1)
        restart = QPushButton("Restart")
        restart.clicked.connect(lambda _=False, n=status.name: self.restart_requested.emit(n))
        header.addWidget(restart)
        self.restart_buttons[status.name] = restart
        layout.addLayout(header)
        if status.last_error:
            error = QLabel(status.last_error)
            error.setWordWrap(True)
            error.setStyleSheet("color: #b91c1c;")
            layout.addWidget(error)
        for tool in status.tools:
            cost = costs.get((status.name, tool.name))
            switch = QCheckBox(f"{tool.name}  ·  {cost if cost is not None else '-'} tokens  ·  approval: "
                               f"{tool.approval}")
            switch.setToolTip(tool.description)
            switch.setChecked(tool.enabled)
            switch.toggled.connect(lambda on, s=status.name, t=tool.name: self.tool_toggled.emit(s, t, on))
            self.switches[(status.name, tool.name)] = switch
            layout.addWidget(switch)
        return box


class ToolsController:
    """Keeps a ToolsPanel in step with an McpHub: refresh starts the servers and counts each tool's
    schema tokens in the default model on a worker thread; Restart and the switches act on the hub."""

    def __init__(self, panel: ToolsPanel, hub, assistant, tasks) -> None:
        self.panel, self.hub, self.assistant, self.tasks = panel, hub, assistant, tasks
        panel.refresh_requested.connect(self.refresh)
        panel.restart_requested.connect(lambda name: self.tasks.spawn(self._restart(name), name=f"mcp-restart-{name}"))
        panel.tool_toggled.connect(self._toggle)

    def refresh(self) -> asyncio.Task:
        return self.tasks.spawn(self._refresh(), name="mcp-refresh")

    async def _refresh(self) -> None:
        from jarvis.tools.cost import SCHEMA_TOKENS

        tools = await self.hub.list_tools()
        names = self.hub.model_names()
        costs, total, model = {}, 0, ""
        info = self.assistant.catalog.snapshot().get(await self.assistant.resolve_default())
        path = getattr(info, "path", None)
        if tools and path is not None:  # the memo the tool loop reads: counted once per model and tool list
            key = SCHEMA_TOKENS.key(tools, info.identity)
            per_tool, total = SCHEMA_TOKENS.get(key) or await asyncio.to_thread(SCHEMA_TOKENS.count, key, tools, path)
            costs = {key: per_tool[name] for key, name in names.items() if name in per_tool}
            model = info.name
        self.panel.show_servers(self.hub.statuses(), costs, total, model)

    async def _restart(self, name: str) -> None:
        from jarvis.mcp.server import McpServerError

        try:
            await self.hub.servers[name].restart()
        except McpServerError as e:
            log.warning("%s", e)
        await self._refresh()

    def _toggle(self, server: str, tool: str, enabled: bool) -> None:
        self.hub.servers[server].set_tool_enabled(tool, enabled)
        self.refresh()
