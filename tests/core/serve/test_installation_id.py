"""The id that marks the containers this installation starts: made once, kept in the user's data
folder, and the same for every studio that asks, even several starting at once."""

import os
import subprocess
import sys
import uuid

from studio.core import workspace

ASK_FOR_THE_ID = "from studio.core.workspace import installation_id; print(installation_id())"


def test_the_id_is_made_once_in_the_data_folder_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    first = workspace.installation_id()
    assert uuid.UUID(first)
    assert (tmp_path / "slipway-studio" / "installation-id").read_text().strip() == first
    assert workspace.installation_id() == first
    assert sorted(p.name for p in (tmp_path / "slipway-studio").iterdir()) == ["installation-id"]


def test_studios_starting_at_once_agree_on_one_id(tmp_path):
    environment = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    studios = [subprocess.Popen([sys.executable, "-c", ASK_FOR_THE_ID], env=environment,
                                stdout=subprocess.PIPE, text=True) for _ in range(6)]
    answers = {studio.communicate(timeout=60)[0].strip() for studio in studios}
    assert answers == {(tmp_path / "slipway-studio" / "installation-id").read_text().strip()}


def test_a_damaged_id_file_is_replaced_by_a_valid_id(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "slipway-studio").mkdir()
    (tmp_path / "slipway-studio" / "installation-id").write_text("not an id\n")
    made = workspace.installation_id()
    assert uuid.UUID(made)
    assert workspace.installation_id() == made
