"""serving.json: defaults, validation, and models that cannot be served; each problem is one
sentence (StartupError), never a traceback."""

from __future__ import annotations

import json

import pytest
from slipway_server import StartupError, create_app, load_settings, settings_from_dict


def test_defaults_for_a_minimal_config(tmp_path, iris_logreg):
    config = tmp_path / "serving.json"
    config.write_text(json.dumps({"model_file": str(iris_logreg.path)}))
    settings = load_settings(config)
    assert settings.model_path == iris_logreg.path
    assert settings.name == "iris"  # the model file's stem
    assert settings.version == "1"
    assert (settings.batching.enabled, settings.batching.max_batch_size,
            settings.batching.max_wait_ms) == (True, 32, 2.0)
    assert (settings.limits.max_body_bytes, settings.limits.max_batch_rows,
            settings.limits.max_concurrency) == (1048576, 1024, 512)
    assert settings.api_key_env is None and settings.api_key is None
    assert settings.threads == 1 and settings.reference is None and settings.schema is None
    assert settings.protect_metrics is False
    limits = settings.limits
    assert (limits.max_connections, limits.max_header_bytes, limits.header_timeout_s,
            limits.body_timeout_s, limits.keep_alive_timeout_s) == (2048, 65536, 10.0, 20.0, 5.0)
    assert (settings.shutdown.ready_pause_s, settings.shutdown.drain_timeout_s) == (0.5, 30.0)


def test_the_connection_and_shutdown_keys_are_read(tmp_path, iris_logreg, monkeypatch):
    monkeypatch.setenv("IRIS_KEY", "k")
    settings = settings_from_dict({
        "limits": {"max_connections": 100, "max_header_bytes": 4096, "header_timeout_s": 2.5,
                   "body_timeout_s": 7, "keep_alive_timeout_s": 1},
        "auth": {"api_key_env": "IRIS_KEY", "protect_metrics": True},
        "shutdown": {"ready_pause_s": 5, "drain_timeout_s": 12.5}}, tmp_path)
    limits = settings.limits
    assert (limits.max_connections, limits.max_header_bytes, limits.header_timeout_s,
            limits.body_timeout_s, limits.keep_alive_timeout_s) == (100, 4096, 2.5, 7.0, 1.0)
    assert (settings.api_key, settings.protect_metrics) == ("k", True)
    assert (settings.shutdown.ready_pause_s, settings.shutdown.drain_timeout_s) == (5.0, 12.5)


def test_model_file_is_relative_to_the_config(tmp_path, iris_logreg):
    (tmp_path / "bundle").mkdir()
    config = tmp_path / "bundle" / "serving.json"
    config.write_text(json.dumps({"model_file": "model.onnx", "name": "flowers"}))
    assert load_settings(config).model_path == (tmp_path / "bundle" / "model.onnx").resolve()


def test_without_a_schema_the_features_come_from_the_model(iris_logreg):
    app = create_app(settings_from_dict({"model_file": str(iris_logreg.path)}))
    assert [f.name for f in app.model.features] == ["x0", "x1", "x2", "x3"]
    assert app.model.task == "classification"


@pytest.mark.parametrize("text, message", [
    ("{", "is not valid JSON: unexpected end of data: line 1 column 2 (char 1)"),
    ("[]", "serving.json must hold a JSON object, got list"),
    ('{"batching": {"max_batch_size": 0}}',
     "serving.json: 'batching.max_batch_size' must be an integer >= 1, got 0"),
    ('{"batching": {"max_wait_ms": -1}}',
     "serving.json: 'batching.max_wait_ms' must be a number >= 0, got -1"),
    ('{"batching": {"enabled": "yes"}}',
     "serving.json: 'batching.enabled' must be true or false, got 'yes'"),
    ('{"limits": {"max_body_bytes": "1MB"}}',
     "serving.json: 'limits.max_body_bytes' must be an integer >= 1, got '1MB'"),
    ('{"limits": 5}', "serving.json: 'limits' must be an object, got int"),
    ('{"threads": 0}', "serving.json: 'threads' must be an integer >= 1, got 0"),
    ('{"auth": {"api_key_env": ""}}',
     ("serving.json: 'auth.api_key_env' must be the name of an environment variable or null, "
     "got ''")),
    ('{"auth": {"protect_metrics": true}}',
     ("serving.json: 'auth.protect_metrics' needs 'auth.api_key_env': /metrics can only be "
      "protected by the API key")),
    ('{"auth": {"api_key_env": "HOME", "protect_metrics": "yes"}}',
     "serving.json: 'auth.protect_metrics' must be true or false, got 'yes'"),
    ('{"limits": {"header_timeout_s": 0}}',
     "serving.json: 'limits.header_timeout_s' must be a number > 0, got 0"),
    ('{"limits": {"body_timeout_s": "10s"}}',
     "serving.json: 'limits.body_timeout_s' must be a number > 0, got '10s'"),
    ('{"limits": {"keep_alive_timeout_s": -1}}',
     "serving.json: 'limits.keep_alive_timeout_s' must be a number > 0, got -1"),
    ('{"limits": {"max_header_bytes": 100}}',
     "serving.json: 'limits.max_header_bytes' must be an integer >= 1024, got 100"),
    ('{"limits": {"max_connections": 0}}',
     "serving.json: 'limits.max_connections' must be an integer >= 1, got 0"),
    ('{"shutdown": {"ready_pause_s": -0.5}}',
     "serving.json: 'shutdown.ready_pause_s' must be a number >= 0, got -0.5"),
    ('{"shutdown": {"drain_timeout_s": true}}',
     "serving.json: 'shutdown.drain_timeout_s' must be a number >= 0, got True"),
    ('{"shutdown": []}', "serving.json: 'shutdown' must be an object, got list"),
])
def test_bad_configs(tmp_path, text, message):
    config = tmp_path / "serving.json"
    config.write_text(text)
    with pytest.raises(StartupError) as error:
        load_settings(config)
    assert str(error.value).endswith(message)
    assert "\n" not in str(error.value)


