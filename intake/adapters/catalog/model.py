"""What the catalog stores: its schema (numbered migrations), its values, the rows between.

Rules:
- The schema only grows by appending to ``MIGRATIONS``; a released migration is never edited
  (``intake.adapters.sqlite.migrate`` applies what a file lacks, in order).
- ``entries`` holds one row per arrival, ``events`` its ordered history. The ``state`` column
  takes the values of ``intake.core.model.ArrivalState``; ``received_at`` and every other
  time is ISO 8601 UTC text, read back as an aware datetime.
- SQL text is only ever built from the constants here and our own column names (the
  ``noqa: S608`` lines in the catalog modules); every value is a bound parameter.
- The values handed out (``Entry``, ``Known``) and taken in (``Found``, ``FileStat``) are
  frozen: a caller never holds a row.
- ``disk_path`` is stored relative to the instance's ``data/`` folder
  (``members/<m>/<rel>``, ``outbox/<t>/<rel>``) and handed out absolute: the catalog
  survives a move or a restore of the instance folder (migration 4 converted old rows).
- ``usage`` holds, per (account, area), the bytes and the count of its live entries
  (``LIVE_STATES``): triggers keep it in the very transaction that inserts an entry or
  changes its state, size, account or area, so no code path can forget it and reading it
  is one primary-key lookup (migration 5 filled it from the entries already there).
- ``entries_receipts`` indexes exactly the entries that have a receipt (``HELD_SQL``: a
  member's uploads still held), by account and path: a receipt is one index lookup, a
  folder of receipts one range of it. A query that means to use it repeats ``HELD_SQL``
  word for word (SQLite uses a partial index only when the query implies its WHERE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from intake.adapters.sqlite import Row
from intake.core.clock import parse_iso
from intake.core.errors import Conflict

# The state sets are defined once, in core.model; re-exported for the catalog's users.
from intake.core.model import ATTEMPT_STATES as ATTEMPT_STATES
from intake.core.model import LIVE_STATES as LIVE_STATES
from intake.core.model import OPEN_STATES as OPEN_STATES
from intake.core.model import ArrivalState

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
    # 2: the policy and its end are set when an entry is catalogued, not at the first sweep.
    """
    ALTER TABLE entries ADD COLUMN expires_at TEXT;
    CREATE INDEX entries_unassigned ON entries (id) WHERE policy IS NULL;
    CREATE INDEX entries_expires ON entries (expires_at) WHERE expires_at IS NOT NULL;
    """,
    # 3: destruction certificates, signed when the file was destroyed (one per entry).
    """
    CREATE TABLE certificates (
        entry_id INTEGER PRIMARY KEY REFERENCES entries (id),
        account TEXT NOT NULL,
        destroyed_at TEXT NOT NULL,
        document TEXT NOT NULL
    );
    CREATE INDEX certificates_account ON certificates (account, destroyed_at);
    """,
    # 4: disk paths relative to the instance's data/ folder, so a moved or restored
    # instance keeps its catalog. Rebuilt from the account, area and path (exact).
    """
    UPDATE entries SET disk_path = CASE area
        WHEN 'member' THEN 'members/' || account || path
        ELSE 'outbox/' || account || substr(path, 8) END
    WHERE disk_path LIKE '/%' AND (area = 'member' OR path LIKE '/outbox/%');
    """,
    # 5: no per-request scans (issue 17). A member's receipts are looked up by path in an
    # index of exactly the entries that have one; what each account's area holds is a
    # running total (``usage``), kept by triggers in the transaction of every change of an
    # entry's state, size, account or area, filled here from the entries already there.
    """
    CREATE INDEX entries_receipts ON entries (account, path, received_at)
        WHERE area = 'member' AND source = 'upload'
        AND state IN ('received', 'forwarded', 'altered');
    CREATE TABLE usage (
        account TEXT NOT NULL,
        area TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        files INTEGER NOT NULL,
        PRIMARY KEY (account, area)
    ) WITHOUT ROWID;
    INSERT INTO usage (account, area, bytes, files)
        SELECT account, area, SUM(size), COUNT(*) FROM entries
        WHERE state IN ('received', 'forwarded', 'altered') GROUP BY account, area;
    CREATE TRIGGER usage_insert AFTER INSERT ON entries
        WHEN NEW.state IN ('received', 'forwarded', 'altered')
    BEGIN
        INSERT INTO usage (account, area, bytes, files)
            VALUES (NEW.account, NEW.area, NEW.size, 1)
            ON CONFLICT (account, area)
            DO UPDATE SET bytes = bytes + excluded.bytes, files = files + 1;
    END;
    CREATE TRIGGER usage_update AFTER UPDATE OF state, size, account, area ON entries
    BEGIN
        UPDATE usage SET bytes = bytes - OLD.size, files = files - 1
            WHERE account = OLD.account AND area = OLD.area
            AND OLD.state IN ('received', 'forwarded', 'altered');
        INSERT INTO usage (account, area, bytes, files)
            SELECT NEW.account, NEW.area, NEW.size, 1
            WHERE NEW.state IN ('received', 'forwarded', 'altered')
            ON CONFLICT (account, area)
            DO UPDATE SET bytes = bytes + excluded.bytes, files = files + 1;
    END;
    CREATE TRIGGER usage_delete AFTER DELETE ON entries
        WHEN OLD.state IN ('received', 'forwarded', 'altered')
    BEGIN
        UPDATE usage SET bytes = bytes - OLD.size, files = files - 1
            WHERE account = OLD.account AND area = OLD.area;
    END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# Fragments of SQL the catalog modules share (see the rules on building SQL text).
