"""Serving options that cannot work are refused before anything is converted, bundled or built;
the ones that can reach serving.json and the server's environment as asked."""

import json
from pathlib import Path

import pytest

from studio.core.model.artifact import load
from studio.core.serve.bundle import BundleError, ServingOptions, write_bundle
from studio.core.serve.client import ModelClient
from studio.core.serve.deploy import DeployOptions, build_image, deploy
from studio.core.serve.runtimes.base import DeploymentError

DEMO_MODEL = Path(__file__).resolve().parents[3] / "resources" / "demo" / "wine_classifier.onnx"
UNSET_KEY_VARIABLE = "SLIPWAY_TEST_KEY_NOBODY_SET"
KEY_VARIABLE = "SLIPWAY_TEST_SERVING_KEY"


@pytest.fixture(scope="module")
def demo():
    return load(DEMO_MODEL)


@pytest.fixture
def work_root(tmp_path, monkeypatch) -> Path:
    """Where every run folder (conversion, build context) goes: empty means nothing was made."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "slipway-studio" / "work"


@pytest.mark.parametrize("runtime", ["process", "docker"])
@pytest.mark.parametrize("value", [None, ""])
def test_an_api_key_whose_variable_is_not_set_is_refused_before_anything_is_built(
        demo, work_root, monkeypatch, runtime, value):
    if value is None:
        monkeypatch.delenv(UNSET_KEY_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(UNSET_KEY_VARIABLE, value)
    with pytest.raises(DeploymentError) as caught:
        deploy(demo, DeployOptions(runtime=runtime,
                                   serving=ServingOptions(api_key_env=UNSET_KEY_VARIABLE)))
    assert f"{UNSET_KEY_VARIABLE} is not set" in caught.value.message
    assert f"export {UNSET_KEY_VARIABLE}=" in caught.value.hint
    assert not work_root.exists()


def test_the_process_runtime_requires_the_key_from_the_studios_environment(demo, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "process-key-1")
    deployment = deploy(demo, DeployOptions(runtime="process",
                                            serving=ServingOptions(api_key_env=KEY_VARIABLE)))
    try:
        body = demo.schema.samples.rest
        with ModelClient(deployment.url) as anonymous:
            assert anonymous.predict(body).status == 401
        with ModelClient(deployment.url, api_key="process-key-1") as keyed:
            assert keyed.predict(body).status == 200
    finally:
        deployment.stop()


LONG_PAUSE_S = 12.0
"""Longer than the 10 s a stop used to allow, far shorter than the pause + drain + margin now."""


def test_stopping_waits_for_the_servers_pause_and_drain(demo, tmp_path):
    deployment = deploy(demo, DeployOptions(runtime="process",
                                            serving=ServingOptions(ready_pause_s=LONG_PAUSE_S)))
    config = json.loads((deployment.bundle_path / "serving.json").read_text())
    assert config["shutdown"] == {"ready_pause_s": LONG_PAUSE_S, "drain_timeout_s": 30.0}
    deployment.stop()
    # Killed, it would say "was killed by signal 9"; left to its pause and drain, it exits 0.
    assert deployment.exit_reason() == "exited with status 0", deployment.logs()


BAD_VERSIONS = ["1\nRUN touch /pwned", "1 2", "", "-1", "1\"", "${HOME}", "x" * 65, "1/2"]


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_version_that_is_not_a_plain_word_is_refused_and_nothing_is_built(
        demo, work_root, tmp_path, version):
    for make in (lambda options: build_image(demo, options),
                 lambda options: deploy(demo, options)):
        with pytest.raises(BundleError) as caught:
            make(DeployOptions(runtime="process", serving=ServingOptions(version=version)))
        assert "a version is 1 to 64 letters, digits, '.', '_', '-' and '+'" in caught.value.message
    assert not work_root.exists()
    with pytest.raises(BundleError):
        write_bundle(demo, tmp_path / "bundle", serving=ServingOptions(version=version),
                     with_wheels=False)
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("version,tag", [("2.0.1", "2.0.1"), ("1.0+local.3", "1.0-local.3"),
                                         ("2024-06-01", "2024-06-01"), ("v1_rc", "v1_rc")])
def test_plain_versions_are_served_and_tagged(demo, tmp_path, version, tag):
    bundle = write_bundle(demo, tmp_path / "bundle", serving=ServingOptions(version=version),
                          with_wheels=False)
    assert json.loads(bundle.config_path.read_text())["version"] == version
    assert bundle.default_tag == f"slipway/wine_classifier:{tag}"


def test_protect_metrics_is_written_only_when_asked(demo, tmp_path):
    plain = write_bundle(demo, tmp_path / "plain", with_wheels=False,
                         serving=ServingOptions(api_key_env=KEY_VARIABLE))
    # Absent, not false: a server from before the setting reads this config unchanged.
    assert json.loads(plain.config_path.read_text())["auth"] == {"api_key_env": KEY_VARIABLE}
    protected = write_bundle(demo, tmp_path / "protected", with_wheels=False,
                             serving=ServingOptions(api_key_env=KEY_VARIABLE,
                                                    protect_metrics=True))
    assert json.loads(protected.config_path.read_text())["auth"] == {
        "api_key_env": KEY_VARIABLE, "protect_metrics": True}


def test_protecting_metrics_without_a_key_is_refused(demo, tmp_path):
    with pytest.raises(BundleError) as caught:
        write_bundle(demo, tmp_path / "bundle", with_wheels=False,
                     serving=ServingOptions(protect_metrics=True))
    assert "Protecting /metrics needs an API key" in caught.value.message
    assert "--api-key-env" in caught.value.hint
