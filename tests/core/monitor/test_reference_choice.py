"""The reference data chosen for a model, remembered per model file in the studio's data folder."""

import pytest

from studio.core.files import WriteError
from studio.core.monitor.reference_choice import remember_reference, remembered_reference


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def test_each_model_keeps_its_own_choice(data_home, tmp_path):
    wine, iris = tmp_path / "wine.onnx", tmp_path / "iris.onnx"
    rows = tmp_path / "wine.csv"
    rows.write_text("a\n1\n")
    assert remembered_reference(wine) is None  # never served: nothing chosen yet

    remember_reference(wine, rows)
    remember_reference(iris, None)  # served without, on purpose

    assert remembered_reference(wine).data == rows.resolve()
    assert not remembered_reference(wine).missing
    assert remembered_reference(iris) is not None and remembered_reference(iris).data is None
    assert remembered_reference(tmp_path / "other.onnx") is None
    # the same file named another way is the same model
    assert remembered_reference(tmp_path / "." / "wine.onnx").data == rows.resolve()

    remember_reference(wine, None)  # the latest choice wins
    assert remembered_reference(wine).data is None


def test_data_moved_away_is_said_to_be_missing(data_home, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n")
    remember_reference(tmp_path / "m.onnx", rows)
    rows.unlink()
    assert remembered_reference(tmp_path / "m.onnx").missing


def test_a_damaged_choices_file_is_a_fresh_start(data_home, tmp_path):
    data_home.mkdir(parents=True)
    (data_home / "slipway-studio").mkdir()
    (data_home / "slipway-studio" / "reference_data.json").write_text("{not json")
    assert remembered_reference(tmp_path / "m.onnx") is None
    remember_reference(tmp_path / "m.onnx", None)
    assert remembered_reference(tmp_path / "m.onnx").data is None


def test_a_data_folder_that_cannot_be_written_is_a_write_error(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocked))
    with pytest.raises(WriteError):
        remember_reference(tmp_path / "m.onnx", None)
