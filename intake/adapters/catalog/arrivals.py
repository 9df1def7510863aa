"""Recording arrivals: uploads through the server, and files found or changed on disk.

The cataloguer's writes (``intake.services.cataloguer.cataloguer``): ``Arrivals``, the
``arrivals`` part of ``intake.adapters.catalog.catalog.Catalog``, made on its ``Store``.

Rules:
- One entry per arrival, ever: an upload opens a ``receiving`` entry that its close makes
  ``received`` (same id); a file found on disk is catalogued only if, inside the very
  transaction, no entry receives or holds its path; a rename moves the entry, never makes a
  second one.
- ``received_at`` is the server's clock at the close of an upload, or when a file found
  outside an upload was first catalogued: never a file's mtime.
- The stat baseline (size, mtime_ns, inode, ctime_ns) is kept with the content it was taken
  of (recorded, hashed again, altered, renamed): a later scan hashes only what changed.
- An entry the sweeper intends to destroy is its business: never ``vanished`` here.
- A client setting a file's times (through the server) changes neither ``received_at`` nor
  the state: the baseline follows the new times only if it still described the file just
  before (nothing else touched it since it was last checked); otherwise a rescan decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from intake.adapters.catalog.model import (
    COLUMNS,
    LIVE_SQL,
    LIVE_STATES,
    MAX_VARIABLES,
    OPEN_SQL,
    Entry,
    FileStat,
    Found,
    stat_values,
)
from intake.adapters.catalog.store import Store
from intake.core.clock import parse_iso
from intake.core.model import ArrivalState

Locate = Callable[[str], tuple[str, str, str] | None]
"""Maps a disk path to (account, area, path), or None outside the areas."""


class Arrivals:
    """How arrivals get into the catalog and follow their file on disk."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- uploads (the server's listener) -------------------------------------------

    def begin_receiving(
        self, account: str, area: str, path: str, disk_path: str, protocol: str
    ) -> int:
        """An upload to ``disk_path`` was opened: a ``receiving`` entry, so no scan takes it."""
        with self._store.write() as db:
            cursor = db.execute(
                "INSERT INTO entries (account, area, path, disk_path, received_at, state,"
                " source, protocol) VALUES (?, ?, ?, ?, ?, 'receiving', 'upload', ?)",
                (account, area, path, self._store.rel(disk_path), self._store.now(), protocol),
            )
            entry_id = int(cursor.lastrowid or 0)
            self._store.event(db, entry_id, "receiving", protocol=protocol)
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
        now = self._store.now()
        with self._store.write() as db:
            rows = self._store.rows_at(db, disk_path, OPEN_SQL)
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
                    self._store.move(db, int(stale["id"]), ArrivalState.INTERRUPTED)
                    self._store.event(
                        db,
                        int(stale["id"]),
                        "interrupted",
                        at=now,
                        reason="superseded by a later upload to the same name",
                    )
                self._store.move(db, entry_id, ArrivalState.RECEIVED)
            elif same:
                entry_id = int(same[0]["id"])
            else:
                cursor = db.execute(
                    "INSERT INTO entries (account, area, path, disk_path, received_at, state,"
                    " source, protocol) VALUES (?, ?, ?, ?, ?, 'received', 'upload', ?)",
                    (account, area, path, self._store.rel(disk_path), now, protocol),
                )
                entry_id = int(cursor.lastrowid or 0)
            db.execute(
                "UPDATE entries SET account = ?, area = ?, path = ?, size = ?, sha256 = ?,"
                " received_at = CASE WHEN source = 'upload' THEN ? ELSE received_at END,"
                " protocol = ?, st_size = ?, st_mtime_ns = ?, st_ino = ?, st_ctime_ns = ?"
                " WHERE id = ?",
                (account, area, path, size, sha256, now, protocol, *stat_values(stat), entry_id),
            )
            self._store.event(
                db, entry_id, "received", at=now, size=size, sha256=sha256, protocol=protocol
            )
            return self._store.entry(self._store.row(db, entry_id))

    def record_interrupted(self, disk_path: str, size: int, reason: str) -> list[int]:
        """The upload to ``disk_path`` was cut: its receiving entry becomes ``interrupted``."""
        with self._store.write() as db:
            ids = [
                int(r[0])
                for r in db.execute(
                    "SELECT id FROM entries WHERE disk_path = ? AND state = 'receiving'",
                    (self._store.rel(disk_path),),
                )
            ]
            for entry_id in ids:
                self._store.move(db, entry_id, ArrivalState.INTERRUPTED, size=size)
                self._store.event(db, entry_id, "interrupted", size=size, reason=reason)
        return ids

    def receiving(self) -> list[Entry]:
        """Uploads still ``receiving`` (at a server start: what the previous run left)."""
        rows = self._store.read(
            f"SELECT {COLUMNS} FROM entries WHERE state = 'receiving' ORDER BY id"  # noqa: S608
        )
        return [self._store.entry(r) for r in rows]

    def interrupt_all_receiving(self, reason: str) -> list[int]:
        """At server start: every upload still ``receiving`` was cut by the previous stop."""
        with self._store.write() as db:
            ids = [
                int(r[0]) for r in db.execute("SELECT id FROM entries WHERE state = 'receiving'")
            ]
            for entry_id in ids:
                self._store.move(db, entry_id, ArrivalState.INTERRUPTED)
                self._store.event(db, entry_id, "interrupted", reason=reason)
        return ids

    # -- files found on disk (watchdog, reconcile) ---------------------------------

    def record_found(self, found: Sequence[Found]) -> list[Entry | None]:
        """Catalogue files found outside an upload, in one transaction.

        Each is skipped (``None``) if, by now, an entry receives or holds its path.
        """
        now = self._store.now()
        received_at = parse_iso(now)
        detail = json.dumps({"reason": "found on disk outside an upload"})
        result: list[Entry | None] = []
        with self._store.write() as db:
            taken: set[str] = set()
            for start in range(0, len(found), MAX_VARIABLES):
                paths = [self._store.rel(i.disk_path) for i in found[start : start + MAX_VARIABLES]]
                marks = ", ".join("?" * len(paths))
                taken.update(
                    row[0]
                    for row in db.execute(
                        f"SELECT disk_path FROM entries WHERE state IN {OPEN_SQL}"  # noqa: S608
                        f" AND disk_path IN ({marks})",
                        paths,
                    )
                )
            for item in found:
                stored = self._store.rel(item.disk_path)
                if stored in taken:
                    result.append(None)
                    continue
                taken.add(stored)
                cursor = db.execute(
                    "INSERT INTO entries (account, area, path, disk_path, size, sha256,"
                    " received_at, state, source, st_size, st_mtime_ns, st_ino, st_ctime_ns)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'received', 'scan', ?, ?, ?, ?)",
                    (
                        item.account,
                        item.area,
                        item.path,
                        stored,
                        item.size,
                        item.sha256,
                        now,
                        *stat_values(item.stat),
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
        locate: Locate,
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
        with self._store.write() as db:
            live = self._store.rows_at(db, old_disk_path, LIVE_SQL)
            if not live:
                return None
            row = live[-1]
            entry_id = int(row["id"])
            db.execute(
                "UPDATE entries SET account = ?, area = ?, path = ?, disk_path = ? WHERE id = ?",
                (account, area, path, self._store.rel(new_disk_path), entry_id),
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
            self._store.event(
                db, entry_id, "renamed", source=row["path"], path=path, account=account
            )
            return self._store.entry(self._store.row(db, entry_id))

    def record_moved_tree(self, old_dir: str, new_dir: str, locate: Locate) -> int:
        """A folder was renamed on disk: every live entry below it follows. Returns a count."""
        bounds = self._store.subtree(old_dir)
        if bounds is None:
            return 0
        low, high = bounds
        new_base = self._store.rel(new_dir.rstrip("/"))
        moved = 0
        with self._store.write() as db:
            rows = db.execute(
                f"SELECT id, path, disk_path FROM entries WHERE state IN {LIVE_SQL}"  # noqa: S608
                " AND disk_path >= ? AND disk_path < ?",
                (low, high),
            ).fetchall()
            for row in rows:
                new_stored = new_base + row["disk_path"][len(low) - 1 :]
                where = locate(self._store.abs(new_stored))
                if where is None:
                    continue
                account, area, path = where
                db.execute(
                    "UPDATE entries SET account = ?, area = ?, path = ?, disk_path = ?"
                    " WHERE id = ?",
                    (account, area, path, new_stored, row["id"]),
                )
                self._store.event(
                    db, int(row["id"]), "renamed", source=row["path"], path=path, account=account
                )
                moved += 1
        return moved

    def record_times_set(self, disk_path: str, before: FileStat, after: FileStat) -> bool:
        """The server set the times of the file at ``disk_path``: follow them (see the rules).

        True if the live entry's baseline was ``before`` and now is ``after``.
        """
        with self._store.write() as db:
            live = self._store.rows_at(db, disk_path, LIVE_SQL)
            if not live:
                return False
            row = live[-1]
            baseline = (row["st_size"], row["st_mtime_ns"], row["st_ino"], row["st_ctime_ns"])
            if baseline != stat_values(before) or (before.size, before.ino) != (
                after.size,
                after.ino,
            ):
                return False
            entry_id = int(row["id"])
            self._store.set_baseline(db, entry_id, after)
            self._store.event(db, entry_id, "times set", mtime_ns=after.mtime_ns)
            return True

    def update_baseline(self, entry_id: int, stat: FileStat, verified: bool = False) -> None:
        """The file was hashed again and still matches: remember its new stat."""
        with self._store.write() as db:
            self._store.set_baseline(db, entry_id, stat)
            if verified:
                self._store.event(
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
        with self._store.write() as db:
            row = self._store.row(db, entry_id)
            if (
                row["disk_path"] != self._store.rel(disk_path)
                or row["destroy_intent"] is not None
                or ArrivalState(row["state"]) not in LIVE_STATES
            ):
                return False
            self._store.move(db, entry_id, ArrivalState.VANISHED)
            self._store.event(db, entry_id, "vanished", reason=reason)
            return True

    def record_altered(
        self, entry_id: int, actual_sha256: str, stat: FileStat | None = None
    ) -> bool:
        """The file's content no longer matches its SHA-256. True if it just became altered."""
        with self._store.write() as db:
            changed = self._store.move(db, entry_id, ArrivalState.ALTERED)
            if stat is not None:
                self._store.set_baseline(db, entry_id, stat)
            self._store.event(db, entry_id, "altered", actual_sha256=actual_sha256)
            return changed
