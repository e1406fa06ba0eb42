"""The Versions page: the model registry as a table, with the selected version's lineage, its
model's alias moves and its details, and what to do with it: serve it, point an alias at it, roll
an alias back, compare it with another version, export its file, delete it.

Every read and write of the registry runs off the GUI thread (a writer elsewhere may hold the
database a moment). The table reloads when the studio records a version, a moment after the last
key of a search, and whenever the page is shown, so what `slipway` recorded in a terminal shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.units import human_size, printable
from studio.core.versions.references import ResolvedModel
from studio.core.versions.registry import Registry
from studio.core.versions.version import AliasMove, Lineage, Recorded, Version, when_text
from studio.ui.pages.page import Page
from studio.ui.widgets.page_parts import rows_table
from studio.ui.workers import TaskRunner

COLUMNS = ["Model", "Version", "Aliases", "Size", "Format", "Created", "Parity", "From"]
HISTORY_COLUMNS = ["When", "Who", "Alias", "Move"]
SEARCH_DELAY_MS = 250
SUGGESTED_ALIASES = ["champion", "challenger"]
PASS_COLOR = QColor(214, 240, 221)
FAIL_COLOR = QColor(250, 218, 218)


class VersionsPage(Page):
    serve_requested = Signal(object)
    """A ResolvedModel whose file was just checked: the main window opens it and serves it."""
    compare_requested = Signal(str, str)
    """Two versions' references (`name:N`), the selected one first, for the Compare page."""
    refreshed = Signal(list)
    """The Versions now shown."""
    details_shown = Signal(object)
    """The Version whose lineage and alias moves are now shown."""
    changed = Signal(object)
    version_recorded = Signal(object)
    """The Version a model the studio loaded or made was recorded as (or already was)."""
    """What an action did (an AliasMove, a deleted Version, an exported Path)."""

    def __init__(self, runner: TaskRunner, registry: Registry | None = None,
                 parent: QWidget | None = None):
        super().__init__(runner, "Versions", subtitle="", parent=parent)
        self.registry = registry or Registry()
        self.versions: list[Version] = []
        self._generation = 0
        self._detail_generation = 0
        self.ask_alias: Callable[[Version, list[str]], str | None] = self._alias_from_dialog
        self.ask_which_alias: Callable[[Version, list[str]], str | None] = self._choice_from_dialog
        self.choose_destination: Callable[[Path], Path | None] = self._destination_from_dialog
        self.confirm_box: QMessageBox | None = None
        # One recording at a time, in the order asked: a step's output is recorded after the
        # model it was made from, so it becomes that model's next version.
        self._recorder = TaskRunner(self, max_threads=1)

        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.add_header_button(self.refresh_button)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by name, alias, tag or format")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.status = QLabel()
        self.status.setObjectName("modelSubtitle")
        row = QHBoxLayout()
        row.addWidget(self.search, 2)
        row.addWidget(self.status, 3)
        self.body.addLayout(row)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self._build_table())
        splitter.addWidget(self._build_details())
        splitter.setSizes([320, 220])
        self.body.addWidget(splitter, 1)
        self.body.addLayout(self._build_actions())
        self._update_actions()

    # --- construction --------------------------------------------------------------------------

    def _build_table(self) -> QTableWidget:
        self.table = rows_table(COLUMNS, several=True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemDoubleClicked.connect(lambda _item: self.serve_selected())
        return self.table

    def _build_details(self) -> QTabWidget:
        self.lineage = QTreeWidget()
        self.lineage.setHeaderLabels(["Version", "How it was made", "Parity"])
        self.lineage.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.history = QTableWidget(0, len(HISTORY_COLUMNS))
        self.history.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history.verticalHeader().setVisible(False)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.history.horizontalHeader().setStretchLastSection(True)
        self.facts = QTreeWidget()
        self.facts.setHeaderHidden(True)
        self.facts.setRootIsDecorated(False)
        self.facts.setColumnCount(2)
        self.facts.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.facts.setStyleSheet("QTreeView::item { padding-right: 12px; }")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.lineage, "Lineage")
        self.tabs.addTab(self.history, "Alias history")
        self.tabs.addTab(self.facts, "Details")
        return self.tabs

    def _build_actions(self) -> QHBoxLayout:
        self.serve_button = QPushButton("Serve")
        self.serve_button.setToolTip("Open this version and serve it (Serve page settings)")
        self.serve_button.clicked.connect(self.serve_selected)
        self.alias_button = QPushButton("Set alias…")
        self.alias_button.clicked.connect(self.set_alias_on_selected)
        self.rollback_button = QPushButton("Roll back alias…")
        self.rollback_button.setToolTip("Move an alias of this model back by one move")
        self.rollback_button.clicked.connect(self.roll_back_selected)
        self.compare_button = QPushButton("Compare with…")
        self.compare_button.setToolTip("Select two versions, or one and choose the other")
        self.compare_button.clicked.connect(self._compare_clicked)
        self.compare_menu = QMenu(self)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.export_selected)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.delete_selected)
        row = QHBoxLayout()
        for button in (self.serve_button, self.alias_button, self.rollback_button,
                       self.compare_button):
            row.addWidget(button)
        row.addStretch()
        row.addWidget(self.export_button)
        row.addWidget(self.delete_button)
        return row

    # --- loading -------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """Reload the table off the GUI thread; an answer to an older request is dropped."""
        self._generation += 1
        generation = self._generation
        search = self.search.text()
        registry = self.registry
        self.runner.submit(
            lambda progress: (registry.versions(search=search), registry.summary()),
            name="Reading the registry", logged=False,  # after every change: not an action
            on_result=lambda found, g=generation: self._show(g, *found),
            on_error=self.error_banner.show_error)

    def record(self, record: Callable[..., Recorded], *args: object) -> None:
        """Record what the studio loaded or made (`record_loaded` or `record_made` and their
        arguments) off the GUI thread; what goes wrong shows here, never on the page that loaded
        the model."""
        self._recorder.submit(record, *args, registry=self.registry, name="Recording the version",
                              on_result=self.recorded, on_error=self.error_banner.show_error)

    def recorded(self, recorded: Recorded) -> None:
        """The studio recorded a version (or found one already holding the model)."""
        verb = "Recorded" if recorded.created else "Already recorded as"
        self.status.setText(printable(f"{verb} {recorded.version.reference}"))
        self.version_recorded.emit(recorded.version)
        self.refresh()

    def _show(self, generation: int, versions: list[Version], summary: str) -> None:
        if generation != self._generation:
            return
        selected = {v.reference for v in self.selected_versions()}
        self.versions = versions
        self.subtitle.setText(f"{summary} · stored in {self.registry.root}")
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        for version in versions:
            self._add_row(version)
        self.table.blockSignals(False)
        keep = [row for row, v in enumerate(versions) if v.reference in selected]
        if keep:
            for row in keep:
                self.table.selectRow(row)
        elif versions:
            self.table.selectRow(0)
        self._selection_changed()
        if not versions:
            self.status.setText("No version matches." if self.search.text().strip() else
                                "Nothing recorded yet: open a model on the Model page.")
        self.refreshed.emit(versions)

    def _add_row(self, version: Version) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        cells = [version.name, str(version.version), ", ".join(version.aliases),
                 human_size(version.size), version.format, when_text(version.created),
                 version.parity_verdict, version.origin]
        for column, text in enumerate(cells):
            item = QTableWidgetItem(printable(text))
            item.setToolTip(printable(text))
            if column == 2 and version.aliases:
                font = QFont()
                font.setBold(True)
                item.setFont(font)
            if column == 6 and version.parity is not None:
                item.setBackground(QBrush(PASS_COLOR if version.parity_verdict == "pass"
                                          else FAIL_COLOR))
            self.table.setItem(row, column, item)

    # --- selection and details -----------------------------------------------------------------

    def selected_versions(self) -> list[Version]:
        model = self.table.selectionModel()
        rows = sorted(index.row() for index in model.selectedRows()) if model else []
        return [self.versions[row] for row in rows if row < len(self.versions)]

    def selected(self) -> Version | None:
        current = self.table.currentRow()
        chosen = self.selected_versions()
        if not chosen:
            return None
        return next((v for v in chosen if self.versions.index(v) == current), chosen[0])

    def _update_actions(self) -> None:
        chosen = self.selected_versions()
        one = len(chosen) == 1
        for button in (self.serve_button, self.alias_button, self.rollback_button,
                       self.export_button, self.delete_button):
            button.setEnabled(one)
        self.compare_button.setEnabled(len(chosen) == 2 or (one and len(self.versions) > 1))
        self.compare_button.setText("Compare" if len(chosen) == 2 else "Compare with…")

    def _selection_changed(self) -> None:
        self._update_actions()
        version = self.selected()
        self._detail_generation += 1
        if version is None:
            self.lineage.clear()
            self.history.setRowCount(0)
            self.facts.clear()
            return
        generation = self._detail_generation
        registry = self.registry
        self.runner.submit(
            lambda progress: (registry.lineage(version), registry.alias_history(version.name)),
            name="Reading the lineage", logged=False,
            on_result=lambda found, g=generation: self._show_details(g, *found),
            on_error=self.error_banner.show_error)

    def _show_details(self, generation: int, lineage: Lineage, moves: list[AliasMove]) -> None:
        if generation != self._detail_generation:
            return
        self._show_lineage(lineage)
        self._show_history(moves)
        self._show_facts(lineage.version)
        self.details_shown.emit(lineage.version)

    def _show_lineage(self, lineage: Lineage) -> None:
        self.lineage.clear()
        parent: QTreeWidgetItem | None = None

        def add(texts: list[str], under: QTreeWidgetItem | None) -> QTreeWidgetItem:
            item = QTreeWidgetItem([printable(text) for text in texts])
            if under is None:
                self.lineage.addTopLevelItem(item)
            else:
                under.addChild(item)
            return item

        for ancestor in lineage.ancestors:
            if isinstance(ancestor, Version):
                parent = add([ancestor.reference, ancestor.origin, ancestor.parity_verdict],
                             parent)
            else:
                parent = add([ancestor, "deleted", ""], parent)
        version = lineage.version
        current = add([version.reference, version.origin, version.parity_verdict], parent)
        font = QFont()
        font.setBold(True)
        for column in range(3):
            current.setFont(column, font)
        by_depth = {0: current}
        for depth, child in lineage.descendants:
            by_depth[depth] = add([child.reference, child.origin, child.parity_verdict],
                                  by_depth[depth - 1])
        self.lineage.expandAll()

    def _show_history(self, moves: list[AliasMove]) -> None:
        self.history.setRowCount(0)
        for move in moves:
            row = self.history.rowCount()
            self.history.insertRow(row)
            before = "-" if move.from_version is None else str(move.from_version)
            after = "-" if move.to_version is None else str(move.to_version)
            verb = {"rollback": " (rolled back)", "remove": " (removed)"}.get(move.action, "")
            for column, text in enumerate([when_text(move.at), move.user, move.alias,
                                           f"{before} → {after}{verb}"]):
                self.history.setItem(row, column, QTableWidgetItem(printable(text)))
        if not moves:
            self.history.insertRow(0)
            self.history.setItem(0, 0, QTableWidgetItem("No alias of this model has moved yet."))

    def _show_facts(self, version: Version) -> None:
        self.facts.clear()
        for label, text in version.facts():
            item = QTreeWidgetItem([label, printable(text)])
            item.setToolTip(1, printable(text))  # a long path is elided in the column
            self.facts.addTopLevelItem(item)

    # --- actions -------------------------------------------------------------------------------

    def _run(self, work: Callable[[], object], name: str,
             then: Callable[[object], None] | None = None) -> None:
        """A registry action off the GUI thread; the table reloads once it is done."""
        self.error_banner.hide()

        def done(result: object) -> None:
            if then is not None:
                then(result)
            self.changed.emit(result)
            self.refresh()

        self.runner.submit(lambda progress: work(), name=name, on_result=done,
                           on_error=self.error_banner.show_error)

    def serve_selected(self) -> None:
        version = self.selected()
        if version is None:
            return
        registry = self.registry
        self.status.setText(f"Checking {version.reference} before serving it…")
        self.runner.submit(
            lambda progress: ResolvedModel(path=registry.model_path(version, progress),
                                           name=version.name, version=version.version),
            name=f"Checking {version.reference}", on_result=self._serve_checked,
            on_error=self.error_banner.show_error)

    def _serve_checked(self, resolved: ResolvedModel) -> None:
        self.status.setText(f"Opening {resolved.reference} for the Serve page")
        self.serve_requested.emit(resolved)

    def set_alias_on_selected(self) -> None:
        version = self.selected()
        if version is None:
            return
        known = sorted({a for v in self.versions if v.name == version.name for a in v.aliases})
        alias = self.ask_alias(version, known + [a for a in SUGGESTED_ALIASES if a not in known])
        if alias:
            self.set_alias(version, alias.strip())

    def set_alias(self, version: Version, alias: str) -> None:
        registry = self.registry
        self._run(lambda: registry.set_alias(version.name, alias, version.version),
                  f"Pointing {version.name}@{alias}",
                  lambda move: self.status.setText(printable(move.text())))

    def roll_back_selected(self) -> None:
        version = self.selected()
        if version is None:
            return
        registry = self.registry
        self.runner.submit(
            lambda progress: sorted({m.alias for m in registry.alias_history(version.name)}),
            name="Reading the aliases", on_error=self.error_banner.show_error,
            on_result=lambda aliases: self._choose_rollback(version, aliases))

    def _choose_rollback(self, version: Version, aliases: list[str]) -> None:
        if not aliases:
            self.error_banner.show_error(StudioError(
                f"No alias of {version.name} has moved yet: there is nothing to roll back.",
                "Set one first with Set alias…"))
            return
        alias = aliases[0] if len(aliases) == 1 else self.ask_which_alias(version, aliases)
        if alias:
            self.roll_back(version.name, alias)

    def roll_back(self, name: str, alias: str) -> None:
        registry = self.registry
        self._run(lambda: registry.rollback(name, alias), f"Rolling back {name}@{alias}",
                  lambda move: self.status.setText(printable(move.text())))

    def _compare_clicked(self) -> None:
        chosen = self.selected_versions()
        if len(chosen) == 2:
            self.compare_with(chosen[1].reference, chosen[0])
            return
        version = self.selected()
        if version is None:
            return
        menu = self.compare_menu
        menu.clear()
        others = [v for v in self.versions if v.reference != version.reference]
        for other in sorted(others, key=lambda v: (v.name != version.name, v.name, -v.version)):
            label = other.reference + (f"  ({', '.join(other.aliases)})" if other.aliases else "")
            menu.addAction(printable(label)).triggered.connect(
                lambda _=False, reference=other.reference: self.compare_with(reference))
        menu.popup(self.compare_button.mapToGlobal(self.compare_button.rect().bottomLeft()))

    def compare_with(self, other: str, version: Version | None = None) -> None:
        version = version or self.selected()
        if version is not None:
            self.compare_requested.emit(version.reference, other)

    def export_selected(self) -> None:
        version = self.selected()
        if version is None:
            return
        suffix = Path(version.file_name).suffix
        suggested = Path.home() / f"{version.name}-v{version.version}{suffix}"
        destination = self.choose_destination(suggested)
        if destination is not None:
            self.export(version, destination)

    def export(self, version: Version, destination: Path) -> None:
        registry = self.registry
        self._run(lambda: registry.export(version, destination),
                  f"Exporting {version.reference}",
                  lambda path: self.status.setText(f"Exported {version.reference} to {path}"))

    def delete_selected(self) -> None:
        version = self.selected()
        if version is None:
            return
        aliases = ", ".join(f"{version.name}@{a}" for a in version.aliases)
        text = (f"Delete {version.reference} and its stored file?"
                + (f"\n\n{aliases} names it: the alias is removed too (its history is kept)."
                   if aliases else ""))
        self.confirm_box = QMessageBox(
            QMessageBox.Icon.Warning, f"Delete {version.reference}?", printable(text),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        self.confirm_box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box = self.confirm_box
        box.buttonClicked.connect(
            lambda button: self.delete(version, force=bool(version.aliases))
            if box.standardButton(button) == QMessageBox.StandardButton.Yes else None)
        box.open()

    def delete(self, version: Version, force: bool = False) -> None:
        registry = self.registry

        def delete() -> Version:
            registry.delete(version, force=force)
            return version

        self._run(delete, f"Deleting {version.reference}",
                  lambda deleted: self.status.setText(f"Deleted {deleted.reference}"))

    # --- dialogs (replaceable, so tests can answer them) -----------------------------------------

    def _alias_from_dialog(self, version: Version, suggestions: list[str]) -> str | None:
        alias, accepted = QInputDialog.getItem(
            self, "Set alias", f"Alias of {version.name} to point at version {version.version}:",
            suggestions, 0, True)
        return alias if accepted and alias.strip() else None

    def _choice_from_dialog(self, version: Version, aliases: list[str]) -> str | None:
        alias, accepted = QInputDialog.getItem(
            self, "Roll back alias", f"Which alias of {version.name} goes back one move?",
            aliases, 0, False)
        return alias if accepted else None

    def _destination_from_dialog(self, suggested: Path) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the version's file", str(suggested))
        return Path(path) if path else None
