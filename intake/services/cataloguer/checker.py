"""One file on disk against the catalog: where it belongs, whether to hash it, what to record.

The steps a single check (the worker, after a watchdog event) and a reconciliation
(``scanner``) share. A ``Checker`` is owned by ``intake.services.cataloguer.cataloguer.Cataloguer``
and given to its ``Scanner``; it holds its own state: the files waiting to settle and the
specials already refused.

Rules:
- Disk layout: ``data/members/<m>/<rel>`` is account m, path ``/<rel>``;
  ``data/outbox/<t>/<rel>`` is account t, path ``/outbox/<rel>``. ``data/.staging`` and
  anything that is not a regular file (symlinks included) are ignored.
- A file being received belongs to the listener, one the sweeper intends to destroy to the
  sweeper: neither is examined here.
- Stat first; hash (streaming) only a file that is new or whose stat differs from its
  entry's baseline. A file whose stat moves while it is read, or (in a scan) that was
  written a moment ago, waits until its stat has been still for ``SETTLE_SECONDS``.
- Found on disk, not catalogued: ``catalogued``. Catalogued, file gone, no destruction
  intended: ``vanished``. Content no longer matching its SHA-256: ``altered``. Each is an
  audit record and a WARNING in the operational log (``catalogued`` warnings stop after
  ``LOG_EACH`` per scan; the audit log names every one).
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import time
from dataclasses import dataclass, field

from intake.adapters.audit.writer import AuditLog, display
from intake.adapters.catalog.catalog import Catalog, Entry, FileStat, Found, Known
from intake.adapters.storage import Storage
from intake.core.authz import OUTBOX, Area
from intake.core.errors import Denied, NotFound
from intake.core.model import ArrivalState
from intake.services.retention import RetentionBook

log = logging.getLogger("intake.cataloguer")

SETTLE_SECONDS = 1.0
LOG_EACH = 100  # "catalogued" warnings per scan; beyond, the scan's summary counts them

Where = tuple[str, str, str]
"""(account, area, path) of a file on disk, in the account's view."""


def file_stat(st: os.stat_result) -> FileStat:
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def stat_or_none(path: str) -> FileStat | None:
    """The stat of ``path`` (not following a symlink), or None if it cannot be read."""
    try:
        return file_stat(os.lstat(path))
    except OSError:
        return None


@dataclass
class ScanReport:
    """What one reconciliation did."""

    files: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    catalogued: int = 0
    vanished: int = 0
    altered: int = 0
    moved: int = 0
    deferred: int = 0  # written a moment ago: catalogued once settled
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # names that could not be catalogued


