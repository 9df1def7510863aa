"""SQLite, the one seam: how intake opens a database file, writes to it, and migrates it.

Used by the account store and the catalog (one database file each); no other module
imports ``sqlite3``.

Rules:
- The files are the owner's only (0600, also fixed on open): password hashes and the
  catalog of every member's files are nobody else's business.
- Every connection is set up alike: WAL (readers never wait for the writer), ``synchronous =
  FULL`` (a committed write survives a power cut), foreign keys enforced, a 30 s busy
  timeout, and no implicit transactions (``isolation_level=None``): a write says where it
  begins and ends.
- A write is one short ``BEGIN IMMEDIATE`` transaction: the write lock is taken at once, so
  two writers never deadlock upgrading a read; any exception rolls it back whole.
- Rows are ``sqlite3.Row``: by column name or by index.
- ``Pool`` owns a database's connections for a long-lived object used by many threads
  (the catalog): a thread borrows one for a statement or a transaction and gives it back;
  at most ``idle`` stay open between uses, the rest are closed at once. A thread that is
  gone holds nothing (a connection per thread, kept until shutdown, leaked two
  descriptors per short-lived session thread). A nested borrow on the same thread gets
  the connection it already holds, so a read inside a write sees that write.
- A schema is a tuple of numbered migrations, applied in order in one transaction and
  recorded in ``PRAGMA user_version``; a file written by a newer intake is refused
  (``UsageError``), never rewritten. A migration is split into whole statements
  (``sqlite3.complete_statement``), so a trigger's ``BEGIN ... END`` body stays one.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from intake.core.errors import UsageError

Connection = sqlite3.Connection
Row = sqlite3.Row


def open_connection(path: Path) -> Connection:
    """A connection set up as the rules say; the caller closes it.

    It may be closed from another thread than the one that opened it (``Catalog.close``).
    """
    _owner_only(path)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _owner_only(path: Path) -> None:
    """The database and its WAL and shared-memory files: 0600, never readable by others.

    A new file is created 0600 before SQLite opens it (SQLite gives its -wal and -shm
    files the database's mode); an existing one with a wider mode is narrowed.
    """
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
    for name in (str(path), f"{path}-wal", f"{path}-shm"):
        try:
            mode = os.stat(name).st_mode
        except FileNotFoundError:
            continue
        if stat.S_IMODE(mode) & 0o077:
            os.chmod(name, 0o600)


class Pool:
    """The connections of one database file; see the rules. ``close`` closes them all."""

    def __init__(self, path: Path, idle: int = 4) -> None:
        self._path = path
        self._max_idle = idle
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._held = threading.local()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for the length of a ``with`` block (this thread's, if it holds one)."""
        held: Connection | None = getattr(self._held, "db", None)
        if held is not None:
            yield held
            return
        with self._lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = open_connection(self._path)
        self._held.db = db
        try:
            yield db
        finally:
            self._held.db = None
            with self._lock:
                keep = not self._closed and len(self._idle) < self._max_idle
                if keep:
                    self._idle.append(db)
            if not keep:
                db.close()

    def close(self) -> None:
        """Close the idle connections; one still borrowed is closed when it is given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()


@contextmanager
def connect(path: Path) -> Iterator[Connection]:
    """A connection for the length of a ``with`` block."""
    db = open_connection(path)
    try:
        yield db
    finally:
        db.close()


@contextmanager
def transaction(db: Connection) -> Iterator[Connection]:
    """One write transaction on ``db``, taken at once; committed unless the block raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: Connection, path: Path, migrations: Sequence[str]) -> None:
    """Bring the file to ``len(migrations)``, applying what it lacks (one transaction)."""
    latest = len(migrations)
    with transaction(db):
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > latest:
            raise UsageError(
                f"{path}: written by a newer intake (schema {version}, this one knows {latest})"
            )
        for number in range(version, latest):
            for statement in statements(migrations[number]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")


def statements(script: str) -> list[str]:
    """The whole statements of ``script``, in order (a trigger's body is not split)."""
    done: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                done.append(pending)
            pending = ""
    if pending.strip(" \t\n;"):
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]!r}")
    return done
