"""The catalog: every arrival and its fate, in SQLite at ``state/catalog.db`` (its one seam).

Rules:
- One row per arrival (``entries``) and an ordered history per row (``events``). Nothing is
  ever deleted: destroyed, vanished and interrupted arrivals stay, the catalog is a history.
- An arrival moves only along ``intake.core.model.ALLOWED_TRANSITIONS``; any other move is
  refused with ``IllegalTransition``. Moving to the state it is already in is a no-op, so a
  rerun after a crash (sweeper, reconcile) does not fail.
- ``received_at`` is the server's clock when the upload was closed (or when the cataloguer
  first saw a file that arrived outside an upload): never a file's mtime.
- Per entry a stat baseline (size, mtime_ns, inode, ctime_ns) tells a rescan whether the
  file may have changed; only then is it hashed again.
- Destruction is write-ahead: ``record_destroy_intent`` before the unlink,
  ``record_destroyed`` after. An entry with an intent and no outcome belongs to the sweeper:
  it is never ``vanished`` (``pending_destroy_intents`` lists them for crash recovery).
- Concurrency: server threads, the watchdog thread, a hashing worker and CLI processes use
  the catalog at once. A connection per thread, WAL, ``synchronous=FULL``, and short
  ``BEGIN IMMEDIATE`` transactions that re-check what they depend on before writing (so two
  writers can never catalogue one file twice).
- Schema changes are numbered migrations (``MIGRATIONS``), applied in order, recorded in
  ``PRAGMA user_version``; a catalog from a newer intake is refused, never rewritten.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from intake.core.clock import Clock, isoformat, parse_iso
from intake.core.errors import Conflict, NotFound, UsageError
from intake.core.model import ArrivalState, can_move

LIVE_STATES = (ArrivalState.RECEIVED, ArrivalState.FORWARDED, ArrivalState.ALTERED)
"""States of an arrival whose file is still expected on disk."""
ATTEMPT_STATES = (ArrivalState.RECEIVING, ArrivalState.INTERRUPTED)
"""States of an upload that never became a backup (hidden from ``entries`` by default)."""

MIGRATIONS: tuple[str, ...] = (
    # 1: entries and their history.
    """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL,
        area TEXT NOT NULL CHECK (area IN ('member', 'outbox')),
        path TEXT NOT NULL,
        disk_path TEXT NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        sha256 TEXT NOT NULL DEFAULT '',
        received_at TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('receiving', 'received', 'forwarded',
                                             'destroyed', 'interrupted', 'vanished', 'altered')),
        source TEXT NOT NULL CHECK (source IN ('upload', 'scan')),
        protocol TEXT,
        policy TEXT,
        forwarded_at TEXT,
        remote_path TEXT,
        destroyed_at TEXT,
        destroy_intent TEXT,
        destroy_intent_at TEXT,
        st_size INTEGER,
        st_mtime_ns INTEGER,
        st_ino INTEGER,
        st_ctime_ns INTEGER
    );
    CREATE INDEX entries_disk_path ON entries (disk_path);
    CREATE INDEX entries_state ON entries (state);
    CREATE INDEX entries_account ON entries (account, received_at);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        entry_id INTEGER NOT NULL REFERENCES entries (id),
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_entry ON events (entry_id, id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# SQL text is only ever built from the constants below and our own column names (the
# ``noqa: S608`` lines); every value is a bound parameter.
_COLUMNS = (
    "id, account, area, path, disk_path, size, sha256, received_at, state, policy,"
    " forwarded_at, destroyed_at, protocol, source, remote_path, destroy_intent"
)
_MAX_VARIABLES = 500  # bound parameters per statement (SQLite's limit can be 999)
_LIVE_SQL = "('received', 'forwarded', 'altered')"
_OPEN_SQL = "('receiving', 'received', 'forwarded', 'altered')"


class IllegalTransition(Conflict):
    """The catalog refuses a move the arrival state machine does not allow."""


@dataclass(frozen=True)
class FileStat:
    """What a rescan compares to decide whether a file may have changed."""

    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int


@dataclass(frozen=True)
class Entry:
    """One arrival as the rest of intake sees it."""

    id: int
    account: str
    area: str  # "member" | "outbox"
    path: str  # in the account's view, starting with "/"
    disk_path: str
    size: int
    sha256: str  # "" while receiving or if interrupted
    received_at: datetime  # aware UTC, the server's clock
    state: ArrivalState
    policy: str | None
    forwarded_at: datetime | None
    destroyed_at: datetime | None
    protocol: str | None = None  # sftp/ftps for uploads, None for files found on disk
    source: str = "upload"  # "upload" | "scan"
    remote_path: str | None = None
    destroy_intent: str | None = None  # the policy, once a destruction is intended

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES


@dataclass(frozen=True)
class Known:
    """A catalogued file as a scan needs it: where, what, and its stat baseline."""

    id: int
    disk_path: str
    state: ArrivalState
    sha256: str
    baseline: FileStat | None
    destroy_intent: str | None


@dataclass(frozen=True)
class Found:
    """A file found on disk outside an upload, hashed, to be catalogued."""

    account: str
    area: str
    path: str
    disk_path: str
    size: int
    sha256: str
    stat: FileStat


def _time(text: str | None) -> datetime | None:
    return parse_iso(text) if text else None


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(
        id=row["id"],
        account=row["account"],
        area=row["area"],
        path=row["path"],
        disk_path=row["disk_path"],
        size=row["size"],
        sha256=row["sha256"],
        received_at=parse_iso(row["received_at"]),
        state=ArrivalState(row["state"]),
        policy=row["policy"],
        forwarded_at=_time(row["forwarded_at"]),
        destroyed_at=_time(row["destroyed_at"]),
        protocol=row["protocol"],
        source=row["source"],
        remote_path=row["remote_path"],
        destroy_intent=row["destroy_intent"],
    )


def _subtree(prefix: str) -> tuple[str, str]:
    """Bounds of every path strictly below the folder ``prefix`` ('/' + 1 is '0')."""
    base = prefix.rstrip("/")
    return base + "/", base + "0"


class Catalog:
    """The catalog database; thread-safe (a connection per thread)."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self._path = path
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._migrate()

    # -- plumbing ------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taken at once (no upgrade deadlocks)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"{self._path}: written by a newer intake (schema {version}, "
                    f"this one knows {SCHEMA_VERSION})"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    def close(self) -> None:
        """Close every connection this catalog opened (call once no thread uses it)."""
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def _now(self) -> str:
        return isoformat(self._clock.now())

    def _event(
        self,
        db: sqlite3.Connection,
        entry_id: int,
        event: str,
        at: str | None = None,
        **detail: Any,
    ) -> None:
        db.execute(
            "INSERT INTO events (entry_id, at, event, detail) VALUES (?, ?, ?, ?)",
            (entry_id, at or self._now(), event, json.dumps(detail, sort_keys=True)),
        )

    def _row(self, db: sqlite3.Connection, entry_id: int) -> sqlite3.Row:
        row = db.execute(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()  # noqa: S608
        if row is None:
            raise NotFound(f"no catalog entry {entry_id}")
        return row  # type: ignore[no-any-return]

    def _move(
        self, db: sqlite3.Connection, entry_id: int, target: ArrivalState, **columns: Any
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

    @staticmethod
    def _baseline(stat: FileStat | None) -> tuple[int | None, ...]:
        if stat is None:
            return (None, None, None, None)
        return (stat.size, stat.mtime_ns, stat.ino, stat.ctime_ns)

    # -- reading -------------------------------------------------------------------

    def get(self, entry_id: int) -> Entry:
        return _entry(self._row(self._db(), entry_id))

    def entries(self, account: str | None = None, include_attempts: bool = False) -> list[Entry]:
        """Every catalogued arrival, oldest first; uploads that never completed only on request."""
        where, args = [], []
        if account is not None:
            where.append("account = ?")
            args.append(account)
        if not include_attempts:
            where.append("state NOT IN ('receiving', 'interrupted')")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db().execute(
            f"SELECT {_COLUMNS} FROM entries {clause} ORDER BY received_at, id",  # noqa: S608
            args,
        )
        return [_entry(r) for r in rows]

    def live_entries(self) -> list[Entry]:
        """Arrivals whose file is still expected on disk: received, forwarded, altered."""
        rows = self._db().execute(
            f"SELECT {_COLUMNS} FROM entries WHERE state IN {_LIVE_SQL}"  # noqa: S608
            " ORDER BY received_at, id"
        )
        return [_entry(r) for r in rows]

    def at_path(self, disk_path: str) -> list[Entry]:
        """Entries receiving or live at ``disk_path`` (normally none or one)."""
        rows = self._db().execute(
            f"SELECT {_COLUMNS} FROM entries WHERE disk_path = ? AND state IN {_OPEN_SQL}"  # noqa: S608
            " ORDER BY id",
            (disk_path,),
        )
        return [_entry(r) for r in rows]

    def known(self, under: str | None = None) -> list[Known]:
        """Receiving and live entries (below the folder ``under``), for a scan."""
        if under is None:
            return self._known("", ())
        return self._known(" AND disk_path >= ? AND disk_path < ?", _subtree(under))

    def known_at(self, disk_path: str) -> list[Known]:
        """Receiving and live entries at ``disk_path`` (normally none or one), for a check."""
        return self._known(" AND disk_path = ?", (disk_path,))

    def _known(self, clause: str, args: tuple[str, ...]) -> list[Known]:
        sql = (
            "SELECT id, disk_path, state, sha256, st_size, st_mtime_ns, st_ino, st_ctime_ns,"  # noqa: S608
            f" destroy_intent FROM entries WHERE state IN {_OPEN_SQL}{clause} ORDER BY id"
        )
        result = []
        for row in self._db().execute(sql, args):
            baseline = None
            if row["st_size"] is not None:
                baseline = FileStat(
                    row["st_size"], row["st_mtime_ns"], row["st_ino"], row["st_ctime_ns"]
                )
            result.append(
                Known(
                    row["id"],
                    row["disk_path"],
                    ArrivalState(row["state"]),
                    row["sha256"],
                    baseline,
                    row["destroy_intent"],
                )
            )
        return result

    def history(self, entry_id: int) -> list[dict[str, Any]]:
        """The entry's events in order: ``at`` (aware UTC), ``event``, ``detail`` (a dict)."""
        db = self._db()
        self._row(db, entry_id)
        rows = db.execute(
            "SELECT at, event, detail FROM events WHERE entry_id = ? ORDER BY id", (entry_id,)
        )
        return [
            {"at": parse_iso(r["at"]), "event": r["event"], "detail": json.loads(r["detail"])}
            for r in rows
        ]

    def pending_destroy_intents(self) -> list[Entry]:
        """Entries whose destruction was intended but not recorded (a sweeper was cut)."""
        rows = self._db().execute(
            f"SELECT {_COLUMNS} FROM entries WHERE destroy_intent IS NOT NULL"  # noqa: S608
            f" AND state IN {_LIVE_SQL} ORDER BY id"
        )
        return [_entry(r) for r in rows]

    # -- uploads (the server's listener) -------------------------------------------

    def begin_receiving(
        self, account: str, area: str, path: str, disk_path: str, protocol: str
    ) -> int:
        """An upload to ``disk_path`` was opened: a ``receiving`` entry, so no scan takes it."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO entries (account, area, path, disk_path, received_at, state,"
                " source, protocol) VALUES (?, ?, ?, ?, ?, 'receiving', 'upload', ?)",
                (account, area, path, disk_path, self._now(), protocol),
            )
            entry_id = int(cursor.lastrowid or 0)
            self._event(db, entry_id, "receiving", protocol=protocol)
        return entry_id

    def record_received(
        self,
        account: str,
        area: str,
        path: str,
        disk_path: str,
        size: int,
        sha256: str,
        protocol: str,
        stat: FileStat | None,
    ) -> Entry:
        """An upload is in place: its receiving entry becomes ``received`` (one entry, ever).

        ``received_at`` is now (the server's clock at the close). Without a receiving entry
        (its ``started`` was lost) one is made, unless a scan already catalogued this very
        content at this path, which is then kept.
        """
        now = self._now()
        with self._write() as db:
            rows = db.execute(
                f"SELECT id, state, sha256, destroy_intent FROM entries WHERE disk_path = ?"  # noqa: S608
                f" AND state IN {_OPEN_SQL} ORDER BY id",
                (disk_path,),
            ).fetchall()
            receiving = [r for r in rows if r["state"] == ArrivalState.RECEIVING.value]
            same = [
                r
                for r in rows
                if r["state"] != ArrivalState.RECEIVING.value
                and r["sha256"] == sha256
                and r["destroy_intent"] is None
            ]
            if receiving:
                entry_id = int(receiving[-1]["id"])
                for stale in receiving[:-1]:
                    self._move(db, int(stale["id"]), ArrivalState.INTERRUPTED)
                    self._event(
                        db,
                        int(stale["id"]),
                        "interrupted",
                        at=now,
                        reason="superseded by a later upload to the same name",
                    )
                self._move(db, entry_id, ArrivalState.RECEIVED)
            elif same:
                entry_id = int(same[0]["id"])
            else:
                cursor = db.execute(
                    "INSERT INTO entries (account, area, path, disk_path, received_at, state,"
                    " source, protocol) VALUES (?, ?, ?, ?, ?, 'received', 'upload', ?)",
                    (account, area, path, disk_path, now, protocol),
                )
                entry_id = int(cursor.lastrowid or 0)
            db.execute(
                "UPDATE entries SET account = ?, area = ?, path = ?, size = ?, sha256 = ?,"
                " received_at = CASE WHEN source = 'upload' THEN ? ELSE received_at END,"
                " protocol = ?, st_size = ?, st_mtime_ns = ?, st_ino = ?, st_ctime_ns = ?"
                " WHERE id = ?",
                (account, area, path, size, sha256, now, protocol, *self._baseline(stat), entry_id),
            )
            self._event(
                db, entry_id, "received", at=now, size=size, sha256=sha256, protocol=protocol
            )
            return _entry(self._row(db, entry_id))

    def record_interrupted(self, disk_path: str, size: int, reason: str) -> list[int]:
        """The upload to ``disk_path`` was cut: its receiving entry becomes ``interrupted``."""
        with self._write() as db:
            ids = [
                int(r[0])
                for r in db.execute(
                    "SELECT id FROM entries WHERE disk_path = ? AND state = 'receiving'",
                    (disk_path,),
                )
            ]
            for entry_id in ids:
                self._move(db, entry_id, ArrivalState.INTERRUPTED, size=size)
                self._event(db, entry_id, "interrupted", size=size, reason=reason)
        return ids

    def interrupt_all_receiving(self, reason: str) -> list[int]:
        """At server start: every upload still ``receiving`` was cut by the previous stop."""
        with self._write() as db:
            ids = [
                int(r[0]) for r in db.execute("SELECT id FROM entries WHERE state = 'receiving'")
            ]
            for entry_id in ids:
                self._move(db, entry_id, ArrivalState.INTERRUPTED)
                self._event(db, entry_id, "interrupted", reason=reason)
        return ids

    # -- files found on disk (watchdog, reconcile) ---------------------------------

    def record_found(self, found: Sequence[Found]) -> list[Entry | None]:
        """Catalogue files found outside an upload, in one transaction.

        Each is skipped (``None``) if, by now, an entry receives or holds its path.
        """
        now = self._now()
        received_at = parse_iso(now)
        detail = json.dumps({"reason": "found on disk outside an upload"})
        result: list[Entry | None] = []
        with self._write() as db:
            taken: set[str] = set()
            for start in range(0, len(found), _MAX_VARIABLES):
                paths = [item.disk_path for item in found[start : start + _MAX_VARIABLES]]
                marks = ", ".join("?" * len(paths))
                taken.update(
                    row[0]
                    for row in db.execute(
                        f"SELECT disk_path FROM entries WHERE state IN {_OPEN_SQL}"  # noqa: S608
                        f" AND disk_path IN ({marks})",
                        paths,
                    )
                )
            for item in found:
                if item.disk_path in taken:
                    result.append(None)
                    continue
                taken.add(item.disk_path)
                cursor = db.execute(
                    "INSERT INTO entries (account, area, path, disk_path, size, sha256,"
                    " received_at, state, source, st_size, st_mtime_ns, st_ino, st_ctime_ns)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'received', 'scan', ?, ?, ?, ?)",
                    (
                        item.account,
                        item.area,
                        item.path,
                        item.disk_path,
                        item.size,
                        item.sha256,
                        now,
                        *self._baseline(item.stat),
                    ),
                )
                entry_id = int(cursor.lastrowid or 0)
                db.execute(
                    "INSERT INTO events (entry_id, at, event, detail) VALUES (?, ?, ?, ?)",
                    (entry_id, now, "catalogued", detail),
                )
                result.append(
                    Entry(
                        id=entry_id,
                        account=item.account,
                        area=item.area,
                        path=item.path,
                        disk_path=item.disk_path,
                        size=item.size,
                        sha256=item.sha256,
                        received_at=received_at,
                        state=ArrivalState.RECEIVED,
                        policy=None,
                        forwarded_at=None,
                        destroyed_at=None,
                        protocol=None,
                        source="scan",
                    )
                )
        return result

    def record_moved(
        self,
        old_disk_path: str,
        new_disk_path: str,
        locate: Callable[[str], tuple[str, str, str] | None],
        stat: FileStat | None = None,
    ) -> Entry | None:
        """A file was renamed on disk: its live entry follows (no second entry).

        ``locate`` maps a disk path to (account, area, path). Returns the moved entry, or
        None when no live entry was at the old path (then the caller checks the new one).
        """
        where = locate(new_disk_path)
        if where is None:
            return None
        account, area, path = where
        with self._write() as db:
            row = db.execute(
                f"SELECT id, path, st_size, st_mtime_ns, st_ino FROM entries"  # noqa: S608
                f" WHERE disk_path = ? AND state IN {_LIVE_SQL} ORDER BY id DESC LIMIT 1",
                (old_disk_path,),
            ).fetchone()
            if row is None:
                return None
            entry_id = int(row["id"])
            db.execute(
                "UPDATE entries SET account = ?, area = ?, path = ?, disk_path = ? WHERE id = ?",
                (account, area, path, new_disk_path, entry_id),
            )
            same_file = stat is not None and (
                row["st_size"],
                row["st_mtime_ns"],
                row["st_ino"],
            ) == (stat.size, stat.mtime_ns, stat.ino)
            if same_file:  # a rename changes ctime only: keep the baseline current
                db.execute(
                    "UPDATE entries SET st_ctime_ns = ? WHERE id = ?",
                    (stat.ctime_ns if stat else None, entry_id),
                )
            self._event(db, entry_id, "renamed", source=row["path"], path=path, account=account)
            return _entry(self._row(db, entry_id))

    def record_moved_tree(
        self, old_dir: str, new_dir: str, locate: Callable[[str], tuple[str, str, str] | None]
    ) -> int:
        """A folder was renamed on disk: every live entry below it follows. Returns a count."""
        low, high = _subtree(old_dir)
        moved = 0
        with self._write() as db:
            rows = db.execute(
                f"SELECT id, path, disk_path FROM entries WHERE state IN {_LIVE_SQL}"  # noqa: S608
                " AND disk_path >= ? AND disk_path < ?",
                (low, high),
            ).fetchall()
            for row in rows:
                new_disk = new_dir.rstrip("/") + row["disk_path"][len(low) - 1 :]
                where = locate(new_disk)
                if where is None:
                    continue
                account, area, path = where
                db.execute(
                    "UPDATE entries SET account = ?, area = ?, path = ?, disk_path = ?"
                    " WHERE id = ?",
                    (account, area, path, new_disk, row["id"]),
                )
                self._event(
                    db, int(row["id"]), "renamed", source=row["path"], path=path, account=account
                )
                moved += 1
        return moved

    def update_baseline(self, entry_id: int, stat: FileStat, verified: bool = False) -> None:
        """The file was hashed again and still matches: remember its new stat."""
        with self._write() as db:
            db.execute(
                "UPDATE entries SET st_size = ?, st_mtime_ns = ?, st_ino = ?, st_ctime_ns = ?"
                " WHERE id = ?",
                (*self._baseline(stat), entry_id),
            )
            if verified:
                self._event(
                    db,
                    entry_id,
                    "verified",
                    reason="file changed on disk, content still matches its SHA-256",
                )

    def record_vanished(self, entry_id: int, disk_path: str, reason: str) -> bool:
        """The file at ``disk_path`` is gone with no destruction record: ``vanished``.

        False (nothing done) if by now the entry moved elsewhere, is no longer live, or the
        sweeper intends to destroy it.
        """
        with self._write() as db:
            row = self._row(db, entry_id)
            if (
                row["disk_path"] != disk_path
                or row["destroy_intent"] is not None
                or ArrivalState(row["state"]) not in LIVE_STATES
            ):
                return False
            self._move(db, entry_id, ArrivalState.VANISHED)
            self._event(db, entry_id, "vanished", reason=reason)
            return True

    def record_altered(
        self, entry_id: int, actual_sha256: str, stat: FileStat | None = None
    ) -> bool:
        """The file's content no longer matches its SHA-256. True if it just became altered."""
        with self._write() as db:
            changed = self._move(db, entry_id, ArrivalState.ALTERED)
            if stat is not None:
                db.execute(
                    "UPDATE entries SET st_size = ?, st_mtime_ns = ?, st_ino = ?,"
                    " st_ctime_ns = ? WHERE id = ?",
                    (*self._baseline(stat), entry_id),
                )
            self._event(db, entry_id, "altered", actual_sha256=actual_sha256)
            return changed

    # -- the sweeper -----------------------------------------------------------------

    def set_policy(self, entry_id: int, policy: str) -> None:
        with self._write() as db:
            if self._row(db, entry_id)["policy"] == policy:
                return
            db.execute("UPDATE entries SET policy = ? WHERE id = ?", (policy, entry_id))
            self._event(db, entry_id, "policy", policy=policy)

    def record_destroy_intent(self, entry_id: int, policy: str) -> None:
        """Write-ahead: the sweeper is about to destroy this file (before the unlink)."""
        with self._write() as db:
            row = self._row(db, entry_id)
            state = ArrivalState(row["state"])
            if not can_move(state, ArrivalState.DESTROYED):
                raise IllegalTransition(
                    f"catalog entry {entry_id}: {state.value} cannot be destroyed"
                )
            now = self._now()
            db.execute(
                "UPDATE entries SET destroy_intent = ?, destroy_intent_at = ? WHERE id = ?",
                (policy, now, entry_id),
            )
            self._event(db, entry_id, "destroy.intent", at=now, policy=policy)

    def record_destroyed(
        self, entry_id: int, at: datetime, policy: str, sha256_verified: bool
    ) -> None:
        """The file is gone by the sweeper's hand (idempotent)."""
        with self._write() as db:
            if self._move(
                db, entry_id, ArrivalState.DESTROYED, destroyed_at=isoformat(at), policy=policy
            ):
                self._event(
                    db,
                    entry_id,
                    "destroyed",
                    at=isoformat(at),
                    policy=policy,
                    sha256_verified=sha256_verified,
                )

    def record_forwarded(self, entry_id: int, at: datetime, remote_path: str) -> None:
        """The vendor holds the file (idempotent)."""
        with self._write() as db:
            if self._move(
                db,
                entry_id,
                ArrivalState.FORWARDED,
                forwarded_at=isoformat(at),
                remote_path=remote_path,
            ):
                self._event(db, entry_id, "forwarded", at=isoformat(at), remote_path=remote_path)