COLUMNS = (
    "id, account, area, path, disk_path, size, sha256, received_at, state, policy,"
    " forwarded_at, destroyed_at, protocol, source, remote_path, destroy_intent, expires_at"
)
"""The columns ``entry_from_row`` reads."""
MAX_VARIABLES = 500  # bound parameters per statement (SQLite's limit can be 999)


def _sql_set(states: tuple[ArrivalState, ...]) -> str:
    return "(" + ", ".join(f"'{state.value}'" for state in states) + ")"


LIVE_SQL = _sql_set(LIVE_STATES)  # "('received', 'forwarded', 'altered')"
OPEN_SQL = _sql_set(OPEN_STATES)
HELD_SQL = f"area = 'member' AND source = 'upload' AND state IN {LIVE_SQL}"
"""The entries that have a receipt: the WHERE of the partial index ``entries_receipts``."""


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
    expires_at: datetime | None = None  # when the policy destroys it (None: forward/unmatched)

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


def entry_from_row(row: Row) -> Entry:
    """An ``Entry`` from a row of ``COLUMNS``."""
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
        expires_at=_time(row["expires_at"]),
    )


def known_from_row(row: Row) -> Known:
    """A ``Known`` from a row of id, disk_path, state, sha256, the baseline, destroy_intent."""
    baseline = None
    if row["st_size"] is not None:
        baseline = FileStat(row["st_size"], row["st_mtime_ns"], row["st_ino"], row["st_ctime_ns"])
    return Known(
        row["id"],
        row["disk_path"],
        ArrivalState(row["state"]),
        row["sha256"],
        baseline,
        row["destroy_intent"],
    )


def stat_values(stat: FileStat | None) -> tuple[int | None, ...]:
    """The values of st_size, st_mtime_ns, st_ino, st_ctime_ns (all NULL without a stat)."""
    if stat is None:
        return (None, None, None, None)
    return (stat.size, stat.mtime_ns, stat.ino, stat.ctime_ns)


def subtree(prefix: str) -> tuple[str, str]:
    """Bounds of every path strictly below the folder ``prefix`` ('/' + 1 is '0')."""
    base = prefix.rstrip("/")
    return base + "/", base + "0"