class Checker:
    """The disk layout and the steps that compare a file with the catalog.

    Its state (files waiting to settle, specials refused) is used by one thread at a time:
    the cataloguer's worker inside ``serve``, the caller of a scan without one (``intake
    catalog scan``). The layout and ``assign_policies`` hold none: the listener calls them
    on the protocol threads.
    """

    def __init__(
        self,
        catalog: Catalog,
        storage: Storage,
        audit: AuditLog,
        protocol: str | None = None,
        retention: RetentionBook | None = None,
    ) -> None:
        self._catalog = catalog
        self._storage = storage
        self._audit_log = audit
        self._protocol = protocol  # the audit records' protocol: "cli" for ``intake catalog scan``
        self._retention = retention  # sets each new entry's policy and end date
        self._settling: dict[str, tuple[FileStat, float]] = {}  # path -> (stat, monotonic due)
        self._refused_special: set[str] = set()  # FIFOs and devices already audited

    # -- layout ----------------------------------------------------------------------

    def locate(self, disk_path: str) -> Where | None:
        """(account, area, path) of a file in an area, or None (staging, outside)."""
        for root, area in (
            (self._storage.members_root, Area.MEMBER),
            (self._storage.outbox_root, Area.OUTBOX),
        ):
            if disk_path.startswith(root + "/"):
                parts = disk_path[len(root) + 1 :].split("/")
                if len(parts) < 2 or "" in parts:
                    return None
                rel = "/".join(parts[1:])
                path = f"/{OUTBOX}/{rel}" if area is Area.OUTBOX else f"/{rel}"
                return parts[0], area.value, path
        return None

    def in_areas(self, folder: str) -> bool:
        """True for a folder inside the members' or the outbox tree (an area or below)."""
        return any(
            folder.startswith(root + "/")
            for root in (self._storage.members_root, self._storage.outbox_root)
        )

    def disk_path(self, account: str, area: Area, path: str) -> str | None:
        """Where an upload in ``account``'s view lands on disk."""
        rel = path.lstrip("/")
        if area is Area.OUTBOX:
            rel = rel.removeprefix(OUTBOX).lstrip("/")
        if area not in (Area.MEMBER, Area.OUTBOX) or not rel:
            return None
        return os.path.join(self._storage.area_root(area, account), rel)

    # -- one file --------------------------------------------------------------------

    def check(self, path: str) -> None:
        """Bring the catalog in line with one file on disk."""
        where = self.locate(path)
        if where is None:
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.gone(path)
            return
        if not stat_mod.S_ISREG(st.st_mode):
            return
        self.check_stat(path, where, file_stat(st), ScanReport())

    def check_stat(self, path: str, where: Where, st: FileStat, report: ScanReport) -> None:
        found = self.examine(path, where, st, self._catalog.known_at(path), report)
        if found is not None:
            self.catalogue([found], report)

    def gone(self, path: str) -> None:
        if self.locate(path) is None or os.path.lexists(path):
            return
        for entry in self._catalog.at_path(path):
            if entry.is_live and entry.destroy_intent is None:
                self.vanished(entry.id, path)

    # -- files waiting to settle ------------------------------------------------------

    def wait(self, path: str, st: FileStat) -> None:
        """``path`` (now ``st``) waits until its stat has been still for ``SETTLE_SECONDS``."""
        self._settling[path] = (st, time.monotonic() + SETTLE_SECONDS)

    def forget(self, path: str) -> None:
        """``path`` no longer waits (it is checked now, or gone)."""
        self._settling.pop(path, None)

    def next_due(self) -> float | None:
        """The monotonic time the first wait is over; None when no file waits."""
        if not self._settling:
            return None
        return min(d for _, d in self._settling.values())

    def drop_waiting(self) -> list[str]:
        """The files still waiting, no longer waiting."""
        waiting = list(self._settling)
        self._settling.clear()
        return waiting

    def take_settled(self) -> list[tuple[str, FileStat]]:
        """Files whose wait is over and whose stat held still: (path, stat), no longer waiting.

        A file whose stat moved waits again; one that went is forgotten.
        """
        settled = []
        for path, (before, due) in list(self._settling.items()):
            if due > time.monotonic():
                continue
            del self._settling[path]
            current = stat_or_none(path)
            if current is None:
                continue
            if current != before:
                self.wait(path, current)
                continue
            settled.append((path, current))
        return settled

    # -- shared steps ---------------------------------------------------------------------

    def examine(
        self,
        path: str,
        where: Where,
        st: FileStat,
        here: list[Known],
        report: ScanReport,
        young_ns: int | None = None,
    ) -> Found | None:
        """Decide about one file on disk given its entries; a ``Found`` to catalogue, or None.

        Being received: the listener records it. Held by the sweeper: its business. Known
        with the same stat: nothing to do. Changed after ``young_ns`` (a scan): wait for it
        to settle. Otherwise hash, and compare with its entry if it has one.
        """
        if any(k.state is ArrivalState.RECEIVING for k in here):
            return None
        live = [k for k in here if k.destroy_intent is None]
        if here and not live:
            return None
        if live and live[-1].baseline == st:
            return None
        if young_ns is not None and max(st.mtime_ns, st.ctime_ns) > young_ns:
            # Written a moment ago, perhaps still open: its close (or a quiet second) decides.
            self.wait(path, st)
            report.deferred += 1
            return None
        found = self._hash(path, where, st, report)
        if found is None or not live:
            return found
        self._compare(live[-1].id, live[-1].sha256, found, report)
        return None

    def refuse_special(
        self, path: str, reason: str = "not a regular file (FIFO, device or socket)"
    ) -> None:
        """A FIFO, device, socket or hard link in an area: never catalogued, audited
        ``denied`` once."""
        if path in self._refused_special:
            return
        self._refused_special.add(path)
        where = self.locate(path)
        log.warning("%s, not catalogued: %s", reason, display(path))
        self._audit_log.record(
            "denied",
            account=where[0] if where else None,
            path=where[2] if where else display(path),
            protocol=self._protocol,
            operation="catalogue",
            reason=reason,
        )

    def _hash(self, path: str, where: Where, st: FileStat, report: ScanReport) -> Found | None:
        """Hash a file (streaming); None if it changed or went while being read."""
        try:
            # Opened beneath data/ component by component: a folder swapped for a symlink
            # since the walk makes this fail, never hashes a file outside the areas.
            digest, raw = self._storage.hash_beneath(path)
            after = file_stat(raw)
        except (OSError, NotFound):
            return None
        except Denied as exc:  # a symlink on the way, a FIFO or a hard link since its stat
            if "symlink" not in exc.reason:
                self.refuse_special(path, exc.reason)
            return None
        report.hashed += 1
        report.hashed_bytes += st.size
        if after != st:
            self.wait(path, after)
            return None
        account, area, vpath = where
        return Found(account, area, vpath, path, st.size, digest, st)

    def _compare(self, entry_id: int, expected: str, found: Found, report: ScanReport) -> None:
        if found.sha256 == expected:
            self._catalog.update_baseline(entry_id, found.stat, verified=True)
            return
        if self._catalog.record_altered(entry_id, found.sha256, found.stat):
            report.altered += 1
            entry = self._warn(
                entry_id,
                "ALTERED: catalog entry %d %s:%s no longer matches its SHA-256 (now %s)",
                found.sha256,
            )
            self._audit(
                "altered",
                entry,
                sha256=entry.sha256,
                actual_sha256=found.sha256,
                size=found.size,
                reason="content no longer matches the SHA-256 recorded at arrival",
            )

    def catalogue(self, found: list[Found], report: ScanReport) -> None:
        with self._audit_log.batch():
            self._catalogue_batch(found, report)
        self.assign_policies()

    def assign_policies(self) -> None:
        """New entries get their policy and end date now (the sweeper re-checks anyway)."""
        if self._retention is None:
            return
        try:
            self._retention.assign_new()
        except Exception:
            log.exception("could not set the retention policy of new entries; the sweep will")

    def _catalogue_batch(self, found: list[Found], report: ScanReport) -> None:
        reason = "found on disk outside an upload"
        for item, entry in zip(found, self._catalog.record_found(found), strict=True):
            if entry is None:
                continue
            report.catalogued += 1
            if report.catalogued == LOG_EACH + 1:
                log.warning(
                    "more files found on disk outside an upload: the audit log "
                    "(event catalogued) names each; a count follows"
                )
            if report.catalogued <= LOG_EACH:
                log.warning(
                    "catalogued %s:%s (%d bytes), found on disk outside an upload (entry %d)",
                    entry.account,
                    display(entry.path),
                    entry.size,
                    entry.id,
                )
            self._audit("catalogued", entry, size=item.size, sha256=item.sha256, reason=reason)

    def vanished(self, entry_id: int, path: str, report: ScanReport | None = None) -> None:
        reason = "file gone from disk with no destruction record"
        if not self._catalog.record_vanished(entry_id, path, reason):
            return
        if report is not None:
            report.vanished += 1
        entry = self._warn(
            entry_id,
            "VANISHED: catalog entry %d %s:%s is gone from disk, not destroyed by the sweeper",
        )
        self._audit("vanished", entry, size=entry.size, sha256=entry.sha256, reason=reason)

    def _warn(self, entry_id: int, message: str, *args: object) -> Entry:
        """Say what befell an entry (``message`` takes its id, account, path, then ``args``)."""
        entry = self._catalog.get(entry_id)
        log.warning(message, entry_id, entry.account, display(entry.path), *args)
        return entry

    def _audit(self, event: str, entry: Entry, **fields: object) -> None:
        self._audit_log.record(
            event,
            account=entry.account,
            path=entry.path,
            entry=entry.id,
            protocol=self._protocol,
            **fields,
        )
