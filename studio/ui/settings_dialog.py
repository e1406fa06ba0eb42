"""Edit → Settings: every StudioSettings value, checked before it is kept."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.settings import LoadPreset, StudioSettings
from studio.ui.widgets.page_parts import count_box, number_box

THEMES = (("Follow the system", "system"), ("Light", "light"), ("Dark", "dark"))
RUNTIMES = (("Auto (Docker when an engine answers)", "auto"), ("Docker", "docker"),
            ("Local process", "process"))


def _combo(choices: tuple[tuple[str, str], ...], current: str) -> QComboBox:
    box = QComboBox()
    for label, value in choices:
        box.addItem(label, value)
    box.setCurrentIndex(max(0, box.findData(current)))
    return box


class SettingsDialog(QDialog):
    def __init__(self, settings: StudioSettings, preset_names: list[str],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.original = settings

        self.theme = _combo(THEMES, settings.theme)
        appearance = QFormLayout()
        appearance.addRow("Theme", self.theme)

        self.runtime = _combo(RUNTIMES, settings.default_runtime)
        self.base_image = QLineEdit(settings.base_image)
        self.wheelhouse = QLineEdit(settings.wheelhouse_dir)
        self.wheelhouse.setPlaceholderText("the default cache folder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_wheelhouse)
        wheelhouse_row = QHBoxLayout()
        wheelhouse_row.addWidget(self.wheelhouse, 1)
        wheelhouse_row.addWidget(browse)
        serving = QFormLayout()
        serving.addRow("Default runtime", self.runtime)
        serving.addRow("Base image", self.base_image)
        serving.addRow("Wheelhouse cache", wheelhouse_row)

        self.psi_warn = number_box(0.01, 5, settings.psi_warn, step=0.01)
        self.psi_alert = number_box(0.01, 5, settings.psi_alert, step=0.01)
        self.scrape = number_box(0.25, 60, settings.scrape_interval_s, step=0.25, suffix=" s")
        monitoring = QFormLayout()
        monitoring.addRow("Drift warning at PSI", self.psi_warn)
        monitoring.addRow("Drift alert at PSI", self.psi_alert)
        monitoring.addRow("Scrape /metrics every", self.scrape)

        self.start_preset = QComboBox()
        self.start_preset.addItems(preset_names)
        self.start_preset.setCurrentIndex(max(0, self.start_preset.findText(settings.load_preset)))
        self.connections = count_box(1, 1024, settings.my_preset.connections)
        self.duration = number_box(1, 3600, settings.my_preset.duration_s, step=1, suffix=" s",
                                   decimals=1)
        self.warmup = number_box(0, 600, settings.my_preset.warmup_s, step=1, suffix=" s", decimals=1)
        load = QFormLayout()
        load.addRow("Start on preset", self.start_preset)
        load.addRow("My preset: connections", self.connections)
        load.addRow("My preset: duration", self.duration)
        load.addRow("My preset: warm-up", self.warmup)

        self.problem = QLabel()
        self.problem.setObjectName("errorMessage")
        self.problem.setWordWrap(True)
        self.problem.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        for title, form in (("Appearance", appearance), ("Serving", serving),
                            ("Monitoring", monitoring), ("Load tests", load)):
            group = QGroupBox(title)
            group.setLayout(form)
            layout.addWidget(group)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def _choose_wheelhouse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Wheelhouse cache folder",
                                                  self.wheelhouse.text())
        if folder:
            self.wheelhouse.setText(folder)

    def chosen(self) -> StudioSettings:
        """The settings as the dialog shows them (recent files and anything not shown kept)."""
        return dataclasses.replace(
            self.original,
            theme=self.theme.currentData(), default_runtime=self.runtime.currentData(),
            base_image=self.base_image.text().strip(), wheelhouse_dir=self.wheelhouse.text().strip(),
            psi_warn=self.psi_warn.value(), psi_alert=self.psi_alert.value(),
            scrape_interval_s=self.scrape.value(), load_preset=self.start_preset.currentText(),
            my_preset=LoadPreset(self.connections.value(), self.duration.value(),
                                 self.warmup.value()))

    def accept(self) -> None:
        problems = self.chosen().problems()
        if problems:
            self.problem.setText("\n".join(problems))
            self.problem.show()
            return
        super().accept()
