"""MLflow model folders written by mlflow itself: the studio reads MLmodel without importing mlflow,
names features from the signature and takes sample values from the input example."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml

from studio.core.errors import ModelLoadError, TrustRequired
from studio.core.model.artifact import load
from studio.core.model.schema import ModelSchema


def input_example_rows(folder) -> list[dict]:
    example = json.loads((folder / "input_example.json").read_text())
    return [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]


# --- sklearn flavor, skops (mlflow's default) ----------------------------------------------------

@pytest.fixture(scope="module")
def skops_folder(mlflow_sklearn_skops, loads):
    model = mlflow_sklearn_skops
    return model, loads.get(model.path)


def test_mlflow_skops_model_loads_without_trust(skops_folder):
    model, artifact = skops_folder
    mlmodel = yaml.safe_load((model.path / "MLmodel").read_text())
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert artifact.format == "mlflow" == artifact.schema.metadata.format
    assert artifact.path == model.path
    assert artifact.model_file == model.path / mlmodel["flavors"]["sklearn"]["pickled_model"]
    assert artifact.trusted is False
    schema = artifact.schema
    assert schema.name == "churn_skops"
    assert schema.task == "classification"
    assert schema.class_names == ["churn", "stay"]
    assert schema.metadata.properties["mlflow_version"] == mlmodel["mlflow_version"]
    assert schema.metadata.properties["model_uuid"] == mlmodel["model_uuid"]
    assert "sklearn" in schema.metadata.properties["flavors"]
    assert ModelSchema.from_json(schema.to_json()) == schema


def test_mlflow_signature_names_and_types_the_features(skops_folder):
    model, artifact = skops_folder
    signature = json.loads(yaml.safe_load((model.path / "MLmodel").read_text())
                           ["signature"]["inputs"])
    features = artifact.schema.features
    assert [f.name for f in features] == [c["name"] for c in signature]
    plan, region, age, spend = features
    assert (plan.kind, plan.dtype, plan.categories) == ("categorical", "string",
                                                        ["basic", "plus", "pro"])
    assert (region.kind, region.categories) == ("categorical", ["east", "north", "south", "west"])
    assert (age.kind, age.dtype) == ("numeric", "float64")
    assert (spend.kind, spend.dtype) == ("numeric", "float64")
    assert [(t.name, t.dtype) for t in artifact.schema.inputs] == [
        ("plan", "string"), ("region", "string"), ("age", "float64"), ("monthly_spend", "float64")]


def test_mlflow_sample_values_come_from_the_input_example(skops_folder):
    model, artifact = skops_folder
    first_row = input_example_rows(model.path)[0]
    assert first_row == model.X.iloc[3].to_dict()
    row = artifact.schema.samples.rest["features"]
    assert row == pytest.approx(first_row)
    [prediction] = model.estimator.predict(pd.DataFrame([row]))
    assert prediction in artifact.schema.class_names


# --- sklearn flavor, cloudpickle -----------------------------------------------------------------

def test_mlflow_cloudpickle_model_needs_trust(mlflow_sklearn_cloudpickle):
    with pytest.raises(TrustRequired) as caught:
        load(mlflow_sklearn_cloudpickle.path)
    assert caught.value.message == ("'model.pkl' is a Python pickle: loading it runs any code it "
                                    "contains.")
    assert "sklearn.pipeline.Pipeline" in caught.value.reasons


def test_mlflow_cloudpickle_model_loads_with_trust_and_takes_names_from_the_signature(
        mlflow_sklearn_cloudpickle, loads):
    model = mlflow_sklearn_cloudpickle
    artifact = loads.get(model.path, trust=True)
    schema = artifact.schema
    assert artifact.trusted is True
    assert artifact.model_file == model.path / "model.pkl"
    assert schema.task == "classification"
    assert schema.class_names == ["setosa", "versicolor", "virginica"]
    # The estimator was fitted on a bare array: only the signature knows the names.
    assert [f.name for f in schema.features] == model.feature_names
    first_row = input_example_rows(model.path)[0]
    assert schema.samples.rest["features"] == pytest.approx(first_row)
    assert first_row == pytest.approx(model.X.iloc[50].to_dict())
    values = np.array([list(schema.samples.rest["features"].values())])
    assert model.estimator.predict(values)[0] in schema.class_names


# --- onnx flavor ---------------------------------------------------------------------------------

def test_mlflow_onnx_model_takes_names_from_the_signature_and_runs_its_sample(mlflow_onnx):
    model = mlflow_onnx
    artifact = load(model.path)
    schema = artifact.schema
    assert artifact.model_file == model.path / "model.onnx"
    assert schema.metadata.format == "mlflow" and schema.metadata.onnx is not None
    assert "onnx" in schema.metadata.properties["flavors"]
    assert schema.task == "classification"
    assert schema.class_names == ["setosa", "versicolor", "virginica"]
    assert [f.name for f in schema.features] == model.feature_names
    assert all(f.tensor == schema.inputs[0].name for f in schema.features)
    first_row = input_example_rows(model.path)[0]
    assert schema.samples.rest["features"] == pytest.approx(first_row)
    # The v2 body carries the example row and onnxruntime accepts it.
    [tensor] = schema.samples.v2["inputs"]
    assert tensor["data"] == pytest.approx(list(first_row.values()))
    session = ort.InferenceSession(str(artifact.model_file), providers=["CPUExecutionProvider"])
    feeds = {tensor["name"]: np.array(tensor["data"], dtype=np.float32).reshape(tensor["shape"])}
    label, probabilities = session.run(None, feeds)
    assert list(label) == list(model.estimator.predict(pd.DataFrame([first_row])))
    assert probabilities.shape == (1, 3)
    assert ModelSchema.from_json(schema.to_json()) == schema


# --- broken folders ------------------------------------------------------------------------------

def _folder(tmp_path, mlmodel: str):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text(mlmodel)
    return folder


def test_mlmodel_that_is_not_yaml(tmp_path):
    folder = _folder(tmp_path, "flavors: [unclosed\n  : :")
    with pytest.raises(ModelLoadError) as caught:
        load(folder)
    assert caught.value.message == "The MLmodel file in 'model' is not valid YAML."


def test_mlmodel_without_flavors(tmp_path):
    folder = _folder(tmp_path, "artifact_path: model\n")
    with pytest.raises(ModelLoadError) as caught:
        load(folder)
    assert caught.value.message == "The MLmodel file in 'model' names no flavors."


def test_mlmodel_with_a_flavor_the_studio_does_not_read(tmp_path):
    folder = _folder(tmp_path, "flavors:\n  pytorch: {model_data: data}\n  python_function: {}\n")
    with pytest.raises(ModelLoadError) as caught:
        load(folder)
    assert caught.value.message == ("The MLflow model in 'model' has the flavors python_function, "
                                    "pytorch; Slipway Studio reads the sklearn and onnx flavors.")


def test_mlmodel_naming_a_file_outside_its_folder(tmp_path, sklearn_models):
    folder = _folder(tmp_path, "flavors:\n  sklearn: {pickled_model: ../elsewhere.pkl}\n")
    (tmp_path / "elsewhere.pkl").write_bytes(sklearn_models["logreg_iris_pickle"].path.read_bytes())
    with pytest.raises(ModelLoadError) as caught:
        load(folder, trust=True)
    assert caught.value.message == ("The MLmodel file names '../elsewhere.pkl', which is not in "
                                    "the model's folder.")


# --- hostile folders --------------------------------------------------------------------------

def _copy_with_mlmodel(source, tmp_path, edit):
    """A copy of a real MLflow folder whose MLmodel document `edit` changes."""
    import shutil

    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    document = yaml.safe_load((folder / "MLmodel").read_text())
    edit(document)
    (folder / "MLmodel").write_text(yaml.safe_dump(document))
    return folder


def test_an_input_example_outside_the_folder_is_not_read(tmp_path, mlflow_sklearn_skops):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"columns": ["plan", "region", "age", "monthly_spend"],
                                  "data": [["SECRET-TOKEN", "SECRET", 1.0, 2.0]]}))

    def point_outside(document):
        document["saved_input_example_info"] = {"artifact_path": str(secret), "type": "dataframe"}

    folder = _copy_with_mlmodel(mlflow_sklearn_skops.path, tmp_path, point_outside)
    schema = load(folder).schema
    assert "SECRET" not in schema.to_json()
    assert any("outside the model's folder" in w for w in schema.metadata.warnings)


@pytest.mark.parametrize("target", ["/dev/zero", "../input_example.json"],
                         ids=["device", "relative-escape"])
def test_an_input_example_that_is_not_a_file_in_the_folder_is_refused(tmp_path,
                                                                      mlflow_sklearn_skops,
                                                                      target):
    (tmp_path / "input_example.json").write_text('{"columns": ["age"], "data": [[99999]]}')

    def point_at(document):
        document["saved_input_example_info"] = {"artifact_path": target, "type": "dataframe"}

    folder = _copy_with_mlmodel(mlflow_sklearn_skops.path, tmp_path, point_at)
    schema = load(folder).schema  # ends: /dev/zero is never read
    assert 99999 not in [f.example for f in schema.features]
    assert schema.metadata.warnings


def test_a_huge_input_example_is_not_read(tmp_path, mlflow_sklearn_skops):
    folder = _copy_with_mlmodel(mlflow_sklearn_skops.path, tmp_path, lambda document: None)
    with open(folder / "input_example.json", "r+b") as example:
        example.truncate(64 * 1024 * 1024)  # sparse: no disk used
    schema = load(folder).schema
    assert any("larger than" in w for w in schema.metadata.warnings)


@pytest.mark.parametrize("inputs", ['{"not": "a list"}', '[1, 2, 3]', '[{"type": "double"}]',
                                    '[{"name": "age"}]', None],
                         ids=["object", "numbers", "no-name", "no-type", "not-text"])
def test_a_signature_that_is_not_a_list_of_columns_falls_back_to_the_model(tmp_path,
                                                                          mlflow_sklearn_skops,
                                                                          inputs):
    def damage(document):
        document["signature"] = {"inputs": inputs} if inputs is not None else ["inputs"]

    folder = _copy_with_mlmodel(mlflow_sklearn_skops.path, tmp_path, damage)
    features = load(folder).schema.features
    assert [f.name for f in features] == list(mlflow_sklearn_skops.X.columns)


def test_a_flavor_that_is_not_a_mapping_is_a_clear_error(tmp_path):
    folder = _folder(tmp_path, "flavors:\n  onnx: [model.onnx]\n")
    with pytest.raises(ModelLoadError) as caught:
        load(folder)
    assert "which is not in the model's folder" in caught.value.message
