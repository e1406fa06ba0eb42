"""A served model's API key reaches `slipway predict`, `load` and `monitor` from a file or the
environment, never from the command line (where `ps` shows it to every user), against a real
server that checks the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from studio.cli import main
from studio.core.model.artifact import load
from studio.core.serve.bundle import ServingOptions
from studio.core.serve.deploy import DeployOptions, deploy
from studio.ui.app import DEMO_MODEL, DEMO_REFERENCE

KEY = "k3y-for-the-cli-tests"
KEY_VARIABLE = "SLIPWAY_TEST_CLI_SERVER_KEY"


@pytest.fixture(scope="module")
def keyed_url():
    os.environ[KEY_VARIABLE] = KEY
    try:
        deployment = deploy(load(DEMO_MODEL), DeployOptions(
            runtime="process", serving=ServingOptions(api_key_env=KEY_VARIABLE,
                                                      reference_data=DEMO_REFERENCE)))
    finally:
        del os.environ[KEY_VARIABLE]
    yield deployment.url
    deployment.stop()


@pytest.fixture
def body() -> str:
    return json.dumps(load(DEMO_MODEL).schema.with_samples().samples.rest)


def slipway(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_key_comes_from_the_environment(capsys, monkeypatch, keyed_url, body):
    monkeypatch.setenv("SLIPWAY_API_KEY", KEY)
    status, out, err = slipway(capsys, "predict", keyed_url, "--data", body)
    assert status == 0, err
    assert "label" in json.loads(out)


def test_the_key_comes_from_a_file(capsys, monkeypatch, tmp_path, keyed_url, body):
    monkeypatch.delenv("SLIPWAY_API_KEY", raising=False)
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    status, _, err = slipway(capsys, "predict", keyed_url, "--data", body,
                             "--api-key-file", key_file)
    assert status == 0, err
    status, _, err = slipway(capsys, "load", keyed_url, "--requests", 20, "--json",
                             "--api-key-file", key_file)
    assert status == 0, err
    status, out, err = slipway(capsys, "monitor", keyed_url, "--once", "--json",
                               "--api-key-file", key_file)
    assert status == 0, err
    assert json.loads(out)["baseline"] == "the server's reference profile"


def test_without_the_key_the_server_refuses(capsys, monkeypatch, keyed_url, body):
    monkeypatch.delenv("SLIPWAY_API_KEY", raising=False)
    status, _, err = slipway(capsys, "predict", keyed_url, "--data", body)
    assert status == 1 and "HTTP 401" in err


def test_a_key_on_the_command_line_is_refused_and_never_sent(capsys, keyed_url, body):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", keyed_url, "--data", body, "--api-key", KEY])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--api-key would show the key to every user of this machine" in err
    assert "SLIPWAY_API_KEY" in err and "--api-key-file" in err


def test_an_unreadable_key_file_is_a_usage_error(capsys, tmp_path, keyed_url, body):
    for path in (tmp_path / "missing", tmp_path / "empty"):
        if path.name == "empty":
            path.write_text("\n")
        with pytest.raises(SystemExit) as exit_:
            main(["predict", keyed_url, "--data", body, "--api-key-file", str(path)])
        assert exit_.value.code == 2
        assert str(path) in capsys.readouterr().err


def test_the_key_is_not_in_the_process_list(tmp_path, keyed_url, body):
    """What `ps` shows of a running `slipway load` holds the file's name, not the key."""
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    running = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "load", keyed_url, "--duration", "3s",
         "--api-key-file", str(key_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        with open(f"/proc/{running.pid}/cmdline", "rb") as cmdline:
            seen = cmdline.read().decode()
        assert str(key_file) in seen and KEY not in seen
    finally:
        _, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
