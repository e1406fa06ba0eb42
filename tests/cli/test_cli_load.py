"""`slipway load` and `slipway sweep` against a real server process of the demo model."""

import argparse
import json
import re
import signal

import orjson
import pytest

from studio import cli
from studio.cli.common import milliseconds, seconds
from studio.core.errors import Cancelled
from studio.core.loadtest import engine as loadtest
from studio.core.model.artifact import load
from studio.core.serve.client import ModelClient
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import free_port
from studio.ui.app import DEMO_MODEL

PREDICT_COUNT = re.compile(
    r'^slipway_requests_total\{route="/predict",status="(\d+)",version="1"\} (\S+)$')


@pytest.fixture(scope="module")
def server():
    deployment = deploy(load(DEMO_MODEL), DeployOptions(runtime="process"))
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def url(server):
    return server.url


@pytest.fixture(scope="module")
def sample_body():
    return load(DEMO_MODEL).schema.with_samples().samples.rest


@pytest.fixture(autouse=True)
def keep_sigint_handler():
    """The commands take over Ctrl-C (to stop a test early); give it back to pytest afterwards."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def slipway(capsys, *args):
    """Run `slipway ARGS` in this process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def strict_json(text):
    """JSON as a strict parser reads it: NaN or Infinity in the output is an error."""
    return orjson.loads(text)


def predict_requests(url):
    """What the server counted on /predict, by status."""
    with ModelClient(url) as client:
        text = client.request("GET", "/metrics").body
    counts = {}
    for line in text.splitlines():
        match = PREDICT_COUNT.match(line)
        if match:
            counts[match[1]] = int(float(match[2]))
    return counts


def never_run(monkeypatch):
    """Replace the load tester: a command that reaches it ran when it should have refused."""
    calls = []

    def refuse(plan, *args, **kwargs):
        calls.append(plan)
        raise Cancelled()

    monkeypatch.setattr(loadtest, "run", refuse)
    return calls


def assert_one_line_error(err, *fragments):
    assert err.startswith("slipway: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


# --- load ------------------------------------------------------------------------------------------

def test_a_closed_loop_prints_the_report_as_json(capsys, url):
    status, out, err = slipway(capsys, "load", url, "--connections", 4, "--duration", "1s",
                               "--json")
    assert status == 0, err
    report = strict_json(out)
    assert report["plan"] == ("4 connections, closed loop, 1 s, /predict, "
                              "random valid rows from the schema")
    assert report["mode"] == "closed" and report["latency_from"] == "actual send time"
    assert report["completed"] > 0 and report["errors"] == 0 and report["cancelled"] is False
    assert report["duration_s"] == pytest.approx(1.0, abs=0.2)
    assert report["throughput"] > 0
    assert 0 < report["latency"]["p50_ms"] <= report["latency"]["p99_ms"]
    assert report["corrected"]["count"] >= report["latency"]["count"] == report["completed"]
    assert err.startswith(f"Loading {url}: 4 connections, closed loop, 1 s")


def test_an_open_loop_writes_the_html_report(capsys, url, tmp_path):
    page = tmp_path / "out.html"
    status, out, err = slipway(capsys, "load", url, "--rate", 100, "--duration", "1s",
                               "--report", page)
    assert status == 0, err
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and html.count("<svg") == 3
    assert "100 req/s constant arrivals on 16 connections, 1 s" in html
    assert f"Report written to {page}." in err
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines())
    assert rows["Throughput"].endswith("req/s of 100 offered")
    assert rows["Measured from"] == "intended send time"
    assert ", 0 errors of " in rows["Answers"]
    assert "Late sends" in rows


def test_an_open_loop_sends_rate_times_duration_requests(capsys, url):
    sent = []
    for _ in range(2):
        status, out, err = slipway(capsys, "load", url, "--rate", 200, "--duration", "525ms",
                                   "--json")
        assert status == 0, err
        sent.append(strict_json(out)["sent"])
    # 200/s for 0.525 s: 105 arrivals in [0, 0.525) (one more at most from float rounding)
    assert all(105 <= count <= 106 for count in sent), sent


def test_a_number_of_requests_sends_exactly_that_many(capsys, url):
    before = predict_requests(url)
    status, out, err = slipway(capsys, "load", url, "--requests", 50, "--json")
    assert status == 0, err
    report = strict_json(out)
    assert report["sent"] == report["completed"] == 50 and report["errors"] == 0
    assert report["plan"].startswith("16 connections, closed loop, 50 requests")
    after = predict_requests(url)
    assert after.get("200", 0) - before.get("200", 0) == 50  # the server's own count agrees
    assert sum(after.values()) - sum(before.values()) == 50


def test_drift_shifts_a_feature_of_the_served_model(capsys, url):
    status, out, err = slipway(capsys, "load", url, "--requests", 40, "--drift", "alcohol=+2sd",
                               "--json")
    assert status == 0, err
    report = strict_json(out)
    assert report["plan"].endswith("random valid rows from the schema, drifted: alcohol +2 sd")
    assert report["completed"] == 40 and report["errors"] == 0


