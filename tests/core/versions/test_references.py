"""References: a path is used as it is; `name:N` and `name@alias` name a registered version and
lead to its stored, checked file; a reference that names nothing says what exists."""

from __future__ import annotations

import pytest

from studio.core.versions.references import ResolvedModel, is_reference, resolve
from studio.core.versions.registry import Registry, VersionError


def test_a_path_is_returned_as_it_is(tmp_path, registry):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    assert resolve(str(model), registry) == ResolvedModel(path=model)
    assert resolve(str(tmp_path), registry) == ResolvedModel(path=tmp_path)
    missing = tmp_path / "not-there.onnx"
    assert resolve(str(missing), registry).path == missing  # the loader says it is missing


def test_a_file_named_like_a_reference_is_still_that_file(tmp_path, registry, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "churn:3").write_bytes(b"x")
    assert resolve("churn:3", registry).name is None


def test_a_version_number_and_an_alias_lead_to_the_stored_file(registry, make_model):
    registry.record(make_model(1.0, "churn"))
    second = registry.record(make_model(2.0, "churn")).version
    registry.set_alias("churn", "champion", 2)
    by_number = resolve("churn:1", registry)
    assert (by_number.name, by_number.version, by_number.alias) == ("churn", 1, None)
    assert by_number.reference == "churn:1"
    assert by_number.path == registry.get("churn", 1).path and by_number.path.is_file()
    by_alias = resolve("churn@champion", registry)
    assert (by_alias.name, by_alias.version, by_alias.alias) == ("churn", 2, "champion")
    assert by_alias.path.read_bytes() == second.path.read_bytes()


def test_the_default_registry_is_the_one_in_the_data_folder(tmp_path, monkeypatch, make_model):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    Registry().record(make_model(1.0, "churn"))
    assert resolve("churn:1").version == 1


@pytest.mark.parametrize("text, message, hint", [
    ("nothing:3", "no registered model 'nothing'", "Registered models: churn."),
    ("churn:7", "'churn' has no version 7", "Its versions are 1, 2"),
    ("churn@prod", "'churn' has no alias 'prod'", "Its aliases: champion → 2."),
    ("nothing@champion", "no registered model 'nothing'", "churn"),
])
def test_a_reference_that_names_nothing_says_what_exists(registry, make_model, text, message,
                                                         hint):
    registry.record(make_model(1.0, "churn"))
    registry.record(make_model(2.0, "churn"))
    registry.set_alias("churn", "champion", 2)
    with pytest.raises(VersionError) as caught:
        resolve(text, registry)
    assert message in caught.value.message
    assert hint in caught.value.hint


def test_what_counts_as_a_reference():
    assert is_reference("churn:3") and is_reference("churn@champion")
    assert not is_reference("models/churn.onnx") and not is_reference("churn")
    assert not is_reference("churn:latest")
