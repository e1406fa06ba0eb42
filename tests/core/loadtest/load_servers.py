"""Real HTTP servers for the load tester's tests, each on 127.0.0.1 on a free port, on its own
event loop thread.

`HttpServer` is a small HTTP/1.1 keep-alive server (httptools parses the requests) whose answers come
from a handler coroutine, so a test decides what the server does: answer fast, stall, fail, never
answer, close the connection, or send garbage. It counts what it received and what it answered, and
how long its event loop ever stood still (a busy machine pauses any server), so a test can hold the
load tester's report against the server's own account.

`AsgiServer` runs an ASGI app (the real Slipway server) under uvicorn in a thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self

import httptools

KEPT_REQUESTS = 1000
"""Requests kept for a test to read: a load test sends tens of thousands, and keeping them all
makes the garbage collector stop the server for a stall's length."""

REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Names in lower case."""
    body: bytes
    received: float
    """time.perf_counter() when the whole request had arrived."""
    index: int
    """0 for the first request the server received, 1 for the second, ..."""


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b'{"label":"setosa"}'
    headers: tuple[tuple[str, str], ...] = ()


class Close:
    """Close the connection without answering."""


class Raw(bytes):
    """Bytes written to the connection as they are (not HTTP)."""


Reply = Answer | Close | Raw
Handler = Callable[[Request], Awaitable[Reply]]


async def answer_ok(request: Request) -> Reply:
    return Answer()


class _Protocol(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task] = set()
        self._reset()

    def _reset(self) -> None:
        self.url = bytearray()
        self.body = bytearray()
        self.headers: dict[str, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self.server.connections_made += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for task in list(self.tasks):
            task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()  # type: ignore[union-attr]

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        request = Request(self.parser.get_method().decode(), self.url.decode("latin-1"),
                          dict(self.headers), bytes(self.body), time.perf_counter(),
                          self.server.received)
        self.server.received += 1
        if len(self.server.requests) < KEPT_REQUESTS:
            self.server.requests.append(request)
        task = asyncio.get_running_loop().create_task(self._respond(request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _respond(self, request: Request) -> None:
        reply = await self.server.handler(request)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if isinstance(reply, Close):
            self.server.closed += 1
            transport.close()
        elif isinstance(reply, Raw):
            transport.write(bytes(reply))
        else:
            self.server.statuses[reply.status] += 1
            head = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}",
                    "Content-Type: application/json", f"Content-Length: {len(reply.body)}",
                    *(f"{name}: {value}" for name, value in reply.headers)]
            transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + reply.body)


class HttpServer:
    """`with HttpServer(handler) as server:` serves at `server.url` until the block ends.

    The counters are written on the server's thread and read by the test once the load test that
    caused them has returned (every answer it counted was written, and so counted, before).
    """

    def __init__(self, handler: Handler = answer_ok) -> None:
        self.handler = handler
        self.received = 0
        """Complete requests received."""
        self.requests: list[Request] = []
        """The first KEPT_REQUESTS requests received."""
        self.statuses: collections.Counter[int] = collections.Counter()
        """Answers written, by status."""
        self.closed = 0
        """Connections closed instead of answering."""
        self.connections_made = 0
        self.connections: set[_Protocol] = set()
        self.longest_pause_s = 0.0
        """The longest its event loop stood still: the machine ran something else meanwhile."""
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._serve, name="test-http-server", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._failure is not None:
            raise self._failure
        return self

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(
                loop.create_server(lambda: _Protocol(self), "127.0.0.1", 0))
        except OSError as exc:  # reported to start()
            self._failure = exc
            self._started.set()
            loop.close()
            return
        self.port = server.sockets[0].getsockname()[1]
        loop.create_task(self._watch_pauses())
        self._started.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for protocol in list(self.connections):
                protocol.transport.abort()  # type: ignore[union-attr]
            loop.run_until_complete(server.wait_closed())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _watch_pauses(self) -> None:
        tick = 0.005
        while True:
            due = time.perf_counter() + tick
            await asyncio.sleep(tick)
            self.longest_pause_s = max(self.longest_pause_s, time.perf_counter() - due)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            assert not self._thread.is_alive(), "the test server did not stop"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AsgiServer:
    """An ASGI app served by uvicorn on a free port, on its own thread.

    `ready` is a coroutine function run on the server's loop once it is listening (the Slipway app's
    `wait_ready`); `start()` returns when it has finished.
    """

    def __init__(self, app: Any, ready: Callable[[], Awaitable[Any]] | None = None) -> None:
        import uvicorn

        self.app = app
        self._ready = ready
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        # Listening from the start: a client that comes before uvicorn accepts waits in the
        # backlog instead of being refused.
        self._socket.listen(128)
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _main(self) -> None:
        serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        try:
            if self._ready is not None:
                ready = asyncio.create_task(self._ready())
                done, _ = await asyncio.wait({serving, ready}, timeout=60,
                                             return_when=asyncio.FIRST_COMPLETED)
                if ready not in done:
                    ready.cancel()
                    raise RuntimeError("the ASGI server did not become ready")
                ready.result()
        except Exception as exc:  # noqa: BLE001 - whatever stops it is raised by start()
            self._failure = exc
            self._server.should_exit = True
        finally:
            self._started.set()
        await serving

    def _serve(self) -> None:
        # The loop uvicorn itself would choose (uvloop where installed), which also sets
        # TCP_NODELAY on accepted connections: without it, uvicorn's separate writes of the head
        # and the body of a response meet the client's delayed ACK, 40 ms a request.
        factory = self._server.config.get_loop_factory() or asyncio.new_event_loop
        loop = factory()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    def start(self) -> AsgiServer:
        self._thread = threading.Thread(target=self._serve, name="test-asgi-server", daemon=True)
        self._thread.start()
        self._started.wait(60)
        if self._failure is not None:
            self.stop()
            raise self._failure
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
            assert not self._thread.is_alive(), "the ASGI server did not stop"
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def refused_address() -> tuple[socket.socket, str]:
    """A socket bound to a port but not listening, and its URL: connecting there is refused, and
    no other process can take the port while the socket is held."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def unaccepting_address() -> Iterator[str]:
    """The URL of a listener whose accept queue is full and that never accepts: a new connection
    neither succeeds nor fails for about a second (the kernel drops its SYN and the client sends it
    again later), as with a server too overloaded to accept."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(listener.getsockname())
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


class RateLimited:
    """Answers 503 while more than `limit` requests per second arrived over the last `window_s`:
    a server whose capacity is known."""

    def __init__(self, limit: float = 300.0, window_s: float = 0.5) -> None:
        self.limit, self.window_s = limit, window_s
        self.arrivals: collections.deque[float] = collections.deque()

    async def __call__(self, request: Request) -> Answer:
        self.arrivals.append(request.received)
        while self.arrivals[0] < request.received - self.window_s:
            self.arrivals.popleft()
        if len(self.arrivals) / self.window_s > self.limit:
            return Answer(503, b'{"error":"overloaded"}', (("Retry-After", "1"),))
        return Answer()
