"""The catalog database as its parts see it: borrowing a connection, the shared steps.

One ``Store`` is made by ``intake.adapters.catalog.catalog.Catalog`` and handed to each of its
parts (``arrivals``, ``fates``, ``certificates``, ``queries``): they read through ``read``,
write through ``write``, ``row``, ``move`` and ``event`` here, and map stored paths with
``rel`` / ``entry``. It holds the catalog's pool but never closes it (the catalog does).

Rules:
- Connections come from the pool the catalog owns (``intake.adapters.sqlite.Pool``): a thread
  borrows one for one read or one write transaction and gives it back, so a short-lived
  session thread leaves nothing open.
- Reads take no transaction: WAL gives each statement a consistent snapshot. A write is one
  short ``BEGIN IMMEDIATE`` transaction that re-reads what it depends on before writing.
- ``move`` is the only place a state changes: along ``intake.core.model.ALLOWED_TRANSITIONS``
  or refused with ``IllegalTransition``; moving to the current state is a no-op (False).
- Every event is stamped with the injected clock (never the wall clock here).
- ``disk_path`` is stored relative to the data root and handed out absolute (``rel``,
  ``abs``, ``entry``, ``known``).
- ``rows_read`` counts the rows every ``read`` handed back since the catalog was opened: what
  one request costs the catalog, observable without a clock (the receipts tests read it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from intake.adapters import sqlite
from intake.adapters.catalog.model import (
    COLUMNS,
    Entry,
    FileStat,
    IllegalTransition,
    Known,
    entry_from_row,
    known_from_row,
    stat_values,
    subtree,
)
from intake.core.clock import Clock, isoformat
from intake.core.errors import NotFound
from intake.core.model import ArrivalState, can_move


class Store:
    """The pool, the clock and the data root the catalog's parts share; see the rules."""

    def __init__(self, pool: sqlite.Pool, clock: Clock, root: str) -> None:
        self._pool = pool
        self._clock = clock
        self._root = root
        self._count_lock = threading.Lock()
        self._rows_read = 0

    @property
    def rows_read(self) -> int:
        """Rows handed back by ``read`` so far (see the rules)."""
        return self._rows_read

    # -- paths ---------------------------------------------------------------------

    def rel(self, disk_path: str) -> str:
        """What is stored for ``disk_path``: relative to data/ (absolute if outside it)."""
        root = self._root
        if disk_path.startswith(root + os.sep):
            return disk_path[len(root) + 1 :]
        return disk_path

    def abs(self, stored: str) -> str:
        """The disk path of a stored one, in this instance's data/ wherever it now lives."""
        return stored if os.path.isabs(stored) else os.path.join(self._root, stored)

    def entry(self, row: sqlite.Row) -> Entry:
        entry = entry_from_row(row)
        return dataclasses.replace(entry, disk_path=self.abs(entry.disk_path))

    def known(self, row: sqlite.Row) -> Known:
        known = known_from_row(row)
        return dataclasses.replace(known, disk_path=self.abs(known.disk_path))

    def subtree(self, folder: str) -> tuple[str, str] | None:
        """Stored bounds of the paths below ``folder`` (None: the whole of data/)."""
        rel = self.rel(folder.rstrip("/"))
        if folder.rstrip("/") == self._root:
            return None
        return subtree(rel)

    # -- connections -----------------------------------------------------------------

    def connection(self) -> AbstractContextManager[sqlite.Connection]:
        """A borrowed connection, given back at the end of the ``with`` block."""
        return self._pool.connection()

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite.Row]:
        """Every row of one read statement, on a borrowed connection given back at once."""
        with self._pool.connection() as db:
            rows: list[sqlite.Row] = db.execute(sql, args).fetchall()
        with self._count_lock:
            self._rows_read += len(rows)
        return rows

    def read_one(self, sql: str, args: Sequence[Any] = ()) -> sqlite.Row | None:
        rows = self.read(sql, args)
        return rows[0] if rows else None

    @contextmanager
    def write(self) -> Iterator[sqlite.Connection]:
        """One short write transaction on a borrowed connection."""
        with self._pool.connection() as db, sqlite.transaction(db):
            yield db

    # -- the steps every recorded transition shares ----------------------------------

    def now(self) -> str:
        return isoformat(self._clock.now())

    def event(
        self,
        db: sqlite.Connection,
        entry_id: int,
        event: str,
        at: str | None = None,
        **detail: Any,
    ) -> None:
        db.execute(
            "INSERT INTO events (entry_id, at, event, detail) VALUES (?, ?, ?, ?)",
            (entry_id, at or self.now(), event, json.dumps(detail, sort_keys=True)),
        )

    @staticmethod
    def row(db: sqlite.Connection, entry_id: int) -> sqlite.Row:
        row = db.execute(f"SELECT {COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()  # noqa: S608
        if row is None:
            raise NotFound(f"no catalog entry {entry_id}")
        return row  # type: ignore[no-any-return]

    def move(
        self, db: sqlite.Connection, entry_id: int, target: ArrivalState, **columns: Any
    ) -> bool:
        """Move an entry to ``target`` (and set ``columns``); False if it was there already."""
        current = ArrivalState(self.row(db, entry_id)["state"])
        if current is target:
            return False
        if not can_move(current, target):
            raise IllegalTransition(
                f"catalog entry {entry_id}: {current.value} cannot become {target.value}"
            )
        assignments = "".join(f", {name} = ?" for name in columns)
        db.execute(
            f"UPDATE entries SET state = ?{assignments} WHERE id = ?",  # noqa: S608
            (target.value, *columns.values(), entry_id),
        )
        return True

    def rows_at(self, db: sqlite.Connection, disk_path: str, states_sql: str) -> list[sqlite.Row]:
        """Every column of the entries at ``disk_path`` in ``states_sql``, oldest first."""
        return db.execute(
            f"SELECT * FROM entries WHERE disk_path = ? AND state IN {states_sql} ORDER BY id",  # noqa: S608
            (self.rel(disk_path),),
        ).fetchall()

    @staticmethod
    def set_baseline(db: sqlite.Connection, entry_id: int, stat: FileStat) -> None:
        db.execute(
            "UPDATE entries SET st_size = ?, st_mtime_ns = ?, st_ino = ?, st_ctime_ns = ?"
            " WHERE id = ?",
            (*stat_values(stat), entry_id),
        )
