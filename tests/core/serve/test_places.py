"""A served model keeps its place between runs: one work folder per model version, the conversion
already verified there, and the port it had."""

from pathlib import Path

import onnx
import pytest

from studio.core.model.artifact import load
from studio.core.optimize.convert import convert
from studio.core.serve.deploy import (
    DeployOptions,
    choose_runtime,
    conversion_path,
    deploy,
    ensure_onnx,
)
from studio.core.serve.places import version_work_dir
from studio.core.serve.runtimes.base import free_port
from studio.core.tasks import Progress

DEMO_MODEL = Path(__file__).resolve().parents[3] / "resources" / "demo" / "wine_classifier.onnx"


@pytest.fixture
def work_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "cache" / "slipway-studio" / "work"


def test_serving_uses_the_conversion_the_optimize_stage_already_verified(sklearn_models,
                                                                         work_root):
    model = load(sklearn_models["forest_regressor_diabetes"].path, trust=True)
    folder = version_work_dir(model)
    made = convert(model, conversion_path(model, folder))
    assert made.passed
    written = made.artifact.model_file.stat().st_mtime_ns

    lines: list[str] = []
    served = ensure_onnx(model, folder, progress=Progress(on_partial=lines.append))

    assert served.model_file == made.artifact.model_file
    assert served.model_file.stat().st_mtime_ns == written  # not converted a second time
    assert any("already made and verified" in line for line in lines), lines


def test_a_conversion_of_another_file_is_not_reused(sklearn_models, work_root):
    model = load(sklearn_models["forest_regressor_diabetes"].path, trust=True)
    other = load(sklearn_models["gboost_regressor_diabetes"].path, trust=True)
    folder = version_work_dir(model)
    convert(other, conversion_path(model, folder))

    lines: list[str] = []
    served = ensure_onnx(model, folder, progress=Progress(on_partial=lines.append))

    properties = {p.key: p.value for p in onnx.load(served.model_file).metadata_props}
    assert properties["slipway.source"].endswith(model.schema.metadata.sha256)
    assert not any("already made" in line for line in lines)


def test_a_model_served_again_keeps_its_port_and_its_work_folder(work_root):
    demo = load(DEMO_MODEL)
    first = deploy(demo, DeployOptions(runtime="process"))
    first.stop()
    second = deploy(demo, DeployOptions(runtime="process"))
    second.stop()

    assert second.url == first.url
    assert [p.name for p in work_root.iterdir()] == [version_work_dir(demo).name]


def test_a_remembered_port_taken_by_another_program_gives_way_to_a_free_one(work_root):
    import socket

    demo = load(DEMO_MODEL)
    first = deploy(demo, DeployOptions(runtime="process"))
    first.stop()
    port = int(first.url.rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        second = deploy(demo, DeployOptions(runtime="process"))
        second.stop()
    assert second.url != first.url


def test_a_port_asked_for_wins_over_the_remembered_one(work_root):
    demo = load(DEMO_MODEL)
    asked = free_port()
    deployment = deploy(demo, DeployOptions(runtime="process", port=asked))
    deployment.stop()
    assert deployment.url.endswith(f":{asked}")


def test_the_process_runtime_asked_for_says_why_it_serves_that_way():
    reason = choose_runtime("process").reason
    assert "was chosen" not in reason
    assert "asked for" in reason and "no engine needed" in reason
