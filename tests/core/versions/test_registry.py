"""The registry with real models and a real SQLite file: versions by content, lineage from real
conversions and optimizations, search, delete and export."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from studio.core.files import WriteError
from studio.core.model.artifact import load
from studio.core.optimize.convert import convert
from studio.core.optimize.optimize import optimize
from studio.core.versions.registry import CONVERTED, LOADED, OPTIMIZED, Registry, VersionError


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_loaded_model_becomes_version_1_with_its_facts(registry, make_model):
    artifact = make_model(1.0, "churn")
    recorded = registry.record(artifact)
    version = recorded.version
    assert recorded.created
    assert (version.name, version.version, version.reference) == ("churn", 1, "churn:1")
    assert version.format == "onnx" and version.step == LOADED and version.parent is None
    assert version.sha256 == sha256(artifact.path) == artifact.schema.metadata.sha256
    assert version.size == artifact.path.stat().st_size
    assert version.schema.inputs == artifact.schema.inputs
    assert version.source_path == str(artifact.path.resolve())
    assert version.created_by and version.created > 0
    assert version.parity_verdict == "-"
    assert version.path.read_bytes() == artifact.path.read_bytes()
    assert not version.path.is_relative_to(artifact.path.parent)


def test_the_same_content_is_one_version_however_often_and_wherever_it_is_loaded(
        registry, make_model, tmp_path):
    first = registry.record(make_model(1.0, "churn")).version
    again = registry.record(make_model(1.0, "churn"))
    copy = tmp_path / "elsewhere" / "renamed.onnx"
    copy.parent.mkdir()
    shutil.copyfile(first.path, copy)
    elsewhere = registry.record(load(copy))
    assert not again.created and not elsewhere.created
    assert again.version.reference == elsewhere.version.reference == "churn:1"
    assert [v.reference for v in registry.versions()] == ["churn:1"]


def test_new_content_under_a_name_is_its_next_version_and_numbers_are_never_reused(
        registry, make_model):
    registry.record(make_model(1.0, "churn"))
    second = registry.record(make_model(2.0, "churn")).version
    registry.record(make_model(9.0, "fraud"))
    assert second.reference == "churn:2"
    registry.delete(second)
    third = registry.record(make_model(3.0, "churn")).version
    assert third.reference == "churn:3"
    assert [v.reference for v in registry.versions()] == ["churn:3", "churn:1", "fraud:1"]


def test_a_name_a_reference_could_not_spell_is_made_safe(registry, make_model):
    version = registry.record(make_model(1.0, "my model@v2:final")).version
    assert version.name == "my-model-v2-final"


def test_an_mlflow_folder_is_stored_whole_and_keyed_by_all_it_holds(registry, mlflow_onnx,
                                                                    tmp_path):
    artifact = load(mlflow_onnx.path)
    version = registry.record(artifact).version
    stored = sorted(p.relative_to(version.path).as_posix()
                    for p in version.path.rglob("*") if p.is_file())
    original = sorted(p.relative_to(mlflow_onnx.path).as_posix()
                      for p in mlflow_onnx.path.rglob("*") if p.is_file())
    assert stored == original and "MLmodel" in stored
    assert version.format == "mlflow" and version.path.is_dir()
    assert load(version.path).schema.inputs == artifact.schema.inputs

    changed = tmp_path / "changed" / mlflow_onnx.path.name
    shutil.copytree(mlflow_onnx.path, changed)
    (changed / "MLmodel").write_text((changed / "MLmodel").read_text() + "\n# edited\n")
    other = registry.record(load(changed))
    assert other.created and other.version.version == version.version + 1
    assert not registry.record(load(mlflow_onnx.path)).created


def test_conversion_and_optimization_are_new_versions_with_their_lineage(
        registry, sklearn_models, tmp_path):
    source = load(sklearn_models["mlp_wine"].path, trust=True)
    conversion = convert(source, tmp_path / "mlp.onnx", opset=15)
    converted = registry.record_step(source, conversion.artifact, conversion.report).version
    optimized_result = optimize(conversion.artifact, "int8", tmp_path / "mlp.int8.onnx")
    optimized = registry.record_step(conversion.artifact, optimized_result.artifact,
                                     optimized_result.report).version

    loaded = registry.get("mlp_wine", 1)
    assert loaded.format == "sklearn-joblib" and loaded.step == LOADED
    assert converted.reference == "mlp_wine:2" and converted.step == CONVERTED
    assert converted.parent == "mlp_wine:1"
    assert converted.parameters["opset"] == 15 and converted.parameters["converter"]
    assert converted.parameters["tolerance"]["atol"] == conversion.report.parity.tolerance.atol
    assert converted.parity_verdict == "pass" and converted.report["opset"] == 15
    assert converted.origin == "converted from mlp_wine:1 (opset 15)"
    assert optimized.reference == "mlp_wine:3" and optimized.step == OPTIMIZED
    assert optimized.parameters["optimization"] == "int8"
    assert optimized.report["size_after"] == optimized_result.report.size_after
    assert optimized.parity_verdict == ("pass" if optimized_result.report.passed else "FAIL")
    assert optimized.origin == "int8 of mlp_wine:2"

    lineage = registry.lineage(optimized)
    assert [v.reference for v in lineage.ancestors] == ["mlp_wine:1", "mlp_wine:2"]
    from_the_root = registry.lineage(loaded)
    assert [(depth, v.reference) for depth, v in from_the_root.descendants] == [
        (1, "mlp_wine:2"), (2, "mlp_wine:3")]

    registry.delete(converted)
    assert registry.lineage(optimized).ancestors == ["mlp_wine:2"]  # deleted: its name alone


def test_search_by_name_tag_and_alias_keeps_the_aliases_in_what_it_finds(registry, make_model):
    churn_1 = registry.record(make_model(1.0, "churn")).version
    churn_2 = registry.record(make_model(2.0, "churn")).version
    fraud = registry.record(make_model(3.0, "fraud")).version
    registry.set_alias("churn", "champion", 1)
    registry.set_alias("churn", "challenger", 2)
    registry.set_alias("fraud", "champion", 1)
    registry.set_tag(churn_2, "team", "risk")
    registry.set_tag(fraud, "reviewed")
    registry.set_notes(churn_1, "trained on October's data")

    assert [v.reference for v in registry.versions("churn")] == ["churn:2", "churn:1"]
    assert [v.reference for v in registry.versions(alias="champion")] == ["churn:1", "fraud:1"]
    assert [v.reference for v in registry.versions(tag="team=risk")] == ["churn:2"]
    assert [v.reference for v in registry.versions(tag="team=other")] == []
    assert [v.reference for v in registry.versions(tag="reviewed")] == ["fraud:1"]
    found = registry.versions(search="CHALLENGER")
    assert [(v.reference, v.aliases) for v in found] == [("churn:2", ("challenger",))]
    assert [v.reference for v in registry.versions(search="risk")] == ["churn:2"]
    assert registry.get("churn", 1).notes == "trained on October's data"
    assert registry.get("churn", 2).tags == {"team": "risk"}
    assert registry.remove_tag(churn_2, "team").tags == {}


def test_an_unknown_version_says_which_exist(registry, make_model):
    registry.record(make_model(1.0, "churn"))
    registry.record(make_model(2.0, "churn"))
    with pytest.raises(VersionError) as caught:
        registry.get("churn", 7)
    assert "'churn' has no version 7" in caught.value.message
    assert "1, 2" in caught.value.hint
    with pytest.raises(VersionError) as caught:
        registry.get("fraud", 1)
    assert "no registered model 'fraud'" in caught.value.message
    assert "churn" in caught.value.hint


def test_delete_is_refused_while_an_alias_names_the_version_unless_forced(registry, make_model):
    version = registry.record(make_model(1.0, "churn")).version
    registry.record(make_model(2.0, "churn"))
    registry.set_alias("churn", "champion", 1)
    with pytest.raises(VersionError) as caught:
        registry.delete(version)
    assert "churn@champion" in caught.value.message and "--force" in caught.value.hint
    assert version.path.exists() and registry.get("churn", 1)

    removed = registry.delete(version, force=True)
    assert [(m.alias, m.from_version, m.to_version, m.action) for m in removed] == [
        ("champion", 1, None, "remove")]
    assert [v.reference for v in registry.versions()] == ["churn:2"]
    assert not version.path.exists()
    assert registry.alias_history("churn")[0].action == "remove"
    with pytest.raises(VersionError, match="no alias 'champion'"):
        registry.by_alias("churn", "champion")


def test_export_writes_the_version_s_file_checked_and_whole(registry, make_model, tmp_path,
                                                          mlflow_onnx):
    version = registry.record(make_model(1.0, "churn")).version
    written = registry.export(version, tmp_path / "out" / "churn-v1.onnx")
    assert sha256(written) == version.sha256
    with pytest.raises(WriteError, match="is the model it would be made from"):
        registry.export(version, version.path)

    folder = registry.record(load(mlflow_onnx.path)).version
    exported = registry.export(folder, tmp_path / "out" / "iris-folder")
    assert (exported / "MLmodel").read_bytes() == (mlflow_onnx.path / "MLmodel").read_bytes()
    assert load(exported).schema.inputs == load(mlflow_onnx.path).schema.inputs


def test_the_summary_counts_versions_and_models(registry, make_model):
    assert registry.summary().startswith("0 versions of 0 models")
    registry.record(make_model(1.0, "churn"))
    registry.record(make_model(2.0, "churn"))
    assert registry.summary().startswith("2 versions of 1 model,")


def test_the_registry_lives_in_the_data_folder(monkeypatch, tmp_path, make_model):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    registry = Registry()
    registry.record(make_model(1.0))
    assert (tmp_path / "data" / "slipway-studio" / "registry" / "registry.db").is_file()
    assert Registry().versions()[0].reference == "tiny:1"  # another instance, as after a restart
