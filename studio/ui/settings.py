"""The studio's preferences: one typed object, its keys defined once, kept with QSettings.

`StudioSettings` lists every preference with its default; `load()` reads them (migrating an older
layout first) and `save()` writes them back. A value QSettings hands back in the wrong type (an
edited file, a platform that stores everything as text) falls back to the default instead of
reaching a page as a string.

Migrations: each step turns schema version N into N + 1 and is listed in MIGRATIONS. Version 0 is
the layout before this object existed (a bare "recentFiles" key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Literal, get_args

from PySide6.QtCore import QSettings

SCHEMA_VERSION = 1
VERSION_KEY = "schemaVersion"

# The stages' own defaults, written out so reading the settings imports no stage (start-up time);
# tests/ui/test_settings.py holds them equal to studio.core.monitor.drift.Thresholds and
# studio.core.serve.bundle.DEFAULT_BASE_IMAGE.
DEFAULT_PSI_WARN, DEFAULT_PSI_ALERT = 0.1, 0.25
DEFAULT_BASE_IMAGE = "python:3.11-slim"

Theme = Literal["system", "light", "dark"]
Runtime = Literal["auto", "docker", "process"]


@dataclass
class LoadPreset:
    """The user's own load-test preset, offered beside the built-in ones on the Load page."""

    connections: int = 16
    duration_s: float = 15.0
    warmup_s: float = 1.0


@dataclass
class StudioSettings:
    theme: Theme = "system"
    default_runtime: Runtime = "auto"
    base_image: str = DEFAULT_BASE_IMAGE
    wheelhouse_dir: str = ""
    """Where the server's wheels are cached; empty for the default cache folder."""
    psi_warn: float = DEFAULT_PSI_WARN
    psi_alert: float = DEFAULT_PSI_ALERT
    scrape_interval_s: float = 0.5
    """How often the Monitor page reads the server's /metrics."""
    load_preset: str = "Steady"
    """The preset the Load page starts on."""
    my_preset: LoadPreset = field(default_factory=LoadPreset)
    recent_files: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What is wrong with these values, in words for the settings dialog (empty when fine)."""
        found = []
        if not 0 < self.psi_warn < self.psi_alert:
            found.append("The drift warning level must be above 0 and below the alert level.")
        if not 0.25 <= self.scrape_interval_s <= 60:
            found.append("The scrape interval must be between 0.25 s and 60 s.")
        if not self.base_image.strip():
            found.append("The base image cannot be empty.")
        if self.my_preset.connections < 1 or self.my_preset.duration_s <= 0:
            found.append("Your load preset needs at least one connection and a duration.")
        return found


def _migrate_0_to_1(store: QSettings) -> None:
    """Before the settings object the recent files sat under a top-level "recentFiles" key."""
    if store.contains("recentFiles"):
        store.setValue("recent_files", store.value("recentFiles"))
        store.remove("recentFiles")


MIGRATIONS: dict[int, Callable[[QSettings], None]] = {0: _migrate_0_to_1}


def migrate(store: QSettings) -> None:
    version = _as(int, store.value(VERSION_KEY, 0), 0)
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](store)
        version += 1
        store.setValue(VERSION_KEY, version)


def load(store: QSettings) -> StudioSettings:
    migrate(store)
    settings = StudioSettings()
    for item in fields(StudioSettings):
        default = getattr(settings, item.name)
        if item.name == "my_preset":
            preset = LoadPreset()
            for part in fields(LoadPreset):
                key = f"my_preset/{part.name}"
                setattr(preset, part.name, _as(type(getattr(preset, part.name)),
                                               store.value(key), getattr(preset, part.name)))
            settings.my_preset = preset
        elif item.name == "recent_files":
            value = store.value(item.name, [])
            value = [value] if isinstance(value, str) else value  # one item comes back bare
            settings.recent_files = [str(v) for v in value or []]
        else:
            value = _as(type(default), store.value(item.name), default)
            choices = _choices(item.name)
            if choices and value not in choices:
                value = default
            setattr(settings, item.name, value)
    return settings


def save(settings: StudioSettings, store: QSettings) -> None:
    for item in fields(StudioSettings):
        value = getattr(settings, item.name)
        if item.name == "my_preset":
            for part in fields(LoadPreset):
                store.setValue(f"my_preset/{part.name}", getattr(value, part.name))
        else:
            store.setValue(item.name, value)
    store.setValue(VERSION_KEY, SCHEMA_VERSION)
    store.sync()


def _choices(name: str) -> tuple[str, ...]:
    return {"theme": get_args(Theme), "default_runtime": get_args(Runtime)}.get(name, ())


def _as(kind: type, value: object, default):
    """`value` as `kind`, or `default` when it is missing or cannot be read as one."""
    if value is None:
        return default
    if kind is bool:
        return value in (True, "true", "1", 1)
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        return default
    if isinstance(converted, float) and converted != converted:  # NaN
        return default
    return converted
