"""Reading the catalog: entries, their history, the counts the health gauges show.

``Queries`` is the read side of ``intake.adapters.catalog.catalog.Catalog`` (its ``queries``),
made on the catalog's ``intake.adapters.catalog.store.Store``.

Rules:
- Reads take no transaction: WAL gives each statement a consistent snapshot, on a connection
  borrowed from the catalog's pool and given back at once.
- Nothing here writes: every change is one of the recording parts' (``arrivals``, ``fates``,
  ``certificates``).
- Paths are handed out absolute (stored relative to data/, see ``store``).
- Nothing a session asks for reads an account's whole history: a receipt is one lookup in
  the index ``entries_receipts`` (``RECEIPT_SQL``), a folder of receipts one range of it
  (``RECEIPTS_BELOW_SQL``, ``RECEIPTS_TIME_SQL``), what an area holds one row of ``usage``
  (``USAGE_SQL``); ``tests/test_catalog_scans.py`` checks each plan searches an index.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from intake.adapters.catalog.model import (
    COLUMNS,
    HELD_SQL,
    LIVE_SQL,
    OPEN_SQL,
    Entry,
    Known,
    subtree,
)
from intake.adapters.catalog.store import Store
from intake.core.clock import parse_iso
from intake.core.model import ArrivalState

RECEIPT_SQL = (
    f"SELECT {COLUMNS} FROM entries WHERE account = ? AND path = ? AND {HELD_SQL}"  # noqa: S608
    " ORDER BY received_at DESC, id DESC LIMIT 1"
)
"""The entry a receipt states (the latest held upload at that path): account, path."""
RECEIPTS_BELOW_SQL = (
    f"SELECT {COLUMNS} FROM entries WHERE account = ? AND path >= ? AND path < ?"  # noqa: S608
    f" AND {HELD_SQL} ORDER BY path, received_at, id"
)
"""The entries with a receipt below a folder: account and the folder's bounds."""
RECEIPTS_TIME_SQL = (
    "SELECT MAX(received_at) FROM entries WHERE account = ? AND path >= ? AND path < ?"  # noqa: S608
    f" AND {HELD_SQL}"
)
"""When the latest receipt below a folder was received (NULL: no receipt there)."""
USAGE_SQL = "SELECT bytes FROM usage WHERE account = ? AND area = ?"
"""The bytes an account's area holds (the running total kept by the catalog's triggers)."""


