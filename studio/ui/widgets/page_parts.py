"""Fields more than one page asks for: where a served model answers (its URL, which follows the
Serve page, and the API key a server may check), a dataset file to read rows from, a table of
rows, and a number within limits."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.model.datasets import DATASET_SUFFIXES


class ServerFields(QWidget):
    """The URL of a served model and its optional API key, side by side."""

    def __init__(self, also: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://127.0.0.1:8000 (filled in when the Serve page runs a "
                                    "model)" + also)
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("none")
        self.api_key.setToolTip("Optional: for a server that checks an API key. It is sent as "
                                "'Authorization: Bearer KEY'.")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("URL"))
        row.addWidget(self.url, 3)
        row.addWidget(QLabel("API key"))
        row.addWidget(self.api_key, 1)

    def required_url(self, to: str) -> str:
        """The URL typed or followed; StudioError when there is none, saying what it was for
        (e.g. "send to", "load", "watch")."""
        url = self.url.text().strip()
        if not url:
            raise StudioError(f"There is no URL to {to}.",
                              "Run the model on the Serve page, or type a server's URL.")
        return url

    def key(self) -> str | None:
        return self.api_key.text().strip() or None


def with_browse_button(field: QLineEdit,
                       on_chosen: Callable[[str], None] | None = None) -> QHBoxLayout:
    """`field` with a button beside it that fills it with a dataset file chosen in a dialog."""
    button = QPushButton("…")
    button.setFixedWidth(32)
    button.setToolTip("Choose a CSV, Parquet or .npy file")
    patterns = " ".join(f"*{suffix}" for suffix in DATASET_SUFFIXES)

    def choose() -> None:
        path, _ = QFileDialog.getOpenFileName(field.window(), "Reference data", "",
                                              f"Datasets ({patterns});;All files (*)")
        if path:
            field.setText(path)
            if on_chosen is not None:
                on_chosen(path)

    button.clicked.connect(choose)
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(field, 1)
    row.addWidget(button)
    return row


def rows_table(columns: list[str], *, several: bool = False) -> QTableWidget:
    """A read-only table whose rows are chosen whole (one, or `several`), its columns sized to
    their contents and the last one taking the rest."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if several
                           else QAbstractItemView.SelectionMode.SingleSelection)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def number_box(low: float, high: float, value: float | None = None, *, suffix: str = "",
               decimals: int = 2, step: float | None = None) -> QDoubleSpinBox:
    """A number from low to high, shown with `decimals` places and `suffix` (" s", " ms")."""
    box = QDoubleSpinBox()
    box.setDecimals(decimals)  # before the range and value, which it rounds
    box.setRange(low, high)
    if step is not None:
        box.setSingleStep(step)
    box.setSuffix(suffix)
    if value is not None:
        box.setValue(value)
    return box


def count_box(low: int, high: int, value: int | None = None) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    if value is not None:
        box.setValue(value)
    return box
