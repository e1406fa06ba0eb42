"""Tables for a ModelSchema: input tensors, tabular features, outputs."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from studio.core.model.schema import FeatureSpec, OutputSpec, TensorSpec, shape_text
from studio.core.units import printable


class _Table(QTableWidget):
    def __init__(self, headers: Sequence[str], parent: QWidget | None = None):
        super().__init__(0, len(headers), parent)
        self.setHorizontalHeaderLabels(list(headers))
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

    def set_rows(self, rows: Sequence[Sequence[str]]) -> None:
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):  # names and values from a model file
                item = QTableWidgetItem(printable(text))
                item.setToolTip(printable(text))
                self.setItem(r, c, item)

    def column_values(self, column: int) -> list[str]:
        return [self.item(r, column).text() for r in range(self.rowCount())]


class TensorTable(_Table):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(["Input tensor", "Type", "Shape"], parent)

    def set_tensors(self, tensors: Sequence[TensorSpec]) -> None:
        self.set_rows([[t.name, t.dtype, shape_text(t.shape)] for t in tensors])
        # Most models have one to a few input tensors: size to them and leave room for features.
        shown = min(len(tensors), 6)
        self.setMaximumHeight(self.horizontalHeader().height() + shown * self.verticalHeader()
                              .defaultSectionSize() + 2 * self.frameWidth() + 4)


class FeatureTable(_Table):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(["Feature", "Kind", "Type", "Tensor", "Categories / example"], parent)

    def set_features(self, features: Sequence[FeatureSpec]) -> None:
        rows = []
        for f in features:
            if f.categories:
                detail = f"{len(f.categories)}: " + ", ".join(map(str, f.categories))
            else:
                detail = "" if f.example is None else f"e.g. {f.example}"
            rows.append([f.name, f.kind, f.dtype, f.tensor or "", detail])
        self.set_rows(rows)


class OutputTable(_Table):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(["Output", "Role", "Type", "Shape"], parent)

    def set_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        self.set_rows([[o.name, o.role, o.dtype, shape_text(o.shape)] for o in outputs])