def test_drift_of_an_unknown_feature_is_a_usage_error(capsys, url):
    status, out, err = slipway(capsys, "load", url, "--duration", "1s", "--drift", "nosuch=+2sd")
    assert status == 2
    assert out == ""
    assert_one_line_error(err, "The model has no feature 'nosuch'.", "alcohol")


def test_a_drift_that_is_not_a_drift_is_a_usage_error(capsys, url):
    status, _, err = slipway(capsys, "load", url, "--duration", "1s", "--drift", "alcohol+2")
    assert status == 2
    assert_one_line_error(err, "'alcohol+2' is not a drift.", "FEATURE=+2sd")


def test_a_payload_file_is_sent_as_it_is(capsys, url, tmp_path, sample_body):
    body = tmp_path / "body.json"
    body.write_text(json.dumps(sample_body))
    status, out, err = slipway(capsys, "load", url, "--requests", 20, "--payload", body, "--json")
    assert status == 0, err
    report = strict_json(out)
    assert report["plan"].endswith("the body in body.json")
    assert report["completed"] == 20 and report["errors"] == 0


def test_a_payload_file_the_server_rejects_fails_with_its_reason(capsys, url, tmp_path):
    body = tmp_path / "strong.json"
    body.write_text('{"features": {"alcohol": "strong"}}')
    status, out, err = slipway(capsys, "load", url, "--requests", 10, "--payload", body, "--json")
    assert status == 1
    report = strict_json(out)
    assert report["completed"] == 0 and report["errors"] == 10
    assert list(report["errors_by_kind"]) == ["HTTP 400"]
    assert "alcohol" in report["error_samples"]["HTTP 400"]
    assert err.rstrip().endswith("slipway: error: 10 of 10 requests failed.")


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "'bad.json' is neither JSON nor JSON Lines"),
    ("", "'bad.json' is empty."),
])
def test_a_bad_payload_file_is_a_usage_error(capsys, url, tmp_path, content, message):
    body = tmp_path / "bad.json"
    body.write_text(content)
    status, out, err = slipway(capsys, "load", url, "--duration", "1s", "--payload", body)
    assert status == 2 and out == ""
    assert_one_line_error(err, message)


def test_a_missing_payload_file_is_a_usage_error(capsys, url, tmp_path):
    status, _, err = slipway(capsys, "load", url, "--duration", "1s",
                             "--payload", tmp_path / "none.json")
    assert status == 2
    assert_one_line_error(err, "Cannot read the payload file", "none.json")


def test_a_payload_file_cannot_be_drifted(capsys, url, tmp_path, sample_body):
    body = tmp_path / "body.json"
    body.write_text(json.dumps(sample_body))
    status, _, err = slipway(capsys, "load", url, "--duration", "1s", "--payload", body,
                             "--drift", "alcohol=+2sd")
    assert status == 2
    assert_one_line_error(err, "A payload file is sent as it is")


def test_a_dead_url_fails_with_one_clear_line(capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    status, out, err = slipway(capsys, "load", dead, "--duration", "1s")
    assert status == 1
    assert out == ""
    assert_one_line_error(err, f"Nothing answers at {dead}.")


def test_a_dead_url_with_a_payload_file_reports_refused_connections(capsys, tmp_path,
                                                                    sample_body):
    # no schema to fetch: the test runs, and every request fails to connect
    dead = f"http://127.0.0.1:{free_port()}"
    body = tmp_path / "body.json"
    body.write_text(json.dumps(sample_body))
    status, out, err = slipway(capsys, "load", dead, "--duration", "0.5s", "--payload", body,
                               "--json")
    assert status == 1
    report = strict_json(out)  # nothing was measured: the percentiles are null, not NaN
    assert report["completed"] == 0 and report["errors"] > 0
    assert next(iter(report["errors_by_kind"])) == "connection refused"  # the most common
    assert set(report["errors_by_kind"]) <= {"connection refused", "not sent in time"}
    assert report["latency"]["p99_ms"] is None
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1].startswith("slipway: error: ")


@pytest.mark.parametrize(("args", "message"), [
    (("--rate", "0"), "An open-loop test needs a positive arrival rate."),
    (("--rate", "-5"), "An open-loop test needs a positive arrival rate."),
    (("--poisson",), "--poisson goes with --rate"),
    (("--rate", "100", "--connections", "0"), "at least one connection"),
    (("--requests", "0"), "The number of requests must be at least 1."),
    (("--timeout", "0s"), "timeout must be"),
])
def test_a_bad_plan_is_refused_before_anything_is_sent(capsys, monkeypatch, url, args, message):
    calls = never_run(monkeypatch)
    status, out, err = slipway(capsys, "load", url, *args)
    assert status == 2 and out == ""
    assert_one_line_error(err, message)
    assert calls == []


def test_a_zero_duration_is_refused(capsys, monkeypatch, url):
    calls = never_run(monkeypatch)
    status, _, err = slipway(capsys, "load", url, "--duration", "0s")
    assert [plan.duration_s for plan in calls] == []
    assert status == 2
    assert_one_line_error(err, "The duration must be positive.")


