"""Connections: accepted, guarded while they send, and let go on shutdown.

uvicorn's httptools protocol (uvicorn[standard]'s choice, and this server's) leaves a slow or idle
client free to hold a connection, and so a descriptor, for as long as it likes:

- `timeout_keep_alive` closes a connection idle *between* requests, but it is armed only after a
  response and cancelled by every byte received, so a connection that never sends a request, or
  sends its head a byte at a time (slowloris), is never closed;
- `limit_concurrency` answers 503 only once a request's head has arrived (and in plain text), so
  idle and slow connections still cost a descriptor each;
- `h11_max_incomplete_event_size` caps a request head under h11 only: httptools (llhttp) has no cap
  and buffers a header value whole, in Python bytes, until it ends;
- nothing bounds the time a request body takes.

GuardedHttpToolsProtocol adds what is missing, from serving.json's `limits`: a connection over
`max_connections` is answered 503 and closed as it is accepted; a request head must arrive within
`header_timeout_s` of the connection's opening or of its first byte (408, or a silent close for a
connection that never sent anything) and within `max_header_bytes` (431); a body must arrive within
`body_timeout_s` of its head (the app answers 408); a request answered before its body arrived
(413, 401, 404...) has its connection closed rather than read to the end. Timers are armed only when
a head or body does not come in one read, so a request that arrives whole costs none. uvicorn's own
`timeout_keep_alive` keeps closing idle keep-alive connections, and `backlog` keeps its default.

DrainingServer is uvicorn's Server with serving.json's `shutdown`: see settings.Shutdown.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .request_body import BODY_DEADLINE_PASSED
from .settings import Limits, Shutdown

logger = logging.getLogger("slipway")

DESCRIPTORS_KEPT_FREE = 64
"""Descriptors left for everything but client connections (the listener, the event loop, the
inference threads, logs), so the connection limit is met before the descriptor limit."""
FIRST_BYTES_GRACE_S = 1.0
"""On shutdown, how long an accepted connection that has sent nothing yet may take to start its
request (it was likely queued with its request on the way)."""
PAUSE_POLL_S = 0.05


def _answer(status: int, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


def _refusing_app(status: int, message: str) -> Callable:
    """An ASGI app answering every request with this error, then closing the connection."""
    body = orjson.dumps({"error": message})
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()), (b"connection", b"close")]}

    async def refuse(scope: dict, receive: Callable, send: Callable) -> None:
        await send(start)
        await send({"type": "http.response.body", "body": body})
    return refuse


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, with the guards the module docstring lists. Configure it with
    `guarded_protocol`.

    A head is awaited from the connection's opening, and again once a request's body is complete;
    `_head_start` is where the bytes of a head that has begun and not ended began (-1: none). A
    request whose head and body arrive in one read, nearly every request, passes through two
    overridden methods and arms no timer."""

    limits = Limits()
    max_connections = Limits.max_connections
    max_header_bytes = Limits.max_header_bytes
    on_closed: Callable[[str], None] = staticmethod(lambda reason: None)
    """Told why the guards closed a connection (metrics count it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._received = 0
        self._head_start = -1
        self._closing = False

    def _arm(self, seconds: float, overdue: Callable[[], None]) -> None:
        self._deadline = self.loop.call_later(seconds, overdue)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, reason: str, status: int, message: str) -> None:
        self.on_closed(reason)
        self._disarm()
        self.transport.write(_answer(status, message))
        self.transport.close()

    @property
    def _too_large(self) -> str:
        return (f"the request head (request line and headers) is over the limit of "
                f"{self.limits.max_header_bytes} bytes")

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse("connection_limit", 503, f"the server is at its limit of "
                         f"{self.max_connections} connections; retry shortly")
            return
        self._arm(self.limits.header_timeout_s, self._head_overdue)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # The hot path: a whole request in one read costs these few comparisons.
        received = self._received
        self._received = received + len(data)
        cycle = self.cycle
        if self._head_start < 0 and (cycle is None or not cycle.more_body):
            self._head_start = received  # these bytes begin the next head
        HttpToolsProtocol.data_received(self, data)
        if self._head_start >= 0:  # a head began and has not ended
            self._head_unfinished()
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body:
            self._body_unfinished(cycle)
        elif self._deadline is not None:
            self._disarm()  # the body came in time

    def _head_unfinished(self) -> None:
        if self.transport.is_closing():
            return
        # Checked per read: the server never holds more of a head than the cap and a read.
        if self._received - self._head_start > self.limits.max_header_bytes:
            self._refuse("header_too_large", 431, self._too_large)
        elif self._deadline is None:
            self._arm(self.limits.header_timeout_s, self._head_overdue)

    def _body_unfinished(self, cycle: Any) -> None:
        if self.transport.is_closing():
            return
        if cycle.response_complete:
            # Answered before its body arrived (413, 401, a route that reads none): reading the
            # rest would let the client keep the connection with a body nobody wants.
            self._disarm()
            self.transport.close()
        elif self._deadline is None:
            self._arm(self.limits.body_timeout_s, self._body_overdue)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, in JSON like every other refusal."""
        self._disarm()
        self.transport.write(_answer(400, "malformed HTTP request: the server could not parse "
                                          "it"))
        self.transport.close()

    # --- httptools callbacks ---------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        head_start = self._head_start
        self._head_start = -1
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._received - head_start > self.max_header_bytes and len(self.url) + sum(
                len(name) + len(value) for name, value in self.headers) > self.max_header_bytes:
            # A whole head over the limit in one read: refused the way uvicorn refuses a request
            # over its limit_concurrency, so the parser carries on undisturbed.
            self.on_closed("header_too_large")
            app, self.app = self.app, _refusing_app(431, self._too_large)
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        HttpToolsProtocol.on_headers_complete(self)
        if self._closing and self.cycle is not None:
            self.cycle.keep_alive = False  # shutting down: answer it, then close

    # --- deadlines -------------------------------------------------------------------------------

    def _head_overdue(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._head_start >= 0:
            self._refuse("header_timeout", 408, "the request head did not arrive within "
                         f"{self.limits.header_timeout_s:g} s")
        elif self.cycle is None or self.cycle.response_complete:
            self.on_closed("silent")  # never began a request
            self.transport.close()

    def _body_overdue(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        if cycle.response_complete:
            self.transport.close()  # answered early, and the rest of the body never came
            return
        if cycle.response_started:
            return
        # The app is waiting for the body: wake it with the news, and it answers 408.
        cycle.scope[BODY_DEADLINE_PASSED] = self.limits.body_timeout_s  # type: ignore[literal-required]
        cycle.message_event.set()

    # --- uvicorn's shutdown ----------------------------------------------------------------------

    def shutdown(self) -> None:
        self._closing = True
        if self._head_start >= 0:
            return  # its request is arriving: it is answered, then the connection closes
        if self.cycle is None and not self.transport.is_closing():
            # Accepted, nothing received yet: its request is probably on the way.
            self._disarm()
            self._arm(min(FIRST_BYTES_GRACE_S, self.limits.header_timeout_s), self._head_overdue)
            return
        super().shutdown()


def guarded_protocol(limits: Limits, max_connections: int,
                     on_closed: Callable[[str], None]) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn.Config(http=...) takes, with these limits."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "limits": limits, "max_connections": max_connections,
        "max_header_bytes": limits.max_header_bytes, "on_closed": staticmethod(on_closed)})


