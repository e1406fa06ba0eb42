"""Clients that send slowly, not at all, or too much cannot take the server offline: the real
server process over real sockets, with the limits of serving.json's `limits`."""

from __future__ import annotations

import contextlib
import json
import resource
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


def _config(iris_logreg, **limits):
    return iris_logreg.with_config(model_file=str(iris_logreg.path), limits=limits)


def _closed_reasons(server) -> dict[str, float]:
    return {dict(labels)["reason"]: value for (name, labels), value in server.metrics().items()
            if name == "slipway_connections_closed_total"}


def _status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def test_slow_bodies_take_no_inference_slot(tmp_path, iris_logreg):
    """More slow senders than inference slots: /predict still answers 200 for everyone else."""
    config = _config(iris_logreg, max_concurrency=4, body_timeout_s=120)
    with running_server(tmp_path, config) as server:
        slow = [server.slow_body() for _ in range(12)]
        try:
            wait_for(lambda: server.inflight() >= 4, "the slow requests never reached the app")
            with httpx.Client(base_url=server.url, timeout=PATIENCE_S) as client:
                for _ in range(5):
                    response = client.post("/predict", content=PREDICT_BODY)
                    assert response.status_code == 200, response.text
                    assert response.json()["label"] == "setosa"
            # All twelve are still in the app, waiting for their bodies: none was refused.
            wait_for(lambda: server.inflight() == 12, "some slow requests were refused")
        finally:
            for sock in slow:
                sock.close()


def test_a_body_that_does_not_arrive_in_time_is_answered_408(tmp_path, iris_logreg):
    with running_server(tmp_path, _config(iris_logreg, body_timeout_s=1)) as server:
        with server.slow_body() as sock:
            answer = read_until_closed(sock)  # the server closes the connection after answering
        assert _status_and_error(answer) == (408, "the request body did not arrive within 1 s")
        samples = server.metrics()
        assert samples[("slipway_requests_total",
                        frozenset({"route": "/predict", "status": "408",
                                   "version": "1"}.items()))] == 1
        assert httpx.post(f"{server.url}/predict", content=PREDICT_BODY).status_code == 200


def _trickle_until_closed(server, start: bytes, byte: bytes) -> bytes:
    """Send `start`, then one more `byte` whenever the server has been silent for 0.2 s, until it
    closes the connection; what it answered. Fails if it is still open after PATIENCE_S."""
    answer = b""
    deadline = time.monotonic() + PATIENCE_S
    with server.connect(timeout=0.2) as sock, contextlib.suppress(ConnectionResetError,
                                                                   BrokenPipeError):
        sock.sendall(start)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                sock.sendall(byte)
                continue
            if not chunk:
                return answer
            answer += chunk
        pytest.fail(f"the connection was still open after {PATIENCE_S:g} s")
    return answer  # reset by the server


def test_a_slowloris_head_is_closed_at_its_deadline(tmp_path, iris_logreg):
    """A head sent a byte at a time never ends: the connection is closed at the deadline."""
    with running_server(tmp_path, _config(iris_logreg, header_timeout_s=1)) as server:
        # One more byte of a header name at a time, as slowloris does.
        answer = _trickle_until_closed(server, b"POST /predict HTTP/1.1\r\nHost: test\r\n", b"X")
        if answer:  # the answer can be lost to a reset: the byte sent after it was never read
            assert _status_and_error(answer) == (
                408, "the request head did not arrive within 1 s")
        assert _closed_reasons(server) == {"header_timeout": 1}


def test_silent_and_idle_connections_are_closed(tmp_path, iris_logreg):
    """A connection that sends nothing is closed at the head deadline; a keep-alive connection
    idle after its answer at the keep-alive timeout; one that then trickles a second head at the
    head deadline."""
    config = _config(iris_logreg, header_timeout_s=1, keep_alive_timeout_s=1)
    with running_server(tmp_path, config) as server:
        with server.connect(timeout=PATIENCE_S) as silent:
            assert read_until_closed(silent) == b""
        request = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
        with server.connect(timeout=PATIENCE_S) as idle:
            idle.sendall(request)
            answer = read_until_closed(idle)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'{"status":"alive"}')
        with server.connect(timeout=PATIENCE_S) as trickling:
            trickling.sendall(request)
            first = trickling.recv(4096)
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            trickling.sendall(b"GET /health HTTP/1.1\r\n")  # and no more
            assert _status_and_error(read_until_closed(trickling)) == (
                408, "the request head did not arrive within 1 s")
        assert _closed_reasons(server) == {"silent": 1, "header_timeout": 1}


