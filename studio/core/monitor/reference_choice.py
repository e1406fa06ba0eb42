"""The reference data a person chose for a model, remembered from one serve to the next.

Without reference data a server's drift baseline is its first live requests, which cannot show a
shift present from the start; so the Serve page and `slipway serve` ask for the rows the model was
trained on, and the answer is kept per model file (as its port is, core/serve/places.py): serving
the same model again brings the same data, or the same decision to serve without. The choices are
kept in one small JSON file in the studio's data folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from studio.core.files import write_text
from studio.core.workspace import data_root

CHOICES_FILE = "reference_data.json"
WITHOUT = ""
"""Kept for a model served without reference data on purpose: it is not asked for again."""
NO_DATA_CAVEAT = (
    "Without reference data the drift baseline is the model's first live requests, so drift "
    "present from the start cannot be seen.")


@dataclass(frozen=True)
class ReferenceChoice:
    data: Path | None
    """The rows chosen for the model; None when it was chosen to serve it without."""

    @property
    def missing(self) -> bool:
        """The chosen file is no longer there (moved or deleted since)."""
        return self.data is not None and not self.data.is_file()


def _choices_path() -> Path:
    return data_root() / CHOICES_FILE


def _model_key(model: Path) -> str:
    return str(Path(model).resolve())


def _read_choices() -> dict[str, str]:
    try:
        choices = json.loads(_choices_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(choices, dict):
        return {}
    return {k: v for k, v in choices.items() if isinstance(v, str)}


def remembered_reference(model: Path) -> ReferenceChoice | None:
    """What was chosen for the model file `model` the last time it was served; None if nothing
    was."""
    chosen = _read_choices().get(_model_key(model))
    if chosen is None:
        return None
    return ReferenceChoice(Path(chosen) if chosen != WITHOUT else None)


def remember_reference(model: Path, data: Path | None) -> None:
    """Keep `data` (None: serving without, on purpose) as the reference data of `model`.
    Raises WriteError when the data folder cannot be written."""
    choices = _read_choices()
    chosen = str(Path(data).resolve()) if data is not None else WITHOUT
    if choices.get(_model_key(model)) == chosen:
        return
    choices[_model_key(model)] = chosen
    write_text(_choices_path(), json.dumps(choices, indent=1))