def test_missing_config(tmp_path):
    with pytest.raises(StartupError, match="config file '.*nowhere.json' does not exist"):
        load_settings(tmp_path / "nowhere.json")


def test_missing_model_file(tmp_path):
    with pytest.raises(StartupError) as error:
        create_app(settings_from_dict({"model_file": "model.onnx"}, tmp_path))
    assert str(error.value) == f"model file '{tmp_path / 'model.onnx'}' does not exist"


def test_invalid_onnx_file(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"this is not a model")
    with pytest.raises(StartupError) as error:
        create_app(settings_from_dict({"model_file": "model.onnx"}, tmp_path))
    assert str(error.value).startswith("model file 'model.onnx' cannot be loaded by onnxruntime: ")
    assert "rotobuf parsing failed" in str(error.value) and "\n" not in str(error.value)


def test_sha256_mismatch(iris_logreg):
    config = iris_logreg.with_config(sha256="0" * 64)
    with pytest.raises(StartupError, match=r"model file 'iris.onnx' has sha256 [0-9a-f]{12}\.\.\., "
                                           r"but serving.json expects 000000000000\.\.\.: the "
                                           r"file changed"):
        create_app(settings_from_dict(config, iris_logreg.path.parent))


def test_schema_that_does_not_fit_the_model(iris_logreg):
    schema = json.loads(json.dumps(iris_logreg.config["schema"]))
    schema["features"][0]["tensor"] = "pixels"
    with pytest.raises(StartupError) as error:
        create_app(settings_from_dict(iris_logreg.with_config(schema=schema),
                                      iris_logreg.path.parent))
    assert str(error.value) == ("serving.json: feature 'sepal_length' is carried by input "
                                "'pixels', which the model does not have (inputs: input)")
    schema = json.loads(json.dumps(iris_logreg.config["schema"]))
    del schema["features"][3]
    with pytest.raises(StartupError) as error:
        create_app(settings_from_dict(iris_logreg.with_config(schema=schema),
                                      iris_logreg.path.parent))
    assert str(error.value) == ("serving.json: input 'input' takes 4 columns, but the schema "
                                "gives it 3 features")


def test_the_studio_bundler_config_is_served(tmp_path, iris_logreg):
    """What studio.core.serve.bundle writes for a real ONNX artifact is what this server reads."""
    from studio.core.model import artifact as artifacts
    from studio.core.serve import bundle

    artifact = artifacts.load(iris_logreg.path)
    config = bundle.serving_config(artifact, bundle.ServingOptions())
    config["model_file"] = str(iris_logreg.path)
    app = create_app(settings_from_dict(json.loads(json.dumps(config)), tmp_path))
    assert app.model.name == bundle.served_name(artifact)
    assert [f.name for f in app.model.features] == [f.name for f in artifact.schema.features]
    assert app.model.task == artifact.schema.task == "classification"


def test_without_a_schema_the_studio_metadata_in_the_model_is_used(tmp_path, iris_logreg):
    """The studio's converter stores features and class names in the ONNX metadata."""
    import onnx

    model = onnx.load(iris_logreg.path)
    onnx.helper.set_model_props(model, {
        "slipway.features": json.dumps(iris_logreg.config["schema"]["features"]),
        "slipway.class_names": json.dumps(["setosa", "versicolor", "virginica"]),
    })
    onnx.save(model, tmp_path / "model.onnx")
    app = create_app(settings_from_dict({}, tmp_path))
    assert app.model.name == "model"
    assert [f.name for f in app.model.features][:2] == ["sepal_length", "sepal_width"]
    assert app.model.class_keys == ["setosa", "versicolor", "virginica"]


@pytest.mark.anyio
async def test_integer_and_boolean_features(tmp_path):
    """A model taking int64 and bool columns: values are checked against those types."""
    import onnx
    from onnx import TensorProto, helper
    from server_helpers import serve

    graph = helper.make_graph(
        [helper.make_node("Cast", ["count"], ["as_float"], to=TensorProto.FLOAT),
         helper.make_node("Cast", ["flag"], ["flag_float"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["as_float", "flag_float"], ["variable"])],
        "counts",
        [helper.make_tensor_value_info("count", TensorProto.INT64, [None, 1]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [None, 1])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "counts.onnx")
    config = {"model_file": "counts.onnx", "schema": {"task": "regression"}}
    async with serve(config, tmp_path) as (app, client):
        assert [(f.name, f.json_type) for f in app.model.features] == [
            ("count", "integer"), ("flag", "boolean")]
        response = await client.post("/predict", json={"features": {"count": 41, "flag": True}})
        assert response.json()["value"] == 42.0
        assert (await client.post("/predict", json={"features": [3.0, False]})).json()[
            "value"] == 3.0
        for features, message in (
                ([2.5, True], "feature 'count' must be an integer, got 2.5"),
                (["2", True], "feature 'count' must be an integer, got string"),
                ([2 ** 70, True], ("feature 'count' is out of range for int64: "
                                  "1180591620717411303424")),
                ([2, 1], "feature 'flag' must be true or false, got number")):
            response = await client.post("/predict", json={"features": features})
            assert (response.status_code, response.json()) == (400, {"error": message})
