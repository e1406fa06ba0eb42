"""What goes wrong with the files themselves: a stored model missing or changed, a damaged
database file. Each is reported with what to do, never a crash, and what can be put right is."""

from __future__ import annotations

import pytest

from studio.core.files import WriteError
from studio.core.model.artifact import load
from studio.core.versions.database import RegistryError
from studio.core.versions.references import resolve
from studio.core.versions.registry import Registry


def test_a_missing_model_file_is_reported_with_what_to_do(registry, make_model):
    artifact = make_model(1.0, "churn")
    version = registry.record(artifact).version
    version.path.unlink()
    with pytest.raises(RegistryError) as caught:
        registry.model_path(version)
    assert "churn:1" in caught.value.message and "missing" in caught.value.message
    assert str(artifact.path.resolve()) in caught.value.hint
    assert "slipway versions --delete churn:1 --force" in caught.value.hint
    with pytest.raises(RegistryError, match="missing"):
        resolve("churn:1", registry)


def test_loading_the_original_again_puts_a_missing_file_back(registry, make_model):
    artifact = make_model(1.0, "churn")
    version = registry.record(artifact).version
    version.path.unlink()
    again = registry.record(load(artifact.path))
    assert not again.created and again.version.reference == "churn:1"
    assert registry.model_path(version).read_bytes() == artifact.path.read_bytes()


def test_a_model_file_changed_in_the_store_is_caught_by_its_hash(registry, make_model, tmp_path):
    version = registry.record(make_model(1.0, "churn")).version
    registry.set_alias("churn", "champion", 1)
    data = bytearray(version.path.read_bytes())
    data[-1] ^= 0xFF  # same size: only the hash can tell
    version.path.write_bytes(bytes(data))
    with pytest.raises(RegistryError) as caught:
        resolve("churn@champion", registry)
    assert "no longer matches its sha256" in caught.value.message
    with pytest.raises(RegistryError, match="no longer matches"):
        registry.export(version, tmp_path / "copy.onnx")
    assert not (tmp_path / "copy.onnx").exists()


def test_a_damaged_database_is_reported_with_how_to_start_afresh(tmp_path, make_model):
    registry = Registry(tmp_path / "registry")
    registry.record(make_model(1.0, "churn"))
    database = tmp_path / "registry" / "registry.db"
    for leftover in database.parent.glob("registry.db-*"):  # the WAL, as after a clean close
        leftover.unlink()
    database.write_bytes(b"this is not SQLite at all, just some damaged bytes" * 100)
    for action in (registry.versions, lambda: registry.record(make_model(2.0, "churn")),
                   lambda: registry.set_alias("churn", "champion", 1),
                   lambda: resolve("churn:1", registry)):
        with pytest.raises(RegistryError) as caught:
            action()
        assert "damaged" in caught.value.message and str(database) in caught.value.message
        assert "rename it to registry.db.damaged" in caught.value.hint

    database.rename(database.with_name("registry.db.damaged"))
    fresh = Registry(tmp_path / "registry")
    assert fresh.versions() == []
    assert fresh.record(make_model(1.0, "churn")).version.reference == "churn:1"


def test_a_registry_folder_that_cannot_be_made_is_a_write_error(tmp_path, make_model):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(WriteError) as caught:
        Registry(blocked / "registry").versions()
    assert "registry.db" in caught.value.message