def _peak_rss_kib(pid: int) -> int:
    status = open(f"/proc/{pid}/status").read()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmHWM:")))


def test_a_huge_header_is_refused_without_memory_growth(tmp_path, iris_logreg):
    with running_server(tmp_path, _config(iris_logreg)) as server:
        # Just over the 64 KiB default, sent whole: a 431 that says why.
        with server.connect() as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 70_000
                         + b"\r\n\r\n")
            assert _status_and_error(read_until_closed(sock)) == (
                431, "the request head (request line and headers) is over the limit of 65536 "
                     "bytes")
        pid = server.process.pid
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")  # start the peak resident size over from the current one
        before = _peak_rss_kib(pid)
        # One header of 256 MiB, streamed: the server stops reading it at the limit.
        sent = 0
        with server.connect() as sock, contextlib.suppress(ConnectionResetError,
                                                            BrokenPipeError):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Huge: ")
            chunk = b"a" * (1 << 20)
            while sent < 256 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        assert sent < 256 << 20, "the server read the whole 256 MiB header"
        assert _peak_rss_kib(pid) - before < 16 * 1024
        assert _closed_reasons(server) == {"header_too_large": 2}
        assert httpx.post(f"{server.url}/predict", content=PREDICT_BODY).status_code == 200


def _expect_connection_limit(server, limit: int) -> None:
    """With `limit` connections held open, one more is answered 503 and closed."""
    held = [server.connect() for _ in range(limit)]
    try:
        with server.connect() as extra:
            assert _status_and_error(read_until_closed(extra)) == (
                503, f"the server is at its limit of {limit} connections; retry shortly")
    finally:
        for sock in held:
            sock.close()


def test_connections_over_the_limit_are_answered_503_and_closed(tmp_path, iris_logreg):
    config = _config(iris_logreg, max_connections=8, header_timeout_s=120)
    with running_server(tmp_path, config) as server:
        _expect_connection_limit(server, 8)

        def served() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{server.url}/health", timeout=5).status_code == 200
            return False

        wait_for(served, "the server did not serve again once the connections closed")
        assert _closed_reasons(server)["connection_limit"] >= 1


def _limits_of(pid: int) -> tuple[int, int]:
    line = next(line for line in open(f"/proc/{pid}/limits")
                if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_the_open_file_limit_is_raised_to_the_hard_limit(tmp_path, iris_logreg):
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def start_low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    with running_server(tmp_path, _config(iris_logreg), preexec_fn=start_low) as server:
        assert _limits_of(server.process.pid) == (hard, hard)
        stderr = server.stop()
    assert "open-file limit" not in stderr


def test_the_connection_limit_stays_under_the_open_file_limit(tmp_path, iris_logreg):
    def start_capped() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    config = _config(iris_logreg, header_timeout_s=120)
    with running_server(tmp_path, config, preexec_fn=start_capped) as server:
        _expect_connection_limit(server, 64)
        stderr = server.stop()
    assert ("the open-file limit (128) holds connections to 64, under limits.max_connections "
            "(2048)") in stderr


def test_bytes_that_are_not_http_get_a_json_400(tmp_path, iris_logreg):
    with running_server(tmp_path, _config(iris_logreg)) as server:
        for garbage in (b"HELLO\x00WORLD\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                        b"POST /predict HTTP/1.1\r\nContent-Length: nope\r\n\r\n"):
            with server.connect() as sock:
                sock.sendall(garbage)
                assert _status_and_error(read_until_closed(sock)) == (
                    400, "malformed HTTP request: the server could not parse it"), garbage
        assert httpx.post(f"{server.url}/predict", content=PREDICT_BODY).status_code == 200


def test_a_request_answered_before_its_body_cannot_keep_the_connection(tmp_path, iris_logreg):
    """A 413 goes out as soon as the head declares too big a body: trickling the rest of that
    body afterwards does not keep the connection open."""
    with running_server(tmp_path, _config(iris_logreg, header_timeout_s=120,
                                          body_timeout_s=120)) as server:
        answer = _trickle_until_closed(
            server, b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Length: 5000000\r\n\r\n{",
            b" ")
        assert _status_and_error(answer) == (
            413, "the request body is 5000000 bytes, over the limit of 1048576 bytes")
