"""Opening the catalog and reading it; the few steps every recorded transition shares.

``CatalogQueries`` is the base of ``intake.adapters.catalog.catalog.Catalog``: the recording mixins
(``catalog_arrivals``, ``catalog_fates``) write through ``_write``, ``_row``, ``_move`` and
``_event`` here.

Rules:
- Connections come from a small pool the catalog owns (``intake.adapters.sqlite.Pool``):
  server threads, the watchdog thread, a hashing worker and CLI processes use the catalog
  at once; a thread borrows a connection for one read or one write transaction and gives
  it back, so a short-lived session thread leaves nothing open. ``close`` closes the pool.
- Reads take no transaction: WAL gives each statement a consistent snapshot. A write is one
  short ``BEGIN IMMEDIATE`` transaction that re-reads what it depends on before writing.
- ``_move`` is the only place a state changes: along ``intake.core.model.ALLOWED_TRANSITIONS``
  or refused with ``IllegalTransition``; moving to the current state is a no-op (False).
- Every event is stamped with the injected clock (never the wall clock here).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from intake.adapters import sqlite
from intake.adapters.catalog.model import (
    COLUMNS,
    LIVE_SQL,
    MIGRATIONS,
    OPEN_SQL,
    Entry,
    FileStat,
    IllegalTransition,
    Known,
    entry_from_row,
    known_from_row,
    stat_values,
    subtree,
)
from intake.core.clock import Clock, isoformat, parse_iso
from intake.core.errors import NotFound
from intake.core.model import ArrivalState, can_move


class CatalogQueries:
    """The catalog database, read side; thread-safe (a pool of connections)."""

    def __init__(self, path: Path, clock: Clock, data_dir: Path | str | None = None) -> None:
        self._path = path
        self._clock = clock
        # Disk paths are stored relative to data/ (by default the instance's, beside state/).
        self._root = os.path.realpath(
            data_dir if data_dir is not None else path.parent.parent / "data"
        )
        self._pool = sqlite.Pool(path)
        with self._pool.connection() as db:
            sqlite.migrate(db, path, MIGRATIONS)

    # -- plumbing ------------------------------------------------------------------

    def _rel(self, disk_path: str) -> str:
        """What is stored for ``disk_path``: relative to data/ (absolute if outside it)."""
        root = self._root
        if disk_path.startswith(root + os.sep):
            return disk_path[len(root) + 1 :]
        return disk_path

    def _abs(self, stored: str) -> str:
        """The disk path of a stored one, in this instance's data/ wherever it now lives."""
        return stored if os.path.isabs(stored) else os.path.join(self._root, stored)

    def _entry(self, row: sqlite.Row) -> Entry:
        entry = entry_from_row(row)
        return dataclasses.replace(entry, disk_path=self._abs(entry.disk_path))

    def _known_entry(self, row: sqlite.Row) -> Known:
        known = known_from_row(row)
        return dataclasses.replace(known, disk_path=self._abs(known.disk_path))

    def _subtree(self, folder: str) -> tuple[str, str] | None:
        """Stored bounds of the paths below ``folder`` (None: the whole of data/)."""
        rel = self._rel(folder.rstrip("/"))
        if folder.rstrip("/") == self._root:
            return None
        return subtree(rel)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite.Row]:
        """Every row of one read statement, on a borrowed connection given back at once."""
        with self._pool.connection() as db:
            return db.execute(sql, args).fetchall()

    def _query_one(self, sql: str, args: Sequence[Any] = ()) -> sqlite.Row | None:
        rows = self._query(sql, args)
        return rows[0] if rows else None

    @contextmanager
    def _write(self) -> Iterator[sqlite.Connection]:
        """One short write transaction on a borrowed connection."""
        with self._pool.connection() as db, sqlite.transaction(db):
            yield db

    def close(self) -> None:
        """Close the pooled connections (call once no thread uses the catalog)."""
        self._pool.close()

    def _now(self) -> str:
        return isoformat(self._clock.now())

    def _event(
        self,
        db: sqlite.Connection,
        entry_id: int,
        event: str,
        at: str | None = None,
        **detail: Any,
    ) -> None:
        db.execute(
            "INSERT INTO events (entry_id, at, event, detail) VALUES (?, ?, ?, ?)",
            (entry_id, at or self._now(), event, json.dumps(detail, sort_keys=True)),
        )

    def _row(self, db: sqlite.Connection, entry_id: int) -> sqlite.Row:
        row = db.execute(f"SELECT {COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()  # noqa: S608
        if row is None:
            raise NotFound(f"no catalog entry {entry_id}")
        return row  # type: ignore[no-any-return]

    def _move(
        self, db: sqlite.Connection, entry_id: int, target: ArrivalState, **columns: Any
    ) -> bool:
        """Move an entry to ``target`` (and set ``columns``); False if it was there already."""
        current = ArrivalState(self._row(db, entry_id)["state"])
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

    def _rows_at(self, db: sqlite.Connection, disk_path: str, states_sql: str) -> list[sqlite.Row]:
        """Every column of the entries at ``disk_path`` in ``states_sql``, oldest first."""
        return db.execute(
            f"SELECT * FROM entries WHERE disk_path = ? AND state IN {states_sql} ORDER BY id",  # noqa: S608
            (self._rel(disk_path),),
        ).fetchall()

    @staticmethod
    def _set_baseline(db: sqlite.Connection, entry_id: int, stat: FileStat) -> None:
        db.execute(
            "UPDATE entries SET st_size = ?, st_mtime_ns = ?, st_ino = ?, st_ctime_ns = ?"
            " WHERE id = ?",
            (*stat_values(stat), entry_id),
        )

    # -- reading -------------------------------------------------------------------

    def get(self, entry_id: int) -> Entry:
        with self._pool.connection() as db:
            return self._entry(self._row(db, entry_id))

    def entries(self, account: str | None = None, include_attempts: bool = False) -> list[Entry]:
        """Every catalogued arrival, oldest first; uploads that never completed only on request."""
        where, args = [], []
        if account is not None:
            where.append("account = ?")
            args.append(account)
        if not include_attempts:
            where.append("state NOT IN ('receiving', 'interrupted')")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(
            f"SELECT {COLUMNS} FROM entries {clause} ORDER BY received_at, id",  # noqa: S608
            args,
        )
        return [self._entry(r) for r in rows]

    def live_entries(self) -> list[Entry]:
        """Arrivals whose file is still expected on disk: received, forwarded, altered."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM entries WHERE state IN {LIVE_SQL}"  # noqa: S608
            " ORDER BY received_at, id"
        )
        return [self._entry(r) for r in rows]

    def at_path(self, disk_path: str) -> list[Entry]:
        """Entries receiving or live at ``disk_path`` (normally none or one)."""
        with self._pool.connection() as db:
            return [self._entry(r) for r in self._rows_at(db, disk_path, OPEN_SQL)]

    def known(self, under: str | None = None) -> list[Known]:
        """Receiving and live entries (below the folder ``under``), for a scan."""
        if under is None:
            return self._known("", ())
        bounds = self._subtree(under)
        if bounds is None:
            return self._known("", ())
        return self._known(" AND disk_path >= ? AND disk_path < ?", bounds)

    def known_at(self, disk_path: str) -> list[Known]:
        """Receiving and live entries at ``disk_path`` (normally none or one), for a check."""
        return self._known(" AND disk_path = ?", (self._rel(disk_path),))

    def _known(self, clause: str, args: tuple[str, ...]) -> list[Known]:
        sql = (
            "SELECT id, disk_path, state, sha256, st_size, st_mtime_ns, st_ino, st_ctime_ns,"  # noqa: S608
            f" destroy_intent FROM entries WHERE state IN {OPEN_SQL}{clause} ORDER BY id"
        )
        return [self._known_entry(row) for row in self._query(sql, args)]

    def history(self, entry_id: int) -> list[dict[str, Any]]:
        """The entry's events in order: ``at`` (aware UTC), ``event``, ``detail`` (a dict)."""
        with self._pool.connection() as db:
            self._row(db, entry_id)
            rows = db.execute(
                "SELECT at, event, detail FROM events WHERE entry_id = ? ORDER BY id", (entry_id,)
            ).fetchall()
        return [
            {"at": parse_iso(r["at"]), "event": r["event"], "detail": json.loads(r["detail"])}
            for r in rows
        ]

    def pending_destroy_intents(self) -> list[Entry]:
        """Entries whose destruction was intended but not recorded (a sweeper was cut)."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM entries WHERE destroy_intent IS NOT NULL"  # noqa: S608
            f" AND state IN {LIVE_SQL} ORDER BY id"
        )
        return [self._entry(r) for r in rows]

    def counts_by_state(self) -> dict[str, int]:
        """How many entries are in each state (every state named, zero included)."""
        counts = {state.value: 0 for state in ArrivalState}
        for row in self._query("SELECT state, COUNT(*) FROM entries GROUP BY state"):
            counts[str(row[0])] = int(row[1])
        return counts

    def forward_queue(self) -> tuple[int, datetime | None]:
        """Outbox files received and not yet forwarded: how many, and the oldest arrival."""
        (row,) = self._query(
            "SELECT COUNT(*), MIN(received_at) FROM entries"
            " WHERE area = 'outbox' AND state = 'received'"
        )
        return int(row[0]), parse_iso(row[1]) if row[1] else None
