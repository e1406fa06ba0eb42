"""`python -m slipway_server --config serving.json --host 127.0.0.1 --port 8000`

Startup problems (a bad config, a missing or invalid model, an API key variable that is not set, a
port in use, a missing package) end the process with one line on stderr and a non-zero status: 2
for the config and model, 3 for the address. The open-file limit is raised to the hard limit, and
every connection is guarded (connections.py). SIGTERM (or SIGINT) drains: readiness turns 503
while requests are still accepted and served for shutdown.ready_pause_s (a second signal cuts the
pause short), then the listening socket closes, the connections still queued on it are taken in,
accepted requests get shutdown.drain_timeout_s to finish, and the process exits 0, also as PID 1
in a container.
"""

from __future__ import annotations

import argparse
import copy
import logging
import logging.config
import signal
import socket
import sys
from typing import Any

PROG = "slipway-server"
LOG_LEVELS = ["critical", "error", "warning", "info", "debug", "trace"]


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return status


def _configure_logging(level: str, access_log: bool) -> None:
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    numeric = logging.DEBUG if level in ("debug", "trace") else getattr(logging, level.upper())
    config["loggers"]["slipway"] = {"handlers": ["default"], "level": numeric,
                                    "propagate": False}
    config["loggers"]["uvicorn.error"] = {"level": numeric}
    config["loggers"]["uvicorn.access"]["level"] = numeric if access_log else logging.CRITICAL + 1
    logging.config.dictConfig(config)


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _ignore_signal(signum: int, frame: Any) -> None:
    """Stands in for the default action once uvicorn has drained and re-raises the signal."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slipway_server",
                                     description="Serve one ONNX model as serving.json describes.")
    parser.add_argument("--config", default="serving.json", help="path of serving.json")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    parser.add_argument("--access-log", action="store_true",
                        help="log every request (off by default: it costs throughput)")
    parser.add_argument("--graceful-timeout", type=float, default=None, metavar="SECONDS",
                        help="how long in-flight requests may take to finish on SIGTERM "
                             "(default: serving.json's shutdown.drain_timeout_s, else 30)")
    args = parser.parse_args(argv)

    try:
        import uvicorn

        from .app import create_app
        from .connections import (
            DrainingServer,
            connection_limit,
            guarded_protocol,
            raise_descriptor_limit,
        )
        from .settings import StartupError, load_settings
    except ImportError as exc:
        return _fail(f"a package the server needs is missing: {exc}", 2)

    _configure_logging(args.log_level, args.access_log)
    logger = logging.getLogger("slipway")
    try:
        app = create_app(load_settings(args.config))
    except StartupError as exc:
        return _fail(str(exc), 2)
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", 3)

    settings = app.settings
    limits = settings.limits
    descriptors = raise_descriptor_limit()
    max_connections = connection_limit(limits.max_connections, descriptors)
    if max_connections < limits.max_connections:
        logger.warning("the open-file limit (%d) holds connections to %d, under "
                       "limits.max_connections (%d)", descriptors, max_connections,
                       limits.max_connections)
    model = app.model
    what = (f"{len(model.features)} features" if model.codec is not None
            else f"{len(model.inputs)} input tensor(s)")
    batching = settings.batching
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    logger.info("serving %s %s (%s, %s; batching %s; %d inference thread(s)) on %s",
                model.name, model.version, model.task, what,
                f"up to {batching.max_batch_size} rows" if batching.enabled else "off",
                app.threads, url)

    drain_timeout = (settings.shutdown.drain_timeout_s if args.graceful_timeout is None
                     else args.graceful_timeout)
    config = uvicorn.Config(app, log_config=None, log_level=args.log_level,
                            access_log=args.access_log, lifespan="on", server_header=False,
                            proxy_headers=False,
                            http=guarded_protocol(limits, max_connections,
                                                  app.metrics.connection_closed),
                            timeout_keep_alive=limits.keep_alive_timeout_s,  # type: ignore[arg-type]
                            timeout_graceful_shutdown=drain_timeout)  # type: ignore[arg-type]

    # uvicorn restores the handlers it found and re-raises the signal after draining: with these
    # in place, that re-raise is a no-op and the process exits 0 instead of dying by the signal.
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, _ignore_signal)
    server = DrainingServer(config, app, sock, settings.shutdown)
    server.run(sockets=[sock.dup()])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
