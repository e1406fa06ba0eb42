"""`slipway monitor` against a real server process of the demo wine model, bundled with the wine
dataset as its reference: one snapshot as JSON and as a table, a URL where nothing answers, and
reference files that are not profiles."""

from __future__ import annotations

import json

import httpx
import pytest
from monitor_servers import WINE_FEATURES, send, wine_bodies

from studio.cli import main
from studio.core.monitor.drift import PREDICTIONS_ROW
from studio.core.serve.runtimes.base import free_port


@pytest.fixture(scope="module")
def served(reference_server, wine_csv):
    """The server after it has answered rows of its own reference dataset."""
    report = send(reference_server.url, wine_bodies(reference_server.url, wine_csv),
                  seconds=1.0)
    return reference_server.url, report.completed


@pytest.fixture(scope="module")
def features(reference_server) -> list[str]:
    return list(httpx.get(f"{reference_server.url}/reference").json()["features"])


def monitor(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["monitor", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_once_json_prints_figures_drift_and_what_was_recognized(capsys, served, features):
    url, answered = served
    status, out, err = monitor(capsys, url, "--once", "--json")

    assert status == 0, err
    summary = json.loads(out)
    assert summary["url"] == url and summary["status"] is None
    assert summary["window_s"] == 60.0
    assert set(summary["figures"]) >= {"request_rate", "p50_ms", "p99_ms", "error_ratio",
                                       "cpu_cores", "memory_bytes"}
    assert summary["figures"]["memory_bytes"] > 0
    assert summary["recognized"]["slipway_requests_total"] == "requests by route and status"
    assert "slipway_feature_value" in summary["recognized"]
    assert summary["baseline"] == "the server's reference profile"
    assert summary["drift_note"] is None
    rows = {row["feature"]: row for row in summary["drift"]}
    assert set(rows) == {*features, PREDICTIONS_ROW} and len(features) == WINE_FEATURES
    for row in rows.values():
        # a one-off snapshot covers everything the server counted since it started
        assert row["live_count"] >= answered
        assert row["level"] == "ok", row


def test_once_without_json_prints_a_table_of_features(capsys, served, features):
    url, _ = served
    status, out, err = monitor(capsys, url, "--once")

    assert status == 0, err
    assert out.splitlines()[0] == f"{url}  (window 60 s)"
    assert "req/s" in out and "p99" in out and "CPU" in out and "memory" in out
    assert "drift against the server's reference profile:" in out
    assert "PSI" in out and "chi2 p" in out
    table = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    for name in features:
        assert name[:28] in table, name
        assert table[name[:28]].rstrip().endswith("ok")
    assert PREDICTIONS_ROW in table
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_window_and_a_reference_file_are_taken(capsys, served, tmp_path):
    url, _ = served
    profile = tmp_path / "profile.json"
    profile.write_text(httpx.get(f"{url}/reference").text)
    status, out, err = monitor(capsys, url, "--once", "--json", "--window", "30s",
                               "--reference", str(profile))

    assert status == 0, err
    summary = json.loads(out)
    assert summary["window_s"] == 30.0
    assert summary["baseline"] == "the reference profile you gave"
    assert summary["drift"]


def test_a_dead_url_exits_1_with_one_line(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    status, out, err = monitor(capsys, url, "--once", "--json")

    assert status == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("slipway: error: cannot reach") and url in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [None, "{not json", ""], ids=["missing", "not-json", "empty"])
def test_a_reference_file_that_cannot_be_read_exits_2(capsys, served, tmp_path, content):
    url, _ = served
    path = tmp_path / "profile.json"
    if content is not None:
        path.write_text(content)
    status, out, err = monitor(capsys, url, "--once", "--reference", str(path))

    assert status == 2
    assert out == ""
    assert err.startswith("slipway: error: 'profile.json' cannot be read as a reference profile")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"rows": 3}'], ids=["list", "no-features"])
def test_json_that_is_not_a_profile_exits_2(capsys, served, tmp_path, content):
    url, _ = served
    path = tmp_path / "profile.json"
    path.write_text(content)
    try:
        status, _, err = monitor(capsys, url, "--once", "--reference", str(path))
    except Exception as exc:  # noqa: BLE001 - any exception is a traceback for the user
        pytest.fail(f"slipway monitor raised {type(exc).__name__}: {exc}")
    assert status == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_bad_window_is_a_usage_error(capsys, served):
    url, _ = served
    with pytest.raises(SystemExit) as exit_:
        main(["monitor", url, "--once", "--window", "soon"])
    assert exit_.value.code == 2
    assert "not a duration" in capsys.readouterr().err
