"""The blocks (bans) of addresses and networks, kept in ``state/bans.db`` for every process.

``serve`` writes a block as it decides it; ``intake ban list`` reads them and ``intake ban
lift`` deletes one, from another process. A ``serve`` that holds blocks asks the file
whether another process changed it (SQLite's ``PRAGMA data_version``, a counter read
without touching the disk) before each decision, so a lift takes effect at its next
connection; a restart or a SIGHUP keeps the blocks.

Rules:
- One row per address or network (``key``, its text as the audit records write it):
  the current or last block, with the number of blocks in a row (``blocks``, which sets
  the length of the next one). A row stays after its block ended so that the next block
  of a source that keeps failing is longer; rows older than ``KEEP`` are pruned.
- SQLite through ``intake.adapters.sqlite`` (0600, WAL, synchronous FULL). A database
  that cannot be read or written is a ``BanStoreError`` (exit 1 for a command); ``serve``
  logs it and keeps its blocks in memory.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from intake.adapters import sqlite
from intake.core.clock import isoformat, parse_iso
from intake.core.errors import IntakeError

log = logging.getLogger("intake.bans")
BANS_DB = "bans.db"
KEEP = _dt.timedelta(days=1)  # how long a source's past blocks make its next one longer
_MIGRATIONS = (
    """
    CREATE TABLE bans (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('address', 'network')),
        reason TEXT NOT NULL,
        protocol TEXT NOT NULL,
        since TEXT NOT NULL,
        until TEXT NOT NULL,
        failures REAL NOT NULL,
        blocks INTEGER NOT NULL
    )
    """,
)


class BanStoreError(IntakeError):
    """``state/bans.db`` cannot be read or written."""


@dataclass(frozen=True)
class Ban:
    """One block: ``key`` (an address or a network) refused from ``since`` to ``until``."""

    key: str
    kind: str  # "address" | "network"
    reason: str
    protocol: str
    since: _dt.datetime
    until: _dt.datetime
    failures: float  # the score that caused it, in failures (a wrong password = 1)
    blocks: int  # blocks in a row, this one included

    def active(self, now: _dt.datetime) -> bool:
        return now < self.until


class BanStore:
    """``state/bans.db``: one connection, used under a lock by any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite.Connection | None = None
        self._version: int | None = None

    def _open(self) -> sqlite.Connection:
        if self._db is None:
            db = sqlite.open_connection(self.path)
            sqlite.migrate(db, self.path, _MIGRATIONS)
            self._db = db
        return self._db

    def _fail(self, what: str, exc: Exception) -> BanStoreError:
        return BanStoreError(f"{self.path}: cannot {what} the blocks ({exc})")

    def all(self) -> list[Ban]:
        """Every row, current and past blocks, oldest first."""
        with self._lock:
            try:
                rows = self._open().execute("SELECT * FROM bans ORDER BY since").fetchall()
            except Exception as exc:  # sqlite3.Error, OSError
                raise self._fail("read", exc) from None
        return [
            Ban(
                key=row["key"],
                kind=row["kind"],
                reason=row["reason"],
                protocol=row["protocol"],
                since=parse_iso(row["since"]),
                until=parse_iso(row["until"]),
                failures=float(row["failures"]),
                blocks=int(row["blocks"]),
            )
            for row in rows
        ]

    def put(self, ban: Ban, now: _dt.datetime) -> None:
        """Write ``ban`` (replacing the key's row) and prune rows older than ``KEEP``."""
        with self._lock:
            try:
                db = self._open()
                with sqlite.transaction(db):
                    db.execute(
                        "INSERT OR REPLACE INTO bans VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            ban.key,
                            ban.kind,
                            ban.reason,
                            ban.protocol,
                            isoformat(ban.since),
                            isoformat(ban.until),
                            ban.failures,
                            ban.blocks,
                        ),
                    )
                    db.execute("DELETE FROM bans WHERE until < ?", (isoformat(now - KEEP),))
            except Exception as exc:
                raise self._fail("write", exc) from None

    def remove(self, key: str) -> bool:
        """Delete ``key``'s row (its block and its past); True if there was one."""
        with self._lock:
            try:
                db = self._open()
                with sqlite.transaction(db):
                    cursor = db.execute("DELETE FROM bans WHERE key = ?", (key,))
            except Exception as exc:
                raise self._fail("write", exc) from None
        return cursor.rowcount > 0

    def changed(self) -> bool:
        """True when another process committed a change since the last call."""
        with self._lock:
            try:
                version = int(self._open().execute("PRAGMA data_version").fetchone()[0])
            except Exception as exc:
                raise self._fail("read", exc) from None
            changed = self._version is not None and version != self._version
            self._version = version
        return changed

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
