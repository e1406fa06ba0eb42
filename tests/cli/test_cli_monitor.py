"""`slipway monitor` against a real server process of the demo wine model, bundled with the wine
dataset as its reference: one snapshot as JSON and as a table, each figure under the span it
covers; watching redrawn in place on a terminal and printed only on change into a pipe; a URL
where nothing answers, and reference files that are not profiles."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from monitor_servers import WINE_FEATURES, WINE_ROWS, running_demo, send, wine_bodies

from studio.cli import main
from studio.core.monitor.drift import PREDICTIONS_ROW
from studio.core.serve.runtimes.base import free_port


@pytest.fixture(scope="module")
def served(reference_server, wine_csv):
    """The server after it has answered rows of its own reference dataset."""
    report = send(reference_server.url, wine_bodies(reference_server.url, wine_csv),
                  requests=WINE_ROWS)
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
    # without --window: everything since the server started, and said so
    assert summary["window_s"] is None and summary["since_start"] is True
    assert summary["span"] == f"since the server started ({summary['figures']['requests']:,.0f} " \
                              "requests)"
    assert summary["figures"]["requests"] >= answered
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
    head, now, served_line = out.splitlines()[:3]
    requests = int(re.fullmatch(rf"{re.escape(url)}  since the server started \(([\d,]+) "
                                r"requests\)", head)[1].replace(",", ""))
    # the figures under the label count what it says: the same requests
    assert served_line.startswith(f"  {requests:,} requests, ")
    assert now == "  now 0.0 req/s, 0 in flight"  # nothing is being served while it reads
    assert "req/s" in out and "p99" in out and "CPU" in out and "memory" in out
    assert "nan" not in out.lower()
    assert "drift against the server's reference profile:" in out
    assert "PSI" in out and "chi2 p" in out
    table = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    for name in features:
        assert name[:28] in table, name
        assert table[name[:28]].rstrip().endswith("ok")
    assert PREDICTIONS_ROW in table
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_once_with_a_window_waits_it_and_reports_only_it(capsys, served, tmp_path):
    url, _ = served
    profile = tmp_path / "profile.json"
    profile.write_text(httpx.get(f"{url}/reference").text)
    status, out, err = monitor(capsys, url, "--once", "--json", "--window", "1s",
                               "--reference", str(profile))

    assert status == 0, err
    assert "again in 1 s" in err
    summary = json.loads(out)
    assert summary["window_s"] == 1.0 and summary["since_start"] is False
    assert summary["baseline"] == "the reference profile you gave"
    # nothing was served in that second: the window says so, not the requests since the start
    assert summary["figures"]["requests"] == 0
    assert re.fullmatch(r"over \d s since watching began", summary["span"]), summary["span"]
    assert summary["drift"] and all(row["live_count"] == 0 for row in summary["drift"])

    status, out, err = monitor(capsys, url, "--once", "--window", "1s")
    assert status == 0, err
    head, *figures = out.splitlines()[:3]
    assert re.fullmatch(rf"{re.escape(url)}  over \d s since watching began", head), head
    assert figures == ["  now 0.0 req/s, 0 in flight", "  no requests"]


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


# --- a server without reference data ------------------------------------------------------------


@pytest.fixture(scope="module")
def live_baseline_server(wine_csv):
    """The demo model bundled without reference data, after it has answered its rows."""
    with running_demo(None) as deployment:
        send(deployment.url, wine_bodies(deployment.url, wine_csv), requests=WINE_ROWS)
        yield deployment.url


def test_once_without_reference_data_says_why_there_is_no_drift(capsys, live_baseline_server,
                                                                wine_csv):
    url = live_baseline_server
    status, out, err = monitor(capsys, url, "--once")
    assert status == 0, err
    assert "no data" not in out
    assert "bundled without reference data" in out and "--reference DATA" in out

    # the rows given on the command line: binned on the server's bins, compared since the start
    status, out, err = monitor(capsys, url, "--once", "--json", "--reference", str(wine_csv))
    assert status == 0, err
    summary = json.loads(out)
    assert summary["baseline"] == "the reference data wine_reference.csv (178 rows)"
    assert summary["baseline_caveat"] is None and not summary["needs_reference_data"]
    rows = {row["feature"]: row for row in summary["drift"]}
    assert len(rows) == WINE_FEATURES + 1
    for name, row in rows.items():
        if name == PREDICTIONS_ROW:  # a table of inputs holds no predictions: said as such
            assert row["level"] == "not in reference"
        else:
            assert row["live_count"] == WINE_ROWS and row["level"] == "ok", row


# --- watching ------------------------------------------------------------------------------------


def watching(url: str, *args: str, seconds: float, during=None, terminal: bool = False) -> str:
    """`slipway monitor URL` as a person runs it, for `seconds`, then Ctrl-C: what it wrote.
    `during()` runs half-way; `terminal`: its output is a terminal (a pseudo-terminal of 100x40)
    rather than a pipe."""
    import fcntl
    import struct
    import termios

    command = [sys.executable, "-m", "studio.cli", "monitor", url, "--interval", "0.2s", *args]
    if terminal:
        reader, writer = pty.openpty()
        fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        process = subprocess.Popen(command, stdout=writer, stderr=subprocess.PIPE)
        os.close(writer)
    else:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        reader = process.stdout.fileno()
    os.set_blocking(reader, False)
    written = bytearray()

    def read_for(duration: float) -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            try:
                written.extend(os.read(reader, 65536))
            except (BlockingIOError, OSError):
                time.sleep(0.05)

    try:
        started = time.monotonic() + 60
        while not written and time.monotonic() < started:  # the first picture: watching began
            read_for(0.1)
        read_for(seconds / 2)
        if during is not None:
            during()
        read_for(seconds / 2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        read_for(0.2)
    finally:
        if process.poll() is None:
            process.kill()
        if terminal:
            os.close(reader)
    assert process.returncode == 0, process.stderr.read()
    return written.decode()


def test_watching_into_a_pipe_prints_again_only_when_something_changed(served, wine_csv):
    url, _ = served
    out = watching(url, seconds=6.0,
                   during=lambda: send(url, wine_bodies(url, wine_csv), requests=20))
    tables = out.count(f"{url}  ")
    # one reading every 0.2 s for 6 s: the table once while idle, again once the requests were
    # counted, and not once per reading
    assert 2 <= tables <= 4, out
    assert "\033[" not in out  # no cursor movement into a file
    assert "no requests" in out and "20 requests" in out


def test_watching_on_a_terminal_redraws_in_place(served):
    url, _ = served
    out = watching(url, seconds=3.0, terminal=True)
    frames = out.split(f"{url}  ")[1:]
    assert len(frames) >= 4, out
    lines = frames[0].count("\n")
    # each redraw goes back up over the lines drawn before and clears from there on
    redraws = re.findall(r"\x1b\[(\d+)F\x1b\[J", out)
    assert len(redraws) == len(frames) - 1
    assert all(int(n) == lines for n in redraws), (redraws, lines)
    assert "\x1b[2J" not in out and "\x1b[H" not in out  # what was above stays on screen
