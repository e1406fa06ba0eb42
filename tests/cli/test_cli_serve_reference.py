"""`slipway serve` asks for reference data, says what serving without costs, and remembers the
choice per model: run as real processes, the way a person serves a model twice."""

import os
import shutil
import signal
import subprocess
import sys

import httpx

from studio.ui.app import DEMO_MODEL


def serve(model, *args, data_home):
    """Serve until ready, ask the server for its reference profile, stop it with Ctrl-C; what it
    printed on stderr, and the profile's source."""
    server = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "serve", str(model), "--runtime", "process", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "XDG_DATA_HOME": str(data_home)})
    try:
        ready = server.stdout.readline()
        assert "is ready at" in ready, server.communicate(timeout=30)[1]
        url = ready.split(" is ready at ")[1].split()[0]
        source = httpx.get(f"{url}/reference", timeout=10).json()["source"]
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    return err, source


def test_the_reference_given_once_is_used_again_for_that_model(tmp_path, wine_csv):
    model = tmp_path / "wine_copy.onnx"
    shutil.copyfile(DEMO_MODEL, model)
    data_home = tmp_path / "data"

    err, source = serve(model, "--reference", wine_csv, data_home=data_home)
    assert source == "dataset" and "cannot be seen" not in err

    err, source = serve(model, data_home=data_home)  # no flag: the choice made before
    assert source == "dataset"
    assert f"Reference data: {wine_csv.resolve()} (chosen for this model before" in err

    err, source = serve(model, "--no-reference", data_home=data_home)
    assert source == "schema" and "drift present from the start cannot be seen" in err
    err, source = serve(model, data_home=data_home)  # serving without, on purpose, is kept too
    assert source == "schema" and "(Chosen for this model before" in err


def test_without_a_reference_or_a_terminal_it_says_what_is_lost_and_how_to_give_it(tmp_path):
    model = tmp_path / "never_served.onnx"
    shutil.copyfile(DEMO_MODEL, model)
    err, source = serve(model, data_home=tmp_path / "data")
    assert source == "schema"
    assert "drift present from the start cannot be seen" in err
    assert "Give --reference DATA" in err and "--no-reference" in err
