"""Per-conversation generation settings: model (with state, size, quantisation), system prompt,
temperature, max tokens, top_p. Emits `changed` with the fields the user touched.

The spin boxes take their ranges from SamplingParams, the rule every other door checks against."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from jarvis.sampling import SamplingParams, bounds

DECIMALS = 2


def spin_range(name: str) -> tuple[float, float]:
    """A field's range as a spin box can show it: an open end moves in by one step (top_p > 0 -> 0.01)."""
    low, high, low_inclusive, high_inclusive = bounds(name)
    step = 10 ** -DECIMALS
    return (low if low_inclusive else low + step), (high if high_inclusive else high - step)


def _size(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def model_label(m: dict) -> str:
    """'name — 98 MB · Q4_1 · loaded'; what a model's summary lacks (a server's model has no file
    size or quantisation here) is left out."""
    facts = [_size(m["size_bytes"])] if "size_bytes" in m else []
    facts += [m["quantization"] or "?"] if "quantization" in m else []
    return f"{m['name']} — {' · '.join([*facts, m.get('state', '')])}"


class SettingsPanel(QWidget):
    changed = Signal(dict)
    refresh_requested = Signal()
    get_models_requested = Signal()

    def __init__(self, defaults=None, parent=None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(230)
        self.setMaximumWidth(300)
        self._loading = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 8, 8, 8)
        box = QGroupBox("This conversation")
        form = QFormLayout(box)
        form.setRowWrapPolicy(QFormLayout.WrapAllRows)
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(16)
        self.model.currentIndexChanged.connect(lambda _i: self._emit("model", self.model.currentData() or ""))
        form.addRow("Model", self.model)
        self.refresh = QPushButton("Refresh list")
        self.refresh.clicked.connect(self.refresh_requested)
        self.get_models = QPushButton("Get models…")
        self.get_models.setToolTip("Download models from Hugging Face, or delete your own")
        self.get_models.clicked.connect(self.get_models_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh)
        buttons.addWidget(self.get_models)
        form.addRow(buttons)
        self.system = QPlainTextEdit()
        self.system.setPlaceholderText("System prompt (optional)")
        self.system.setFixedHeight(80)
        self.system.textChanged.connect(lambda: self._emit("system_prompt", self.system.toPlainText()))
        form.addRow("System prompt", self.system)
        self.temperature = QDoubleSpinBox(decimals=DECIMALS, singleStep=0.1)
        self.temperature.setRange(*spin_range("temperature"))
        self.temperature.valueChanged.connect(lambda v: self._emit("temperature", round(v, 2)))
        form.addRow("Temperature", self.temperature)
        self.max_tokens = QSpinBox(singleStep=64)
        self.max_tokens.setRange(*(int(v) for v in spin_range("max_tokens")))
        self.max_tokens.valueChanged.connect(lambda v: self._emit("max_tokens", int(v)))
        form.addRow("Max tokens", self.max_tokens)
        self.top_p = QDoubleSpinBox(decimals=DECIMALS, singleStep=0.05)
        self.top_p.setRange(*spin_range("top_p"))
        self.top_p.valueChanged.connect(lambda v: self._emit("top_p", round(v, 2)))
        form.addRow("Top p", self.top_p)
        outer.addWidget(box)
        self.note = QLabel("Remembered with the conversation.")
        self.note.setStyleSheet("color: #6b7280;")
        outer.addWidget(self.note)
        outer.addStretch(1)
        # Before any conversation exists, show the configured defaults (SamplingParams' own without settings).
        self.show_defaults(defaults if defaults is not None else SamplingParams())

    def show_defaults(self, defaults) -> None:
        """The app's generation defaults (`settings.generation`), without emitting `changed`."""
        was_loading, self._loading = self._loading, True
        try:
            self.temperature.setValue(defaults.temperature)
            self.max_tokens.setValue(defaults.max_tokens)
            self.top_p.setValue(defaults.top_p)
        finally:
            self._loading = was_loading

    def set_models(self, models: list[dict], default: str) -> None:
        current = self.model.currentData()
        self._loading = True
        try:
            self.model.clear()
            self.model.addItem(f"Default ({default})", "")
            groups = list(dict.fromkeys(m["group"] for m in models))  # as the catalog lists them: this computer first
            for group in groups:  # headings only when there is more than one group
                if len(groups) > 1:
                    self.model.addItem(group, None)
                    self.model.model().item(self.model.count() - 1).setEnabled(False)  # a heading, not a choice
                for m in (m for m in models if m["group"] == group):
                    self.model.addItem(model_label(m), m["name"])
                    if m.get("state") == "unreadable":
                        self.model.setItemData(self.model.count() - 1, m.get("error") or "unreadable", 3)  # tooltip
            index = self.model.findData(current) if current is not None else 0
            self.model.setCurrentIndex(max(0, index))
        finally:
            self._loading = False

    def load(self, conv, defaults) -> None:
        """Show a conversation's settings; None fields show the app's defaults (`settings.generation`)."""
        self._loading = True
        try:
            index = self.model.findData(conv.model or "")
            self.model.setCurrentIndex(max(0, index))
            self.system.setPlainText(conv.system_prompt or "")
            self.show_defaults(defaults)
            if conv.temperature is not None:
                self.temperature.setValue(conv.temperature)
            if conv.max_tokens is not None:
                self.max_tokens.setValue(conv.max_tokens)
            if conv.top_p is not None:
                self.top_p.setValue(conv.top_p)
        finally:
            self._loading = False

    def values(self) -> dict:
        return {"model": self.model.currentData() or "", "system_prompt": self.system.toPlainText(),
                "temperature": round(self.temperature.value(), 2), "max_tokens": int(self.max_tokens.value()),
                "top_p": round(self.top_p.value(), 2)}

    def _emit(self, name: str, value) -> None:
        if not self._loading:
            self.changed.emit({name: value})
