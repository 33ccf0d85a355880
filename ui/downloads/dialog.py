"""Get models: the curated list (fits this computer or not), a field for any REPO or REPO/FILE,
the downloads panel, and the user's own models folder with Delete (asks first).

Not modal, and it never runs a nested event loop (qasync #59): confirmations use open().
A finished download emits `models_changed`, and the chat's model list is rebuilt from the catalog.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QMessageBox, QPushButton, QScrollArea, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from jarvis.downloads.background import BackgroundPull
from jarvis.downloads.curated import Machine, curated_models, fit
from jarvis.downloads.pull import Pull
from jarvis.errors import JarvisError

from ui.downloads.download_row import DownloadRow, human_bytes

log = logging.getLogger("ui.downloads")
CURATED_COLUMNS = ["Model", "Kind", "Size", "Memory", "Context", "Licence", "This computer"]


def parse_repo_file(text: str) -> tuple[str, str | None]:
    """"owner/name" or "owner/name/path/in/repo.gguf" (a hub URL's tail works too)."""
    text = text.strip().removeprefix("https://huggingface.co/").strip("/")
    for marker in ("/resolve/main/", "/blob/main/"):
        text = text.replace(marker, "/")
    parts = text.split("/", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise ValueError("Type a repository as OWNER/NAME, or OWNER/NAME/FILE.gguf.")
    return f"{parts[0]}/{parts[1]}", (parts[2] if len(parts) == 3 and parts[2] else None)


class GetModelsDialog(QDialog):
    models_changed = Signal()

    def __init__(self, settings, *, machine: Machine, parent=None) -> None:
        # `machine` comes from the sampler's last reading: reading NVML here would run it on the loop.
        super().__init__(parent)
        self.setWindowTitle("Get models")
        self.resize(1000, 720)
        self.settings = settings
        self.machine = machine
        self.rows: list[DownloadRow] = []
        self._confirm: QMessageBox | None = None
        layout = QVBoxLayout(self)

        curated = QGroupBox("Curated small models")
        box = QVBoxLayout(curated)
        gpu = f", GPU {self.machine.vram_bytes / 1e9:.1f} GB" if self.machine.vram_bytes else ", no GPU"
        box.addWidget(QLabel(f"This computer: {self.machine.ram_bytes / 1e9:.1f} GB RAM{gpu}. "
                             "Every download is checked against the hub's SHA-256 before it is used."))
        self.table = QTableWidget(0, len(CURATED_COLUMNS))
        self.table.setHorizontalHeaderLabels(CURATED_COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.doubleClicked.connect(lambda _i: self.download_selected())
        box.addWidget(self.table)
        self.download_curated = QPushButton("Download selected")
        self.download_curated.clicked.connect(self.download_selected)
        box.addWidget(self.download_curated, alignment=Qt.AlignRight)
        self._fill_curated()

        row = QHBoxLayout()
        self.repo_field = QLineEdit()
        self.repo_field.setPlaceholderText("Any GGUF on Hugging Face: OWNER/NAME or OWNER/NAME/FILE.gguf")
        self.repo_field.returnPressed.connect(self.download_typed)
        row.addWidget(self.repo_field, 1)
        self.download_typed_button = QPushButton("Download")
        self.download_typed_button.clicked.connect(self.download_typed)
        row.addWidget(self.download_typed_button)
        box.addLayout(row)
        self.message = QLabel()
        self.message.setWordWrap(True)
        box.addWidget(self.message)

        lower = QSplitter()
        downloads = QGroupBox("Downloads")
        dl = QVBoxLayout(downloads)
        self.rows_box = QVBoxLayout()
        self.rows_box.addStretch(1)
        holder = QWidget()
        holder.setLayout(self.rows_box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # rows wrap to the panel's width
        scroll.setWidget(holder)
        dl.addWidget(scroll)
        self.no_downloads = QLabel("Nothing downloading.")
        self.no_downloads.setStyleSheet("color: #6b7280;")
        dl.addWidget(self.no_downloads)
        lower.addWidget(downloads)

        mine = QGroupBox("Your models folder")
        mv = QVBoxLayout(mine)
        folder = QLabel(str(settings.user_models_path))
        folder.setTextInteractionFlags(Qt.TextSelectableByMouse)
        folder.setStyleSheet("color: #6b7280;")
        mv.addWidget(folder)
        self.mine = QListWidget()
        mv.addWidget(self.mine)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.ask_delete)
        mv.addWidget(self.delete_button, alignment=Qt.AlignRight)
        lower.addWidget(mine)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)

        layout.addWidget(curated, 3)
        layout.addWidget(lower, 2)
        self.refresh_mine()

        self.timer = QTimer(self)  # paints the rows from the pulls' counters; stops when all are settled
        self.timer.setInterval(250)
        self.timer.timeout.connect(self.tick)

    # ---- curated ------------------------------------------------------------------------------
    def _fill_curated(self) -> None:
        self.curated = curated_models()
        self.table.setRowCount(len(self.curated))
        for r, m in enumerate(self.curated):
            fits, verdict = fit(m, self.machine)
            cells = [f"{m.repo}  ·  {m.file}", m.kind, f"{m.approx_size_mb} MB", f"{m.memory_gb:g} GB",
                     f"{m.context_length:,}", m.licence, verdict]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{m.repo}/{m.file}" if c == 0 else text)
                if c == len(cells) - 1:
                    item.setForeground(QBrush(QColor("#047857" if fits else "#b91c1c")))
                self.table.setItem(r, c, item)

    def download_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.show_message("Select a model in the list first.", error=True)
            return
        m = self.curated[rows[0].row()]
        self.start(m.repo, m.file, expected_sha256=m.sha256, expected_size=m.size_bytes)  # the list's pins

    def download_typed(self) -> None:
        try:
            repo, file = parse_repo_file(self.repo_field.text())
        except ValueError as e:
            self.show_message(str(e), error=True)
            return
        self.start(repo, file)

    # ---- downloads ----------------------------------------------------------------------------
    def start(self, repo: str, file: str | None, *, expected_sha256: str | None = None,
              expected_size: int | None = None) -> DownloadRow:
        job = BackgroundPull(Pull(self.settings, repo, file, expected_sha256=expected_sha256,
                                  expected_size=expected_size))
        row = DownloadRow(job)
        row.finished.connect(self._installed)
        self.rows.append(row)
        self.rows_box.insertWidget(self.rows_box.count() - 1, row)
        self.no_downloads.hide()
        job.start()
        self.timer.start()
        self.show_message(f"Downloading {repo}{'/' + file if file else ''}…")
        return row

    def tick(self) -> None:
        for row in self.rows:
            row.refresh()
        if all(row.settled for row in self.rows):
            self.timer.stop()

    def _installed(self, row: DownloadRow) -> None:
        self.show_message(f"{row.job.pull.plan.name} is installed and verified; it is in the chat's model list.")
        self.refresh_mine()
        self.models_changed.emit()

    def stop_all(self) -> None:
        """Pause every running download (the partial files stay for the next time)."""
        for row in self.rows:
            if row.job.alive:
                row.job.pause()

    def running(self) -> bool:
        return any(row.job.alive for row in self.rows)

    # ---- your models --------------------------------------------------------------------------
    def refresh_mine(self) -> None:
        self.mine.clear()
        folder = self.settings.user_models_path
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".gguf") if folder.is_dir() else []
        for path in files:
            try:
                size = path.stat().st_size
            except OSError:
                size = 0
            name = path.name.removesuffix(".gguf")  # as the catalog names it
            item = QListWidgetItem(f"{name}  ({human_bytes(size)})")
            item.setData(Qt.UserRole, name)
            self.mine.addItem(item)
        self.delete_button.setEnabled(bool(files))

    def ask_delete(self) -> None:
        item = self.mine.currentItem()
        if item is None:
            self.show_message("Select a model in your models folder first.", error=True)
            return
        name = item.data(Qt.UserRole)
        box = QMessageBox(QMessageBox.Question, "Delete model", f"Delete {name} from {self.settings.user_models_path}?"
                          " The file is removed from the disk.", QMessageBox.Yes | QMessageBox.Cancel, self)
        # open(), not exec(): a nested event loop inside the qasync loop re-enters it (qasync #59).
        box.finished.connect(lambda result: result == QMessageBox.Yes and self.delete(name))
        self._confirm = box
        box.open()

    def delete(self, name: str) -> None:
        from jarvis.downloads.remove import remove_model

        try:
            path = remove_model(self.settings, name)
        except JarvisError as e:
            self.show_message(str(e), error=True)
            return
        self.show_message(f"Deleted {path}.")
        self.refresh_mine()
        self.models_changed.emit()

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #b91c1c;" if error else "color: #374151;")
        self.message.setText(text)
