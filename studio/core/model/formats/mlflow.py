"""MLflow model folders: an `MLmodel` file naming the flavors, plus the model file itself.

The studio reads MLmodel as YAML and never imports mlflow: the sklearn flavor's model file goes
through the same trust rules as any pickle or skops file, the onnx flavor through the ONNX checks.
A signature, when the folder has one, names and types the inputs; an input example gives the sample
requests real values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from studio.core.errors import ModelLoadError
from studio.core.model.formats import onnx as onnx_format
from studio.core.model.formats import sklearn as sklearn_format
from studio.core.model.schema import FeatureSpec, ModelSchema, tabular_inputs
from studio.core.tasks import Progress

# MLflow's column types -> element types.
COLUMN_TYPES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "string",
    "binary": "string",
    "datetime": "string",
}
PROPERTY_KEYS = ("mlflow_version", "run_id", "model_uuid", "utc_time_created", "artifact_path")
MAX_EXAMPLE_BYTES = 1024 * 1024
"""An input example holds a few rows; a larger file is not read (and not trusted to be one)."""


def read_mlmodel(folder: Path) -> dict[str, Any]:
    mlmodel = folder / "MLmodel"
    try:
        is_file = mlmodel.is_file()
        data = mlmodel.read_bytes() if is_file else b""
    except PermissionError as exc:
        raise ModelLoadError(
            f"Slipway Studio may not read the MLmodel file in '{folder.name}': permission denied.",
            "Give your user read access to the model folder and its files (chmod -R u+rX), or "
            "copy the folder somewhere readable.",
        ) from exc
    if not is_file:
        raise ModelLoadError(
            f"'{folder.name}' is a folder without an MLmodel file, so it is not an MLflow model.",
            "Open the model file itself, or the folder that mlflow.<flavor>.save_model wrote.",
        )
    try:
        document = yaml.safe_load(data.decode())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"The MLmodel file in '{folder.name}' is not valid YAML.",
                             "Save the model again with MLflow.", detail=str(exc)) from exc
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise ModelLoadError(f"The MLmodel file in '{folder.name}' names no flavors.",
                             "Save the model again with MLflow.")
    return document


def signature_features(document: dict[str, Any]) -> list[FeatureSpec] | None:
    """Features named by a column-based signature; None for tensor signatures or none at all.

    MLflow writes the inputs as a JSON list of {"name", "type"} columns; anything else (a hand-made
    or damaged MLmodel) is no column signature, and the estimator's own description is used."""
    signature = document.get("signature")
    if not isinstance(signature, dict) or not isinstance(signature.get("inputs"), str):
        return None
    try:
        columns = json.loads(signature["inputs"])
    except json.JSONDecodeError:
        return None
    if not isinstance(columns, list) or not columns:
        return None
    if not all(isinstance(c, dict) and isinstance(c.get("name"), str | int)
               and isinstance(c.get("type"), str) and c["type"] != "tensor" for c in columns):
        return None
    features = []
    for column in columns:
        dtype = COLUMN_TYPES.get(column["type"], "float32")
        kind = "categorical" if dtype == "string" else "numeric"
        features.append(FeatureSpec(name=str(column["name"]), kind=kind, dtype=dtype))
    return features


