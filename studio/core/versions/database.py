"""The registry's SQLite database: its tables, and connections that turn SQLite's failures into
sentences.

WAL mode lets readers read while one writer writes; every change runs in `BEGIN IMMEDIATE`, which
takes the write lock before reading what it will change (the next version number, where an alias
points), so studio windows and `slipway` commands writing at once take turns instead of
overwriting each other. A writer waits up to BUSY_TIMEOUT_S for its turn.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from studio.core.errors import ExitStatus, StudioError, first_line
from studio.core.files import write_error

BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 1

TABLES = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    file_name TEXT NOT NULL,
    format TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    created_by TEXT NOT NULL,
    source_path TEXT NOT NULL,
    step TEXT NOT NULL,
    parameters TEXT NOT NULL DEFAULT '{}',
    parent_name TEXT,
    parent_version INTEGER,
    schema_json TEXT NOT NULL,
    parity_json TEXT,
    report_json TEXT,
    notes TEXT NOT NULL DEFAULT '',
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS tags (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (version_id, key)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TABLE IF NOT EXISTS alias_moves (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    from_version INTEGER,
    to_version INTEGER,
    action TEXT NOT NULL,
    user TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alias_moves_by_alias ON alias_moves (name, alias, id);
"""


class RegistryError(StudioError):
    """The registry's database or a stored model file cannot be used (damaged, missing, busy)."""

    exit_status = ExitStatus.FAILED


def _damaged(path: Path, exc: sqlite3.Error) -> RegistryError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return RegistryError(
            f"The version registry stayed busy for {BUSY_TIMEOUT_S:.0f} s: another Slipway window "
            "or command is writing to it.", "Try again in a moment.", detail=repr(exc))
    return RegistryError(
        f"The version registry's database is damaged ({first_line(exc)}): {path}.",
        f"Move it aside (for example, rename it to {path.name}.damaged) and try again: Slipway "
        "starts a new, empty registry. The stored model files stay where they are; open a model "
        "again to register it.", detail=repr(exc))


def _use_wal(connection: sqlite3.Connection) -> None:
    """Put the database in WAL mode (kept in the file from then on). SQLite answers "locked" at
    once, without waiting out the busy timeout, when another connection holds the file while the
    mode changes, as every process opening a new registry at the same moment does; so this
    waits here, as long as the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Database:
    def __init__(self, path: Path):
        self.path = path

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, self.path) from exc
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                _use_wal(connection)
                connection.executescript(f"BEGIN IMMEDIATE; {TABLES} "
                                         f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except BaseException:
            connection.close()
            raise
        return connection

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = self._open()
            try:
                yield connection
            finally:
                connection.close()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding the write lock from its first read: committed when the block
        ends, rolled back when it raises."""
        try:
            connection = self._open()
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            finally:
                connection.close()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from exc

    def check(self) -> list[str]:
        """What SQLite's integrity check finds wrong (nothing: an empty list)."""
        with self.reading() as connection:
            found = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        return [] if found == ["ok"] else found
