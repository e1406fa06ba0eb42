"""Several processes writing at once (as two studio windows and a `slipway` command would) end
with a consistent registry: no version number twice, no lost alias move, no half-stored file."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

from registry_models import tiny_onnx

from studio.core.versions.database import Database, RegistryError
from studio.core.versions.registry import Registry

WRITERS = 4
EACH = 6
OPENERS = 6
TRIALS = 40


def test_concurrent_writers_leave_a_consistent_registry(tmp_path):
    root = tmp_path / "registry"
    tiny_onnx(tmp_path / "models" / "common" / "shared.onnx", -1.0)
    go = tmp_path / "go"
    writer = Path(__file__).with_name("registry_writer.py")
    processes = [subprocess.Popen([sys.executable, str(writer), str(root), str(tmp_path / "models"),
                                   str(n), str(EACH), str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in range(WRITERS)]
    go.touch()
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out.strip().splitlines()[-1]))

    registry = Registry(root)
    assert registry.database.check() == []
    versions = registry.versions("shared")
    numbers = sorted(v.version for v in versions)
    assert numbers == list(range(1, WRITERS * EACH + 2))  # each writer's files and the common one
    assert len({v.sha256 for v in versions}) == len(versions)
    recorded = [ref for outcome in outcomes for ref in outcome["recorded"]]
    assert len(set(recorded)) == WRITERS * EACH
    assert {outcome["common"] for outcome in outcomes} == {
        ({v.reference for v in versions} - set(recorded)).pop()}
    for version in versions:
        assert registry.model_path(version) == version.path  # stored whole: its hash matches
        if version.reference in recorded:
            assert len(version.tags) == 1

    history = list(reversed(registry.alias_history("shared", "champion")))
    assert len(history) == sum(o["moves"] + o["rollbacks"] for o in outcomes)
    for earlier, later in pairwise(history):
        assert later.from_version == earlier.to_version  # no move was lost or overwritten
    assert registry.by_alias("shared", "champion").version == history[-1].to_version
    assert not list(root.glob("objects/.staging-*"))


def _open_at_once(path: Path, barrier, answers) -> None:
    barrier.wait()
    try:
        with Database(path).reading() as connection:
            connection.execute("SELECT 1")
        answers.put("ok")
    except RegistryError as exc:
        answers.put(exc.message)


def test_processes_opening_a_new_registry_at_the_same_moment_all_get_in(tmp_path):
    """Each one puts the new database in WAL mode, for which SQLite answers "locked" at once
    rather than waiting: before they waited for it themselves, about one trial in seven had a
    process refused (and told that the registry had been busy for 30 s)."""
    context = multiprocessing.get_context("fork")
    refused = []
    for trial in range(TRIALS):
        barrier, answers = context.Barrier(OPENERS), context.Queue()
        openers = [context.Process(target=_open_at_once,
                                   args=(tmp_path / str(trial) / "registry.db", barrier, answers))
                   for _ in range(OPENERS)]
        for opener in openers:
            opener.start()
        refused += [answer for answer in (answers.get(timeout=60) for _ in openers)
                    if answer != "ok"]
        for opener in openers:
            opener.join(10)
    assert refused == []