def _example_row(folder: Path, document: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The first row of the saved input example (column -> value), and a warning when the file
    is named but cannot be used. The file must be a regular file inside the model's folder and
    small: an MLmodel could otherwise name /etc/passwd (its text would become example values) or
    /dev/zero (read without end)."""
    info = document.get("saved_input_example_info")
    name = info.get("artifact_path") if isinstance(info, dict) else None
    named = isinstance(name, str) and bool(name)
    inside = folder.resolve()
    example = (inside / (name if named else "input_example.json")).resolve()
    if not example.is_relative_to(inside):
        return {}, (f"The input example '{name}' is outside the model's folder and was not read.")
    try:
        if not example.is_file():  # also refuses devices and fifos
            return {}, (f"The input example '{name}' is not a file." if named else None)
        if example.stat().st_size > MAX_EXAMPLE_BYTES:
            return {}, (f"The input example '{example.name}' is larger than "
                        f"{MAX_EXAMPLE_BYTES // 1024} KiB and was not read.")
        data = json.loads(example.read_bytes()[:MAX_EXAMPLE_BYTES])
        row = dict(zip(data["columns"], data["data"][0]))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return {}, f"The input example '{example.name}' is not MLflow's split-orient JSON."
    scalars = {str(k): v for k, v in row.items() if isinstance(v, str | int | float | bool)}
    return scalars, None


def _merge(signature: list[FeatureSpec], described: list[FeatureSpec],
           example: dict[str, Any]) -> list[FeatureSpec]:
    """Signature names and types, with the estimator's categories and examples where they match."""
    known = {f.name: f for f in described}
    merged = []
    for feature in signature:
        match = known.get(feature.name)
        update: dict[str, Any] = {}
        if match is not None:
            update["categories"] = match.categories
            update["example"] = match.example
            if match.kind == "categorical":
                update["kind"] = "categorical"
        if feature.name in example and example[feature.name] is not None:
            update["example"] = example[feature.name]
        merged.append(feature.model_copy(update=update))
    return merged


def _model_file(folder: Path, name: Any) -> Path:
    if not isinstance(name, str) or not name:
        raise ModelLoadError(f"The MLmodel file in '{folder.name}' does not name its model file.",
                             "Save the model again with MLflow.")
    model_file = (folder / name).resolve()
    if not model_file.is_relative_to(folder.resolve()) or not model_file.is_file():
        raise ModelLoadError(f"The MLmodel file names '{name}', which is not in the model's folder.",
                             "Copy the whole model folder that MLflow wrote.")
    return model_file


def load_mlflow(folder: Path, *, trust: bool, timeout: float, memory_limit: int | None,
                progress: Progress) -> tuple[ModelSchema, Path]:
    document = read_mlmodel(folder)
    flavors = {name: flavor if isinstance(flavor, dict) else {}
               for name, flavor in document["flavors"].items()}
    signature = signature_features(document)
    example, example_warning = _example_row(folder, document)
    if "onnx" in flavors:
        model_file = _model_file(folder, flavors["onnx"].get("data", "model.onnx"))
        schema, _ = onnx_format.inspect_onnx(model_file, memory_limit=memory_limit)
        if signature and len(signature) == len(schema.features):
            carriers = [f.tensor for f in schema.features]
            schema.features = _merge(signature, schema.features, example)
            for feature, tensor in zip(schema.features, carriers):
                feature.tensor = tensor
    elif "sklearn" in flavors:
        flavor = flavors["sklearn"]
        model_file = _model_file(folder, flavor.get("pickled_model", "model.pkl"))
        if flavor.get("serialization_format") == "skops" or model_file.suffix == ".skops":
            description = sklearn_format.load_skops(model_file, trust=trust, timeout=timeout,
                                                    progress=progress)
        else:
            description = sklearn_format.load_pickle(model_file, trust=trust, timeout=timeout,
                                                     progress=progress)
        described = [FeatureSpec.model_validate(f) for f in description["features"]]
        features = _merge(signature, described, example) if signature else [
            f.model_copy(update={"example": example.get(f.name, f.example)}) for f in described
        ]
        schema = sklearn_format.schema_from_description(folder, "mlflow", description, features)
        schema.inputs = tabular_inputs(schema.features,
                                       per_column=description.get("column_inputs", False))
    else:
        raise ModelLoadError(
            f"The MLflow model in '{folder.name}' has the flavors {', '.join(sorted(map(str, flavors)))}; "
            "Slipway Studio reads the sklearn and onnx flavors.",
            "Log the model with mlflow.sklearn or mlflow.onnx, or convert it to ONNX first.",
        )
    schema.name = folder.name
    schema.metadata.format = "mlflow"
    schema.metadata.path = str(folder)
    schema.metadata.properties.update(
        {key: str(document[key]) for key in PROPERTY_KEYS if document.get(key)}
    )
    schema.metadata.properties["flavors"] = ", ".join(sorted(map(str, flavors)))
    if example_warning:
        schema.metadata.warnings.append(example_warning)
    return schema, model_file
