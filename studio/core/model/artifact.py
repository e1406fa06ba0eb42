"""`load(path)`: the first arrow of the journey, from a file or folder to a ModelArtifact.

It checks what every format shares (the path exists, can be read, is not empty, is a format the
studio knows), dispatches to the format's module, and fills the facts every schema carries: file
size, sha256 and sample request bodies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from studio.core.errors import ModelLoadError
from studio.core.model.formats import boosters
from studio.core.model.formats import mlflow as mlflow_format
from studio.core.model.formats import onnx as onnx_format
from studio.core.model.formats import sklearn as sklearn_format
from studio.core.model.isolation import DEFAULT_TIMEOUT_S
from studio.core.model.schema import ModelSchema
from studio.core.tasks import Progress, quiet

SUPPORTED_TEXT = (
    "ONNX (.onnx), scikit-learn (.joblib, .pkl, .pickle, .skops), MLflow model folders, "
    "XGBoost (.json, .ubj) and LightGBM (.txt) models"
)
PICKLE_MAGIC = b"\x80"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded model: where it is, what it is, and its schema.

    Pickled models are never held in this process (they load in a child), so an artifact carries
    the path and the schema, not the estimator object.
    """

    path: Path
    """What the user opened: a file, or an MLflow model folder."""
    model_file: Path
    """The file holding the model itself (inside the folder, for MLflow)."""
    format: str
    schema: ModelSchema
    trusted: bool = False
    """The user allowed this file's code to run (pickles, unknown skops types)."""

    @property
    def name(self) -> str:
        return self.schema.name


def moved(artifact: ModelArtifact, path: Path) -> ModelArtifact:
    """The same model once its file was moved to `path` (a checked file put in place)."""
    schema = artifact.schema.model_copy(update={"metadata": artifact.schema.metadata.model_copy(
        update={"path": str(path)})})
    return replace(artifact, path=path, model_file=path, schema=schema)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def detect_format(path: Path) -> str:
    """onnx, mlflow, sklearn-joblib, sklearn-pickle, skops, xgboost or lightgbm."""
    if path.is_dir():
        return "mlflow"
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".skops":
        return "skops"
    if suffix == ".joblib":
        return "sklearn-joblib"
    if suffix in (".pkl", ".pickle"):
        return "sklearn-pickle"
    native = boosters.sniff(path)
    if native:
        return native
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(PICKLE_MAGIC):
        return "sklearn-pickle"
    if head == ZIP_MAGIC and suffix not in (".zip",):
        return "skops"
    raise ModelLoadError(
        f"'{path.name}' is not a model format Slipway Studio loads.",
        f"Open one of: {SUPPORTED_TEXT}.",
    )


def _check_readable(path: Path) -> None:
    try:
        exists = path.exists()
    except PermissionError as exc:  # a folder on the way may not be entered (no x permission)
        raise ModelLoadError(
            f"Slipway Studio may not read '{path.name}': permission denied on a folder that "
            "holds it.",
            "Give your user access to the folders on its path (chmod u+rx) or copy it somewhere "
            "readable.",
        ) from exc
    if not exists:
        raise ModelLoadError(f"There is no file or folder at '{path}'.",
                             "Check the path; it may have been moved or renamed.")
    if path.is_dir():
        return
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError as exc:
        raise ModelLoadError(
            f"Slipway Studio may not read '{path.name}': permission denied.",
            "Give your user read permission (chmod u+r) or copy the file somewhere readable.",
        ) from exc
    except OSError as exc:
        raise ModelLoadError(f"'{path.name}' cannot be read: {exc.strerror}.",
                             "Check the disk and the path.") from exc
    if path.stat().st_size == 0:
        raise ModelLoadError(f"'{path.name}' is empty (0 bytes): there is no model in it.",
                             "The save or copy that made it probably failed; save the model again.")


def load(path: str | Path, *, trust: bool = False, timeout: float = DEFAULT_TIMEOUT_S,
         memory_limit: int | None = None, progress: Progress | None = None) -> ModelArtifact:
    """Load and inspect a model file or MLflow folder.

    `trust` allows files that run code when loaded (pickles); without it they raise TrustRequired,
    which lists what the file would import. Loading that runs model code happens in a child
    process stopped after `timeout` seconds. `memory_limit` (bytes, ONNX files) defaults to the
    memory free now.
    """
    progress = progress or quiet()
    path = Path(path).expanduser()
    progress.update(0.0, f"Opening {path.name}")
    _check_readable(path)
    fmt = detect_format(path)
    progress.update(0.1, f"Reading {path.name} as {fmt}")
    model_file = path
    if fmt == "onnx":
        schema, _ = onnx_format.inspect_onnx(path, memory_limit=memory_limit)
    elif fmt == "mlflow":
        schema, model_file = mlflow_format.load_mlflow(path, trust=trust, timeout=timeout,
                                                        memory_limit=memory_limit, progress=progress)
    else:
        if fmt in ("sklearn-joblib", "sklearn-pickle"):
            description = sklearn_format.load_pickle(path, trust=trust, timeout=timeout,
                                                     progress=progress)
        elif fmt == "skops":
            description = sklearn_format.load_skops(path, trust=trust, timeout=timeout,
                                                    progress=progress)
        else:
            description = boosters.load_booster(path, fmt, timeout=timeout, progress=progress)
        schema = sklearn_format.schema_from_description(path, fmt, description)
    progress.update(0.9, "Hashing the model file")
    schema.metadata.sha256 = sha256_of(model_file)
    if fmt != "onnx":
        schema.metadata.file_size = model_file.stat().st_size
    progress.update(1.0, "Loaded")
    return ModelArtifact(path=path, model_file=model_file, format=fmt, schema=schema.with_samples(),
                         trusted=trust)
