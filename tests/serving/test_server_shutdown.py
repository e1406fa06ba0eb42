"""SIGTERM as a load balancer or Kubernetes needs it: readiness turns 503 while requests are still
accepted and answered for shutdown.ready_pause_s, then the listener closes without resetting the
connections queued on it, and accepted requests get shutdown.drain_timeout_s to finish."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from server_helpers import (
    PATIENCE_S,
    PREDICT_BODY,
    read_until_closed,
    running_server,
    wait_for,
)

PREDICT_REQUEST = (b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                   b"Content-Length: " + str(len(PREDICT_BODY)).encode() + b"\r\n\r\n"
                   + PREDICT_BODY)


def _config(iris_logreg, **shutdown):
    return iris_logreg.with_config(model_file=str(iris_logreg.path), shutdown=shutdown)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return 0


def test_during_the_pause_it_is_not_ready_but_still_serves(tmp_path, iris_logreg):
    with running_server(tmp_path, _config(iris_logreg, ready_pause_s=300)) as server:
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: _status(f"{server.url}/ready") == 503, "/ready never said 503")
        ready = httpx.get(f"{server.url}/ready")
        assert ready.json() == {"status": "draining"}
        v2_ready = httpx.get(f"{server.url}/v2/health/ready")
        assert (v2_ready.status_code, v2_ready.json()) == (503, {"ready": False})
        # A request sent after SIGTERM, on a new connection, is answered.
        response = httpx.post(f"{server.url}/predict", content=PREDICT_BODY)
        assert (response.status_code, response.json()["label"]) == (200, "setosa")
        assert server.process.poll() is None
        # A second signal cuts the pause short: the server drains and exits 0.
        server.process.send_signal(signal.SIGTERM)
        _stdout, stderr = server.process.communicate(timeout=PATIENCE_S)
    assert server.process.returncode == 0, stderr
    assert "not ready; still serving for 300 s before closing the listener" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("pause", [0, 0.5])
def test_connections_queued_at_shutdown_are_answered_not_reset(tmp_path, iris_logreg, pause):
    """Clients connect and send while the server cannot accept (stopped), SIGTERM arrives: every
    one of them gets its answer, whether it is accepted before the listener closes or taken in
    from the listener's queue as it closes."""
    with running_server(tmp_path, _config(iris_logreg, ready_pause_s=pause)) as server:
        pid = server.process.pid
        os.kill(pid, signal.SIGSTOP)
        # Stopped long enough for uvicorn's periodic tick to fall due: on resuming it runs before
        # the loop polls the listener, sees the signal and begins the shutdown with every
        # connection still queued.
        time.sleep(0.5)
        clients = []
        try:
            for _ in range(32):
                sock = server.connect()
                sock.sendall(PREDICT_REQUEST)
                clients.append(sock)
            os.kill(pid, signal.SIGTERM)
        finally:
            os.kill(pid, signal.SIGCONT)
        answers = []
        for sock in clients:
            with sock:
                answers.append(read_until_closed(sock))
        _stdout, stderr = server.process.communicate(timeout=PATIENCE_S)
    assert server.process.returncode == 0, stderr
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"HTTP/1.1 200 OK"] * 32
    assert all(answer.endswith(b'"model":"iris","version":"1"}') for answer in answers)


def test_the_drain_timeout_bounds_the_wait_for_accepted_requests(tmp_path, iris_logreg):
    """A request still waiting for its body when draining begins is cancelled once
    drain_timeout_s has passed, and the server exits 0."""
    config = _config(iris_logreg, ready_pause_s=0, drain_timeout_s=1)
    config["limits"] = {**config["limits"], "body_timeout_s": 300}
    with running_server(tmp_path, config) as server:
        with server.slow_body():
            wait_for(lambda: server.inflight() == 1, "the request never reached the app")
            server.process.send_signal(signal.SIGTERM)
            # Far less than the 30 s drain of the default, far more than the configured 1 s.
            _stdout, stderr = server.process.communicate(timeout=PATIENCE_S * 2 / 3)
    assert server.process.returncode == 0, stderr
    assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in stderr