def test_zero_connections_is_refused(capsys, monkeypatch, url):
    calls = never_run(monkeypatch)
    status, _, err = slipway(capsys, "load", url, "--connections", 0, "--duration", "1s")
    assert [plan.connections for plan in calls] == []
    assert status == 2
    assert_one_line_error(err, "at least one connection")


def test_connections_have_one_flag(capsys, monkeypatch, url):
    """--connections is the closed loop's workers and the open loop's connections alike, the word
    the Load page uses; the old --concurrency says which flag to use instead of loading."""
    calls = never_run(monkeypatch)
    with pytest.raises(SystemExit) as help_exit:
        cli.main(["load", "--help"])
    out = capsys.readouterr().out
    assert help_exit.value.code == 0 and "--connections N" in out and "--concurrency" not in out
    with pytest.raises(SystemExit) as gone:  # a usage error, as argparse ends one
        cli.main(["load", url, "--concurrency", "4", "--duration", "1s"])
    err = capsys.readouterr().err
    assert gone.value.code == 2 and calls == []
    assert err == ("slipway: error: --concurrency is gone: use --connections N (the closed "
                   "loop's workers, or the open loop's connections)\n")


def test_a_report_file_of_an_unknown_kind_is_refused_before_running(capsys, monkeypatch, url,
                                                                   tmp_path):
    calls = never_run(monkeypatch)
    status, _, err = slipway(capsys, "load", url, "--duration", "1s",
                             "--report", tmp_path / "out.txt")
    assert calls == []
    assert status == 2
    assert_one_line_error(err, "out.txt")


def test_csv_and_json_reports_are_written(capsys, url, tmp_path):
    for name in ("timeline.csv", "report.json"):
        status, _, err = slipway(capsys, "load", url, "--connections", 2, "--duration", "500ms",
                                 "--report", tmp_path / name)
        assert status == 0, err
    header = (tmp_path / "timeline.csv").read_text().splitlines()[0]
    assert header.startswith("elapsed_s,throughput,error_rate,p50_ms")
    assert strict_json((tmp_path / "report.json").read_text())["completed"] > 0


# --- sweep -----------------------------------------------------------------------------------------

def test_a_sweep_finds_the_highest_rate_that_meets_the_objective(capsys, url, tmp_path):
    page = tmp_path / "sweep.html"
    status, out, err = slipway(capsys, "sweep", url, "--slo-p99", "1000ms", "--step", "0.5s",
                               "--start-rate", 400, "--connections", 4, "--json",
                               "--report", page)
    assert status == 0, err
    report = strict_json(out)
    assert report["slo_p99_ms"] == 1000.0
    assert report["capacity_estimate"] == 1600.0  # without a probe: four times the start rate
    steps = report["steps"]
    assert steps and steps[0]["rate"] == 400.0 and steps[0]["met"]
    assert [s["rate"] for s in steps] == sorted(s["rate"] for s in steps)
    assert report["knee_rate"] == max(s["rate"] for s in steps if s["met"])
    assert all(s["reason"] == "" for s in steps if s["met"])
    assert all(s["reason"] for s in steps if not s["met"])
    assert len(steps) <= 16 + 2
    assert "Rate sweep" in page.read_text(encoding="utf-8")
    assert err.startswith(f"Sweeping {url}/predict for p99 ≤ 1000 ms (4 connections, 0.5 s a step)")
    assert "400 req/s offered" in err


def test_a_sweep_where_no_rate_meets_the_objective_exits_1(capsys, url):
    status, out, err = slipway(capsys, "sweep", url, "--slo-p99", "0.01ms", "--step", "0.5s",
                               "--start-rate", 100)
    assert status == 1
    assert out == ""
    assert "missed: p99 " in err
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("slipway: error: no rate met p99 ≤ 0.01 ms")


def test_a_sweep_needs_a_positive_objective(capsys, url):
    status, out, err = slipway(capsys, "sweep", url, "--slo-p99", "0ms", "--start-rate", 100)
    assert status == 2 and out == ""
    assert "Traceback" not in err
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("slipway: error: The latency objective must be positive")


def test_a_sweep_needs_an_objective(capsys, url):
    with pytest.raises(SystemExit) as exited:
        cli.main(["sweep", url])
    assert exited.value.code == 2
    assert "--slo-p99" in capsys.readouterr().err


# --- durations -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), ("1min", 60.0), ("1.5", 1.5), (" 10s ", 10.0),
    (".25s", 0.25),
])
def test_durations_are_read_in_seconds(text, value):
    assert seconds(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "value"), [
    ("50ms", 50.0), ("1000ms", 1000.0), ("0.2s", 200.0), ("50", 50.0), ("1m", 60_000.0),
])
def test_objectives_are_read_in_milliseconds(text, value):
    assert milliseconds(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["soon", "1h", "", "-1s", "10 seconds"])
def test_a_bad_duration_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        seconds(text)


def test_a_bad_duration_on_the_command_line_is_a_usage_error(capsys, url):
    with pytest.raises(SystemExit) as exited:
        cli.main(["load", url, "--duration", "soon"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "'soon' is not a duration such as 10s, 500ms or 2m" in err
    assert "Traceback" not in err
