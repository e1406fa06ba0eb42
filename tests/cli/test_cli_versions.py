"""`slipway versions` and `slipway alias`, and the registry behind `inspect`, `convert`,
`optimize` and `serve`, as real processes over a registry in a temporary data folder."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pytest

from studio.ui.app import DEMO_MODEL


@pytest.fixture
def data_home(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def slipway(data_home):
    def run(*args, timeout=240, env=None):
        return subprocess.run([sys.executable, "-m", "studio.cli", *map(str, args)],
                              check=False, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "XDG_DATA_HOME": str(data_home), **(env or {})})
    return run


def listing(slipway, *args) -> dict:
    result = slipway("versions", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def references(slipway, *args) -> list[tuple[str, list[str]]]:
    return [(v["reference"], v["aliases"]) for v in listing(slipway, *args)["versions"]]


def no_traceback(result):
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


@pytest.fixture
def two_versions(slipway, tmp_path):
    """wine_classifier:1 (the demo model) and wine_classifier:2 (the same model, one byte of
    metadata changed), with champion on 1."""
    second = tmp_path / "second" / "wine_classifier.onnx"
    second.parent.mkdir()
    import onnx

    model = onnx.load(DEMO_MODEL)
    model.doc_string = "retrained"
    onnx.save_model(model, second)
    for path in (DEMO_MODEL, second):
        assert slipway("inspect", path).returncode == 0
    assert slipway("alias", "wine_classifier@champion", "1").returncode == 0
    return second


def test_inspect_records_a_version_once(slipway):
    first = slipway("inspect", DEMO_MODEL)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == ("Recorded as wine_classifier:1 "
                                             "(slipway versions wine_classifier:1).")
    assert first.stderr == ""
    again = slipway("inspect", DEMO_MODEL)
    assert again.stdout.splitlines()[-1].startswith("Already recorded as wine_classifier:1")
    as_json = slipway("inspect", DEMO_MODEL, "--json")
    json.loads(as_json.stdout)  # the schema alone: nothing about the registry in it
    [version] = listing(slipway)["versions"]
    assert version["reference"] == "wine_classifier:1" and version["format"] == "onnx"
    assert version["sha256"] == hashlib.sha256(DEMO_MODEL.read_bytes()).hexdigest()
    assert version["size"] == DEMO_MODEL.stat().st_size and version["step"] == "loaded"


def test_no_record_leaves_the_registry_alone(slipway, data_home):
    result = slipway("inspect", DEMO_MODEL, "--no-record")
    assert result.returncode == 0 and "Recorded" not in result.stdout
    assert not data_home.exists()
    empty = slipway("versions")
    assert empty.returncode == 0 and empty.stdout.startswith("No versions yet")


def test_a_registry_that_cannot_record_is_a_warning_not_a_failure(slipway, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    result = slipway("inspect", DEMO_MODEL, env={"XDG_DATA_HOME": str(blocked)})
    assert result.returncode == 0
    assert result.stdout.startswith("wine_classifier  (onnx, classification)")
    [line] = result.stderr.splitlines()
    assert line.startswith("slipway: warning: not recorded in the registry: ")


def test_convert_and_optimize_record_versions_with_their_lineage(slipway, sklearn_models,
                                                                 tmp_path):
    source = sklearn_models["mlp_wine"].path
    converted = slipway("convert", source, "-o", tmp_path / "mlp.onnx", "--trust")
    assert converted.returncode == 0, converted.stderr
    assert converted.stdout.splitlines()[-1].startswith("Recorded as mlp_wine:2")
    optimized = slipway("optimize", "mlp_wine:2", "--int8", "-o", tmp_path / "mlp.int8.onnx")
    assert optimized.returncode == 0, optimized.stderr
    assert optimized.stdout.splitlines()[-1].startswith("Recorded as mlp_wine:3")

    shown = slipway("versions", "mlp_wine:3", "--json")
    detail = json.loads(shown.stdout)
    assert detail["step"] == "optimized" and detail["parent"] == "mlp_wine:2"
    assert detail["parameters"]["optimization"] == "int8"
    assert detail["report"]["optimization"] == "int8" and detail["parity"]["passed"] is True
    assert detail["lineage"]["ancestors"] == ["mlp_wine:1", "mlp_wine:2"]
    text = slipway("versions", "mlp_wine:1").stdout
    assert "> mlp_wine:1  loaded" in text
    assert "    mlp_wine:2  converted from mlp_wine:1 (opset 17)" in text
    assert "      mlp_wine:3  int8 of mlp_wine:2" in text
    table = slipway("versions", "mlp_wine").stdout.splitlines()
    assert table[0].split() == ["MODEL", "VERSION", "ALIASES", "FORMAT", "SIZE", "CREATED",
                                "PARITY", "FROM"]
    assert table[1].split()[:4] == ["mlp_wine", "3", "-", "onnx"]
    assert "pass" in table[1] and table[3].split()[3] == "sklearn-joblib"


def test_a_failed_parity_is_recorded_with_its_verdict(slipway, sklearn_models, tmp_path):
    result = slipway("convert", sklearn_models["mlp_wine"].path, "-o", tmp_path / "exact.onnx",
                     "--trust", "--atol", "0", "--rtol", "0", "--min-agreement", "1")
    assert result.returncode == 4
    [line] = result.stderr.splitlines()
    assert "FAILED" in line
    assert [(v["reference"], v["parity"]["passed"] if v["parity"] else None)
            for v in listing(slipway)["versions"]] == [("mlp_wine:2", False), ("mlp_wine:1", None)]


def test_aliases_move_roll_back_and_answer_what_was_serving_then(slipway, two_versions):
    assert references(slipway, "wine_classifier") == [("wine_classifier:2", []),
                                                      ("wine_classifier:1", ["champion"])]
    time.sleep(0.01)  # distinct clock readings either side of "then"
    then = datetime.now().isoformat()
    time.sleep(0.01)
    moved = slipway("alias", "wine_classifier@champion", "2")
    assert moved.stdout.strip() == "wine_classifier@champion moved: 1 → 2"
    assert references(slipway, "--alias", "champion") == [("wine_classifier:2", ["champion"])]
    assert references(slipway, "wine_classifier", "--at", then) == [
        ("wine_classifier:2", []), ("wine_classifier:1", ["champion"])]

    back = slipway("alias", "wine_classifier@champion", "--rollback")
    assert back.returncode == 0 and back.stdout.strip() == (
        "wine_classifier@champion rolled back: 2 → 1")
    history = slipway("alias", "wine_classifier@champion")
    lines = history.stdout.splitlines()
    assert lines[0].startswith("wine_classifier@champion is wine_classifier:1")
    user = listing(slipway, "wine_classifier")["alias_moves"][0]["user"]
    assert user and all(f"  {user}  " in line for line in lines[1:])
    assert [line.split(f"  {user}  ")[1] for line in lines[1:]] == [
        "wine_classifier@champion rolled back: 2 → 1",
        "wine_classifier@champion moved: 1 → 2",
        "wine_classifier@champion moved: - → 1"]
    at_text = slipway("versions", "wine_classifier", "--at", then).stdout
    assert at_text.startswith("As at ") and "rolled back" not in at_text


def test_rollback_with_nothing_earlier_and_bad_targets_exit_2_with_one_line(slipway,
                                                                            two_versions):
    for args, expected in (
            (("alias", "wine_classifier@champion", "--rollback"), "nothing earlier to roll back"),
            (("alias", "wine_classifier@champion", "9"), "has no version 9"),
            (("alias", "wine_classifier:1", "2"), "names a version, not an alias"),
            (("alias", "wine_classifier@2nd", "2"), "cannot be an alias"),
            (("versions", "--at", "last tuesday"), "is not a time Slipway reads")):
        result = slipway(*args)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith("slipway: error: ") and expected in line
        no_traceback(result)


def test_search_tags_and_notes(slipway, two_versions):
    tagged = slipway("versions", "wine_classifier:2", "--set-tag", "team=risk", "--set-tag",
                     "reviewed", "--note", "retrained on November's data")
    assert tagged.returncode == 0, tagged.stderr
    assert "tags      reviewed, team=risk" in tagged.stdout
    assert "notes     retrained on November's data" in tagged.stdout
    assert references(slipway, "--tag", "team=risk") == [("wine_classifier:2", [])]
    assert references(slipway, "--tag", "reviewed") == [("wine_classifier:2", [])]
    assert references(slipway, "--search", "CHAMP") == [("wine_classifier:1", ["champion"])]
    nothing = slipway("versions", "--search", "nothing-like-it")
    assert nothing.stdout.strip() == "No version matches."


def test_delete_is_refused_while_aliased_unless_forced(slipway, two_versions):
    refused = slipway("versions", "--delete", "wine_classifier:1")
    assert refused.returncode == 2
    [line] = refused.stderr.splitlines()
    assert "wine_classifier@champion" in line and "--force" in line
    forced = slipway("versions", "--delete", "wine_classifier:1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.splitlines() == [
        "Removed wine_classifier@champion (it named wine_classifier:1).",
        "Deleted wine_classifier:1."]
    assert references(slipway) == [("wine_classifier:2", [])]


def test_export_writes_the_version_s_file(slipway, two_versions, tmp_path):
    out = tmp_path / "exported" / "champion.onnx"
    result = slipway("versions", "--export", "wine_classifier@champion", "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == DEMO_MODEL.read_bytes()
    missing_output = slipway("versions", "--export", "wine_classifier:1")
    assert missing_output.returncode == 2 and "-o FILE" in missing_output.stderr


def test_commands_that_take_a_model_take_a_reference(slipway, two_versions):
    inspected = slipway("inspect", "wine_classifier@champion")
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.startswith("wine_classifier  (onnx, classification)")
    assert "Already recorded as wine_classifier:1" in inspected.stdout
    for command in (("inspect", "wine_classifier:7"), ("build", "wine_classifier@prod"),
                    ("serve", "wine_classifier@prod"), ("optimize", "wine_classifier:7", "--int8",
                                                          "-o", "x.onnx"),
                    ("convert", "nothing:1", "-o", "x.onnx"),
                    ("export", "wine_classifier:7", "--image", "a:1", "--out", "x")):
        result = slipway(*command)
        assert result.returncode == 2, (command, result.stderr)
        [line] = result.stderr.splitlines()
        assert line.startswith("slipway: error: ")
        assert ("Its versions are 1, 2" in line or "Its aliases: champion → 1" in line
                or "Registered models: wine_classifier" in line)


def test_serving_what_an_alias_names_is_one_command(slipway, two_versions, data_home):
    """The alias is read when the command runs, and the served model carries the registered
    version's number, so two versions' metrics never mix."""
    assert slipway("alias", "wine_classifier@champion", "2").returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "serve", "wine_classifier@champion", "--runtime",
         "process", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "XDG_DATA_HOME": str(data_home)})
    try:
        ready = server.stdout.readline()
        assert "is ready at" in ready, server.stderr.read() if server.poll() is not None else ""
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        [info] = [line for line in metrics.splitlines()
                  if line.startswith("slipway_model_info{")]
        assert 'version="2"' in info
        assert f'sha256="{hashlib.sha256(two_versions.read_bytes()).hexdigest()}"' in info
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def test_a_damaged_store_or_database_is_one_line_with_what_to_do(slipway, two_versions,
                                                                data_home):
    registry = data_home / "slipway-studio" / "registry"
    [stored] = (registry / "objects").glob(
        f"{hashlib.sha256(DEMO_MODEL.read_bytes()).hexdigest()}/*")
    stored.unlink()
    missing = slipway("serve", "wine_classifier@champion", "--runtime", "process")
    assert missing.returncode == 1
    [line] = missing.stderr.splitlines()
    assert "wine_classifier:1" in line and "is missing" in line and str(DEMO_MODEL) in line
    no_traceback(missing)

    with sqlite3.connect(registry / "registry.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (registry / "registry.db").write_bytes(b"\0" * 4096)
    damaged = slipway("versions")
    assert damaged.returncode == 1
    [line] = damaged.stderr.splitlines()
    assert "damaged" in line and "registry.db.damaged" in line
    no_traceback(damaged)


def test_serving_a_file_records_it_and_serves_it_as_its_version(two_versions, data_home):
    """A plain file is recorded like any model the studio loads, and served under the number it
    was recorded as (here it is version 2's file: already recorded)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "serve", str(two_versions), "--runtime", "process",
         "--port", str(port), "--no-reference"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "XDG_DATA_HOME": str(data_home)})
    try:
        ready = server.stdout.readline()
        assert "is ready at" in ready, server.stderr.read() if server.poll() is not None else ""
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        [info] = [line for line in metrics.splitlines()
                  if line.startswith("slipway_model_info{")]
        assert 'version="2"' in info
    finally:
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=60)
    assert "Already recorded as wine_classifier:2" in errors
