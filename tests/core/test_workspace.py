"""Run folders: unique per run, and the oldest pruned."""

import os

from studio.core import workspace


def test_each_run_gets_its_own_folder_and_old_ones_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = workspace.new_work_dir("iris model/v1")
    second = workspace.new_work_dir("iris model/v1")
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.startswith("iris-model-v1-")
    os.utime(first, (1, 1))  # the oldest
    workspace.prune_work_dirs(keep=1)
    assert not first.exists() and second.exists()