def raise_descriptor_limit() -> int | None:
    """Raise the soft limit on open descriptors to the hard limit, as any process may (many
    systems start processes at 1024); the soft limit now, None where there is none to read."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d to %d: %s", soft, hard,
                           exc)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_limit(configured: int, descriptors: int | None) -> int:
    """The configured connection limit, kept under the descriptor limit: over it, new clients get
    a 503 instead of a failed accept."""
    if descriptors is None:
        return configured
    return max(1, min(configured, descriptors - DESCRIPTORS_KEPT_FREE))


class DrainingServer(uvicorn.Server):
    """uvicorn's Server, shutting down as settings.Shutdown describes. `listener` is the bound
    socket; run it with `sockets=[listener.dup()]`, so that closing uvicorn's copy stops accepting
    while connections still queued on the listener can be taken in and answered."""

    def __init__(self, config: uvicorn.Config, app: Any, listener: socket.socket,
                 shutdown: Shutdown) -> None:
        super().__init__(config)
        self.slipway_app = app
        self.listener = listener
        self.ready_pause_s = shutdown.ready_pause_s
        self.signals = 0

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.signals += 1
        self.slipway_app.begin_drain()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.slipway_app.begin_drain()
        loop = asyncio.get_running_loop()
        if self.ready_pause_s:
            logger.info("not ready; still serving for %g s before closing the listener",
                        self.ready_pause_s)
        end = loop.time() + self.ready_pause_s
        signals = self.signals
        # Still accepting and serving while readiness says 503; another signal ends the pause.
        while loop.time() < end and self.signals == signals:
            await asyncio.sleep(min(PAUSE_POLL_S, end - loop.time()))
        for server in self.servers:
            server.close()
        await self._take_in_queued(loop)
        await super().shutdown(sockets)

    async def _take_in_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        """Accept what is still queued on the listener, then close it: closing a listener resets
        the connections in its queue, which clients see as a failed request."""
        queued = []
        self.listener.setblocking(False)
        try:
            while True:
                try:
                    queued.append(self.listener.accept()[0])
                except OSError:  # BlockingIOError: the queue is empty
                    break
        finally:
            self.listener.close()
        factory = functools.partial(self.config.http_protocol_class, config=self.config,
                                    server_state=self.server_state,
                                    app_state=self.lifespan.state)
        for connection in queued:
            try:
                await loop.connect_accepted_socket(factory, connection)
            except OSError:
                connection.close()
        if queued:
            logger.info("took in %d connection(s) queued at shutdown", len(queued))