class Queries:
    """The catalog database, read side; thread-safe (a pool of connections)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, entry_id: int) -> Entry:
        with self._store.connection() as db:
            return self._store.entry(self._store.row(db, entry_id))

    def entries(self, account: str | None = None, include_attempts: bool = False) -> list[Entry]:
        """Every catalogued arrival, oldest first; uploads that never completed only on request."""
        where, args = [], []
        if account is not None:
            where.append("account = ?")
            args.append(account)
        if not include_attempts:
            where.append("state NOT IN ('receiving', 'interrupted')")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._store.read(
            f"SELECT {COLUMNS} FROM entries {clause} ORDER BY received_at, id",  # noqa: S608
            args,
        )
        return [self._store.entry(r) for r in rows]

    @property
    def rows_read(self) -> int:
        """Rows the catalog's reads handed back so far (``Store.rows_read``)."""
        return self._store.rows_read

    def receipt(self, account: str, path: str) -> Entry | None:
        """The held upload of ``account`` at ``path`` (one index lookup), or None.

        Held: area ``member``, source ``upload``, state live (what has a receipt).
        """
        row = self._store.read_one(RECEIPT_SQL, (account, path))
        return None if row is None else self._store.entry(row)

    def receipts_below(self, account: str, folder: str) -> list[Entry]:
        """The held uploads of ``account`` strictly below ``folder`` ("/" for all), by path
        then oldest first (one range of the index)."""
        rows = self._store.read(RECEIPTS_BELOW_SQL, (account, *subtree(folder)))
        return [self._store.entry(r) for r in rows]

    def receipts_time(self, account: str, folder: str) -> datetime | None:
        """When the latest held upload below ``folder`` was received; None if none is."""
        row = self._store.read_one(RECEIPTS_TIME_SQL, (account, *subtree(folder)))
        return parse_iso(row[0]) if row is not None and row[0] else None

    def usage(self, account: str, area: str) -> int:
        """The bytes of the live entries of ``account`` in ``area`` (a running total)."""
        row = self._store.read_one(USAGE_SQL, (account, area))
        return int(row[0]) if row is not None else 0

    def live_entries(self) -> list[Entry]:
        """Arrivals whose file is still expected on disk: received, forwarded, altered."""
        rows = self._store.read(
            f"SELECT {COLUMNS} FROM entries WHERE state IN {LIVE_SQL}"  # noqa: S608
            " ORDER BY received_at, id"
        )
        return [self._store.entry(r) for r in rows]

    def at_path(self, disk_path: str) -> list[Entry]:
        """Entries receiving or live at ``disk_path`` (normally none or one)."""
        with self._store.connection() as db:
            return [self._store.entry(r) for r in self._store.rows_at(db, disk_path, OPEN_SQL)]

    def known(self, under: str | None = None) -> list[Known]:
        """Receiving and live entries (below the folder ``under``), for a scan."""
        if under is None:
            return self._known("", ())
        bounds = self._store.subtree(under)
        if bounds is None:
            return self._known("", ())
        return self._known(" AND disk_path >= ? AND disk_path < ?", bounds)

    def known_at(self, disk_path: str) -> list[Known]:
        """Receiving and live entries at ``disk_path`` (normally none or one), for a check."""
        return self._known(" AND disk_path = ?", (self._store.rel(disk_path),))

    def _known(self, clause: str, args: tuple[str, ...]) -> list[Known]:
        sql = (
            "SELECT id, disk_path, state, sha256, st_size, st_mtime_ns, st_ino, st_ctime_ns,"  # noqa: S608
            f" destroy_intent FROM entries WHERE state IN {OPEN_SQL}{clause} ORDER BY id"
        )
        return [self._store.known(row) for row in self._store.read(sql, args)]

    def history(self, entry_id: int) -> list[dict[str, Any]]:
        """The entry's events in order: ``at`` (aware UTC), ``event``, ``detail`` (a dict)."""
        with self._store.connection() as db:
            self._store.row(db, entry_id)
            rows = db.execute(
                "SELECT at, event, detail FROM events WHERE entry_id = ? ORDER BY id", (entry_id,)
            ).fetchall()
        return [
            {"at": parse_iso(r["at"]), "event": r["event"], "detail": json.loads(r["detail"])}
            for r in rows
        ]

    def pending_destroy_intents(self) -> list[Entry]:
        """Entries whose destruction was intended but not recorded (a sweeper was cut)."""
        rows = self._store.read(
            f"SELECT {COLUMNS} FROM entries WHERE destroy_intent IS NOT NULL"  # noqa: S608
            f" AND state IN {LIVE_SQL} ORDER BY id"
        )
        return [self._store.entry(r) for r in rows]

    def counts_by_state(self) -> dict[str, int]:
        """How many entries are in each state (every state named, zero included)."""
        counts = {state.value: 0 for state in ArrivalState}
        for row in self._store.read("SELECT state, COUNT(*) FROM entries GROUP BY state"):
            counts[str(row[0])] = int(row[1])
        return counts

    def forward_queue(self) -> tuple[int, datetime | None]:
        """Outbox files received and not yet forwarded: how many, and the oldest arrival."""
        (row,) = self._store.read(
            "SELECT COUNT(*), MIN(received_at) FROM entries"
            " WHERE area = 'outbox' AND state = 'received'"
        )
        return int(row[0]), parse_iso(row[1]) if row[1] else None
