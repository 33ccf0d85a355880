"""A tool call in the conversation: the tool, its arguments (pretty JSON), Allow once / Always
allow / Deny while it waits for the user, then its result (collapsible) and the time it took.

`ask()` is the tool loop's approval question (jarvis.tools.loop.Approver): it shows the buttons
and returns the user's decision when one is clicked, without blocking the loop."""

from __future__ import annotations

import asyncio
import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QToolButton, QVBoxLayout

STYLE = ("QFrame#toolcard { background: #f8fafc; border: 1px solid #cbd5e1; border-radius: 8px; }"
         "QPlainTextEdit { font-family: monospace; background: #ffffff; border: 1px solid #e5e7eb; }")
STATUS = {"asking": ("waiting for your approval", "#b45309"), "running": ("running…", "#2563eb"),
          "done": ("done", "#15803d"), "error": ("failed", "#b91c1c"), "denied": ("denied", "#6b7280"),
          "invalid": ("arguments rejected", "#b91c1c")}


class ToolCallCard(QFrame):
    def __init__(self, tool_name: str, origin: str, arguments: dict, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("toolcard")
        self.setStyleSheet(STYLE)
        self.status = ""
        self._decision: asyncio.Future | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(4)

        header = QHBoxLayout()
        self.title = QLabel(f"<span style='color:#6b7280'>Tool</span> <b>{tool_name}</b> "
                            f"<span style='color:#6b7280'>· {origin}</span>")
        header.addWidget(self.title)
        header.addStretch(1)
        self.state = QLabel("")
        header.addWidget(self.state)
        layout.addLayout(header)

        self.arguments = QPlainTextEdit(json.dumps(arguments, indent=2, ensure_ascii=False))
        self.arguments.setReadOnly(True)
        self.arguments.setFixedHeight(min(140, 24 + 16 * self.arguments.document().lineCount()))
        layout.addWidget(self.arguments)

        buttons = QHBoxLayout()
        self.allow_once = QPushButton("Allow once")
        self.always_allow = QPushButton("Always allow")
        self.deny = QPushButton("Deny")
        for button, decision in ((self.allow_once, "once"), (self.always_allow, "always"), (self.deny, "deny")):
            button.clicked.connect(lambda _=False, d=decision: self._decide(d))
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self._buttons = (self.allow_once, self.always_allow, self.deny)
        self._show_buttons(False)

        self.toggle = QToolButton()
        self.toggle.setText("Result")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.RightArrow)
        self.toggle.toggled.connect(self._toggled)
        self.toggle.hide()
        layout.addWidget(self.toggle)
        self.result = QPlainTextEdit()
        self.result.setReadOnly(True)
        self.result.hide()
        layout.addWidget(self.result)

    def _show_buttons(self, shown: bool) -> None:
        for button in self._buttons:
            button.setVisible(shown)

    def set_status(self, status: str, detail: str = "") -> None:
        self.status = status
        text, colour = STATUS.get(status, (status, "#374151"))
        self.state.setText(f"<span style='color:{colour}'>{text}{' · ' + detail if detail else ''}</span>")

    async def ask(self) -> str:
        """Show Allow once / Always allow / Deny; "once", "always" or "deny" when one is clicked."""
        self._decision = asyncio.get_running_loop().create_future()
        self.set_status("asking")
        self._show_buttons(True)
        try:
            return await self._decision
        finally:
            self._show_buttons(False)

    def _decide(self, decision: str) -> None:
        if self._decision is not None and not self._decision.done():
            self._decision.set_result(decision)

    def show_result(self, status: str, text: str, ms: float) -> None:
        """The outcome: its status and time, and the result text (folded; a failure unfolded)."""
        self.set_status(status, f"{ms:.0f} ms" if ms else "")
        self.result.setPlainText(text)
        self.result.setFixedHeight(min(200, 24 + 16 * self.result.document().lineCount()))
        self.toggle.show()
        self.toggle.setChecked(status in ("error", "invalid"))

    def _toggled(self, shown: bool) -> None:
        self.toggle.setArrowType(Qt.DownArrow if shown else Qt.RightArrow)
        self.result.setVisible(shown)
