"""One Slipway Studio per person: a second launch hands its model to the running window.

A file manager's "Open with Slipway Studio", a file dropped on the launcher and `slipway MODEL` in
a terminal all start a new process. When a studio already runs, that process sends the model's
path to it over a local socket and exits, and the running window opens the model and comes to the
front, instead of a second window starting its own servers and registry writes.

Who is first is settled by a lock file (QLockFile) rather than by whether the socket answers: two
launches at the same moment cannot both become the running studio, and a lock left by a crashed
studio is recognised as stale (its process is gone) and taken over, socket and all. The lock and
the socket sit in the person's private runtime folder ($XDG_RUNTIME_DIR, else the studio's cache
folder), and the socket accepts only its owner. Their name carries a digest of the studio's data
folder: studios that keep separate registries (another XDG_DATA_HOME) run side by side.

The message is one line of JSON, {"model": absolute path or null, "activation_token": ...}. The
token is the one the desktop gave the second launch (XDG_ACTIVATION_TOKEN): on Wayland a window
may only take the focus with a fresh one, so the running studio uses it to come to the front.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QLockFile, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from studio.core.workspace import cache_root, data_root

log = logging.getLogger(__name__)

APP_ID = "io.slipway.Studio"
"""The reverse-DNS id of the .desktop file, the AppStream component and the icon."""
MAX_MESSAGE_BYTES = 64 * 1024
"""A path, a token and some JSON; anything longer is not from a Slipway launch."""
CONNECT_WINDOW_S = 5.0
"""How long a second launch keeps trying: the running studio may have taken the lock a moment
ago and not be listening yet."""


def rendezvous_path() -> Path:
    """Where the lock and the socket of this person's studio live (without a suffix)."""
    folder = Path(os.environ.get("XDG_RUNTIME_DIR") or cache_root())
    digest = hashlib.sha256(str(data_root()).encode()).hexdigest()[:12]
    return folder / f"{APP_ID}-{digest}"


class SingleInstance(QObject):
    """`claim()` decides whether this process is the running studio; if so it listens and emits
    `model_requested` for every later launch, else `hand_over()` sends the launch to it."""

    model_requested = Signal(object)
    """The path (str) a later launch asked to open, or None for a launch without a model."""

    def __init__(self, path: Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.path = path or rendezvous_path()
        self.socket_path = str(self.path.with_name(self.path.name + ".socket"))
        self._lock = QLockFile(str(self.path.with_name(self.path.name + ".lock")))
        # The lock is held for the studio's whole life: only a dead owner makes it stale.
        self._lock.setStaleLockTime(0)
        self._server: QLocalServer | None = None

    def claim(self) -> bool:
        """True when this process is now the running studio (or the rendezvous cannot be made, and
        it runs on its own); False when another studio holds it and should get this launch."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            log.warning("no single-instance rendezvous in %s: %s", self.path.parent, exc)
            return True
        if not self._lock.tryLock(0):
            if self._lock.error() == QLockFile.LockError.LockFailedError:
                return False
            log.warning("cannot take %s (%s): running without a single-instance rendezvous",
                        self._lock.fileName(), self._lock.error().name)
            return True
        # Holding the lock, any socket file left here belongs to a studio that is gone.
        QLocalServer.removeServer(self.socket_path)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        if not self._server.listen(self.socket_path):
            log.warning("cannot listen on %s (%s): later launches will open their own window",
                        self.socket_path, self._server.errorString())
        return True

    def hand_over(self, model: str | None) -> bool:
        """Send this launch to the running studio; False when it did not take it in time."""
        message = {"model": os.path.abspath(model) if model else None,
                   "activation_token": os.environ.get("XDG_ACTIVATION_TOKEN")}
        socket = QLocalSocket()
        deadline = time.monotonic() + CONNECT_WINDOW_S
        while True:
            socket.connectToServer(self.socket_path)
            if socket.waitForConnected(500):
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        socket.write(QByteArray(json.dumps(message).encode() + b"\n"))
        sent = socket.waitForBytesWritten(2000) or socket.bytesToWrite() == 0
        socket.disconnectFromServer()
        if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            socket.waitForDisconnected(1000)
        return sent

    def release(self) -> None:
        """Stop listening and let go of the lock (the process ending does the same)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._lock.unlock()

    # --- the running studio's side --------------------------------------------------------------

    def _accept(self) -> None:
        while self._server is not None and self._server.hasPendingConnections():
            connection = self._server.nextPendingConnection()
            received = bytearray()
            connection.readyRead.connect(lambda c=connection, b=received: self._read(c, b))
            connection.disconnected.connect(connection.deleteLater)
            if connection.bytesAvailable():
                self._read(connection, received)

    def _read(self, connection: QLocalSocket, received: bytearray) -> None:
        received += connection.readAll().data()
        if b"\n" not in received:
            if len(received) > MAX_MESSAGE_BYTES:
                connection.abort()
            return
        connection.disconnectFromServer()
        line = bytes(received).split(b"\n", 1)[0]
        received.clear()
        try:
            message = json.loads(line)
            model, token = message.get("model"), message.get("activation_token")
        except (ValueError, AttributeError):
            log.warning("ignored a malformed message on %s", self.socket_path)
            return
        if not (model is None or (isinstance(model, str) and os.path.isabs(model))):
            log.warning("ignored a launch asking for %r: not an absolute path", model)
            return
        if isinstance(token, str) and token:
            # Qt's Wayland window takes the focus with the token it finds here when activated.
            os.environ["XDG_ACTIVATION_TOKEN"] = token
        self.model_requested.emit(model)
