"""The cataloguer: every arrival in ``data/`` recorded once, with its SHA-256.

Two ways in, one record:
- Uploads through the server: this is a ``FileEvents`` listener. ``started`` makes a
  ``receiving`` entry (so no scan takes the file while it lands), ``received`` records the
  size and SHA-256 computed in flight (never rehashed) with the server's clock, on the
  protocol thread, before the client hears its close acknowledged; ``interrupted`` and
  ``renamed`` follow the entry.
- Anything else (an operator's drop, a restored folder, a change or removal behind the
  server's back): watchdog is the trigger, reconciliation the guarantee. The observer on
  ``data/`` only queues work; a worker thread stats, hashes (streaming) and records, off the
  protocol threads. watchdog drops events on queue overflow and can miss files in a new
  folder, so the catalog is reconciled with the disk at every start, on overflow, on each
  new or moved folder, and on ``intake catalog scan``.

Rules:
- Disk layout: ``data/members/<m>/<rel>`` is account m, path ``/<rel>``;
  ``data/outbox/<t>/<rel>`` is account t, path ``/outbox/<rel>``. ``data/.staging`` and
  anything that is not a regular file (symlinks included) are ignored.
- A file already catalogued at a path, or being received there, never gets a second
  entry; a rename moves the entry (its id stays).
- A scan stats first and hashes only a file that is new or whose stat (size, mtime,
  inode, ctime) differs from its entry's baseline.
- Found on disk, not catalogued: ``catalogued``. Catalogued, file gone, no destruction
  intended: ``vanished``. Content no longer matching its SHA-256: ``altered``. Each is an
  audit record and a WARNING in the operational log.
- A newly created file is catalogued at its close-after-write; one that appears with no
  close (moved in from outside, hard-linked) once its stat has been still for
  ``SETTLE_SECONDS``.
"""

from __future__ import annotations

import logging
import os
import queue
import stat as stat_mod
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.inotify import InotifyObserver

from intake.adapters.audit import AuditLog, display
from intake.adapters.catalog import Catalog, Entry, FileStat, Found, Known
from intake.adapters.storage import Storage, sha256_file
from intake.core.authz import OUTBOX, Area
from intake.core.clock import Clock
from intake.core.model import ArrivalState
from intake.services.files import Arrival, FileEvents

log = logging.getLogger("intake.cataloguer")

WATCHDOG_LOGGER = "watchdog.observers.inotify_c"
SETTLE_SECONDS = 1.0
BATCH = 500  # files catalogued per transaction during a scan
LOG_EACH = 100  # "catalogued" warnings per scan; beyond, the scan's summary counts them
_EVENTS = [
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
]


def file_stat(st: os.stat_result) -> FileStat:
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


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


class _Stopped(Exception):
    pass


class _OverflowAlarm(logging.Handler):
    """watchdog only logs an inotify queue overflow: hear it and reconcile."""

    def __init__(self, cataloguer: Cataloguer) -> None:
        super().__init__(logging.WARNING)
        self._cataloguer = cataloguer

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._cataloguer.request_reconcile(None, "inotify queue overflow")


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: only translate and queue, never block."""

    def __init__(self, cataloguer: Cataloguer) -> None:
        self._c = cataloguer

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        c = self._c
        if isinstance(event, FileClosedEvent):
            c.enqueue(("check", src))
        elif isinstance(event, FileCreatedEvent):
            c.enqueue(("created", src))
        elif isinstance(event, FileDeletedEvent):
            c.enqueue(("gone", src))
        elif isinstance(event, FileMovedEvent):
            c.enqueue(("moved", src, dest))
        elif isinstance(event, DirCreatedEvent):
            c.request_reconcile(src, "new folder")
        elif isinstance(event, DirDeletedEvent):
            c.request_reconcile(src, "folder removed")
        elif isinstance(event, DirMovedEvent):
            c.enqueue(("dir-moved", src, dest))


class Cataloguer(FileEvents):
    """Keeps the catalog equal to what arrived; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        storage: Storage,
        audit: AuditLog,
        clock: Clock,
        protocol: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.storage = storage
        self.audit = audit
        self.clock = clock
        self.protocol = protocol  # "cli" for ``intake catalog scan``; None inside ``serve``
        self._queue: queue.Queue[tuple[str, ...]] = queue.Queue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._observer: InotifyObserver | None = None
        self._alarm: _OverflowAlarm | None = None
        self._settling: dict[str, tuple[FileStat, float]] = {}
        self._reconciles: dict[str | None, str] = {}  # folder (None: all) -> why
        self._reconcile_lock = threading.Lock()
        self._unrecorded: dict[str, Arrival] = {}  # uploads whose recording must be retried
        self.reports: list[ScanReport] = []

    # -- layout ----------------------------------------------------------------------

    def locate(self, disk_path: str) -> tuple[str, str, str] | None:
        """(account, area, path) of a file in an area, or None (staging, outside)."""
        for root, area in (
            (self.storage.members_root, Area.MEMBER),
            (self.storage.outbox_root, Area.OUTBOX),
        ):
            if disk_path.startswith(root + "/"):
                parts = disk_path[len(root) + 1 :].split("/")
                if len(parts) < 2 or "" in parts:
                    return None
                rel = "/".join(parts[1:])
                path = f"/{OUTBOX}/{rel}" if area is Area.OUTBOX else f"/{rel}"
                return parts[0], area.value, path
        return None

    def _in_areas(self, folder: str) -> bool:
        """True for a folder inside the members' or the outbox tree (an area or below)."""
        return any(
            folder.startswith(root + "/")
            for root in (self.storage.members_root, self.storage.outbox_root)
        )

    def disk_path(self, account: str, area: Area, path: str) -> str | None:
        """Where an upload in ``account``'s view lands on disk."""
        rel = path.lstrip("/")
        if area is Area.OUTBOX:
            rel = rel.removeprefix(OUTBOX).lstrip("/")
        if area not in (Area.MEMBER, Area.OUTBOX) or not rel:
            return None
        return os.path.join(self.storage.area_root(area, account), rel)

    # -- the listener (protocol threads) -------------------------------------------------

    def started(self, account: str, area: Area, path: str, protocol: str) -> None:
        target = self.disk_path(account, area, path)
        if target is not None:
            self.catalog.begin_receiving(account, area.value, path, target, protocol)

    def received(self, arrival: Arrival) -> None:
        try:
            self._record(arrival)
        except Exception:
            # The client's file is in place whatever happens here: retry off its thread.
            log.exception("could not catalogue %s at once; retrying", display(arrival.path))
            self._unrecorded[arrival.disk_path] = arrival
            self.enqueue(("retry", arrival.disk_path))

    def _record(self, arrival: Arrival) -> None:
        try:
            st: FileStat | None = file_stat(os.lstat(arrival.disk_path))
        except OSError:
            st = None
        self.catalog.record_received(
            arrival.account,
            arrival.area.value,
            arrival.path,
            arrival.disk_path,
            arrival.size,
            arrival.sha256,
            arrival.protocol,
            st,
        )

    def interrupted(self, account: str, area: Area, path: str, size: int, reason: str) -> None:
        target = self.disk_path(account, area, path)
        if target is not None:
            self.catalog.record_interrupted(target, size, reason)
            # A file put there by hand while the upload was open was left to it: check now.
            self.enqueue(("check", target))

    def renamed(
        self,
        account: str,
        area: Area,
        old_path: str,
        new_path: str,
        old_disk_path: str,
        new_disk_path: str,
    ) -> None:
        try:
            st: FileStat | None = file_stat(os.lstat(new_disk_path))
        except OSError:
            st = None
        if self.catalog.record_moved(old_disk_path, new_disk_path, self.locate, st) is None:
            self.enqueue(("check", new_disk_path))  # never catalogued: the worker hashes it

    # -- running -------------------------------------------------------------------------

    def start(self, watch: bool = True) -> None:
        """Serve start: close what the last run left receiving, watch, reconcile (async)."""
        cut = self.catalog.interrupt_all_receiving("the server stopped before the upload ended")
        if cut:
            log.warning("%d upload(s) cut by the previous stop recorded as interrupted", len(cut))
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="cataloguer", daemon=True)
        self._worker.start()
        if watch:
            self._watch()
        self.request_reconcile(None, "server start")

    def _watch(self) -> None:
        self._alarm = _OverflowAlarm(self)
        watchdog_log = logging.getLogger(WATCHDOG_LOGGER)
        if watchdog_log.getEffectiveLevel() > logging.WARNING:
            watchdog_log.setLevel(logging.WARNING)
        watchdog_log.addHandler(self._alarm)
        observer = InotifyObserver(generate_full_events=True)
        try:
            observer.schedule(
                _Handler(self), self.storage.data_dir, recursive=True, event_filter=_EVENTS
            )
            observer.start()
        except OSError as exc:  # e.g. fs.inotify.max_user_watches reached
            log.error(
                "cannot watch %s (%s): files dropped by hand are catalogued only at "
                "start and by `intake catalog scan`",
                self.storage.data_dir,
                exc,
            )
            return
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None
        if self._alarm is not None:
            logging.getLogger(WATCHDOG_LOGGER).removeHandler(self._alarm)
            self._alarm = None
        self._stop.set()
        self._queue.put(("wake",))
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None

    def enqueue(self, job: tuple[str, ...]) -> None:
        self._queue.put(job)

    def request_reconcile(self, folder: str | None, why: str) -> None:
        """Ask the worker to reconcile ``folder`` (None: everything); requests coalesce."""
        with self._reconcile_lock:
            if None in self._reconciles:
                return
            if folder is None:
                self._reconciles.clear()
            self._reconciles.setdefault(folder, why)
        self.enqueue(("reconcile",))

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = None
            if self._settling:
                timeout = max(0.0, min(d for _, d in self._settling.values()) - time.monotonic())
            try:
                job = self._queue.get(timeout=timeout)
            except queue.Empty:
                job = ("settled",)
            try:
                self._do(job)
            except _Stopped:
                return
            except Exception:
                log.exception("cataloguer: %s failed", job[0])

    def _do(self, job: tuple[str, ...]) -> None:
        kind = job[0]
        if kind == "check":
            self._settling.pop(job[1], None)
            self.check(job[1])
        elif kind == "created":
            self._created(job[1])
        elif kind == "gone":
            self._settling.pop(job[1], None)
            self._gone(job[1])
        elif kind == "moved":
            self._moved(job[1], job[2])
        elif kind == "dir-moved":
            self._dir_moved(job[1], job[2])
        elif kind == "retry":
            arrival = self._unrecorded.pop(job[1], None)
            if arrival is not None:
                self._record(arrival)
        elif kind == "settled":
            self._settled()
        elif kind == "reconcile":
            with self._reconcile_lock:
                pending, self._reconciles = self._reconciles, {}
            for folder, why in pending.items():
                self.reconcile(folder, why)

    # -- single files (worker thread) ---------------------------------------------------

    def _created(self, path: str) -> None:
        """A file appeared without a close (yet): wait for its close, or for it to settle."""
        if self.locate(path) is None:
            return
        try:
            st = os.lstat(path)
        except OSError:
            return
        if stat_mod.S_ISREG(st.st_mode):
            self._settling[path] = (file_stat(st), time.monotonic() + SETTLE_SECONDS)

    def _settled(self) -> None:
        now = time.monotonic()
        for path, (before, due) in list(self._settling.items()):
            if due > now:
                continue
            try:
                current = file_stat(os.lstat(path))
            except OSError:
                del self._settling[path]
                continue
            if current != before:
                self._settling[path] = (current, now + SETTLE_SECONDS)
                continue
            del self._settling[path]
            self.check(path)

    def _settle_now(self, report: ScanReport, rounds: int = 5) -> None:
        """Wait (a few seconds at most) for files written a moment ago to settle."""
        for _ in range(rounds):
            if not self._settling:
                return
            time.sleep(max(0.0, min(d for _, d in self._settling.values()) - time.monotonic()))
            for path, (before, due) in list(self._settling.items()):
                if due > time.monotonic():
                    continue
                del self._settling[path]
                try:
                    current = file_stat(os.lstat(path))
                except OSError:
                    continue
                if current != before:
                    self._settling[path] = (current, time.monotonic() + SETTLE_SECONDS)
                    continue
                where = self.locate(path)
                if where is None:
                    continue
                found = self._examine(path, where, current, self.catalog.known_at(path), report)
                if found is not None:
                    self._catalogue([found], report)
        report.skipped += [display(p) + " (still being written)" for p in self._settling]
        self._settling.clear()

    def _moved(self, src: str, dest: str) -> None:
        if not dest:  # moved out of the tree
            self._gone(src)
            return
        if self.locate(dest) is None:
            if src:
                self._gone(src)
            return
        self._settling.pop(src, None)
        if src and self.locate(src) is not None:
            try:
                st: FileStat | None = file_stat(os.lstat(dest))
            except OSError:
                st = None
            entry = self.catalog.record_moved(src, dest, self.locate, st)
            if entry is not None:
                log.info("catalog entry %d follows a rename to %s", entry.id, display(entry.path))
                return
        self.check(dest)  # moved in from outside or from staging: whole, check it now

    def _dir_moved(self, src: str, dest: str) -> None:
        if src and dest and self._in_areas(dest) and self._in_areas(src):
            moved = self.catalog.record_moved_tree(src, dest, self.locate)
            if moved:
                log.info("%d catalog entr(ies) follow a folder rename", moved)
        if src:
            self.reconcile(src, "folder moved away")
        if dest:
            self.reconcile(dest, "folder moved in")

    def _gone(self, path: str) -> None:
        if self.locate(path) is None or os.path.lexists(path):
            return
        for entry in self.catalog.at_path(path):
            if entry.is_live and entry.destroy_intent is None:
                self._vanished(entry.id, path)

    def check(self, path: str) -> None:
        """Bring the catalog in line with one file on disk."""
        where = self.locate(path)
        if where is None:
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._gone(path)
            return
        if not stat_mod.S_ISREG(st.st_mode):
            return
        report = ScanReport()
        found = self._examine(path, where, file_stat(st), self.catalog.known_at(path), report)
        if found is not None:
            self._catalogue([found], report)

    # -- shared steps ---------------------------------------------------------------------

    def _examine(
        self,
        path: str,
        where: tuple[str, str, str],
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
            self._settling[path] = (st, time.monotonic() + SETTLE_SECONDS)
            report.deferred += 1
            return None
        found = self._hash(path, where, st, report)
        if found is None or not live:
            return found
        self._compare(live[-1].id, live[-1].sha256, found, report)
        return None

    def _hash(
        self, path: str, where: tuple[str, str, str], st: FileStat, report: ScanReport
    ) -> Found | None:
        """Hash a file (streaming); None if it changed or went while being read."""
        try:
            digest = sha256_file(path)
            after = file_stat(os.lstat(path))
        except OSError:
            return None
        report.hashed += 1
        report.hashed_bytes += st.size
        if after != st:
            self._settling[path] = (after, time.monotonic() + SETTLE_SECONDS)
            return None
        account, area, vpath = where
        return Found(account, area, vpath, path, st.size, digest, st)

    def _compare(self, entry_id: int, expected: str, found: Found, report: ScanReport) -> None:
        if found.sha256 == expected:
            self.catalog.update_baseline(entry_id, found.stat, verified=True)
            return
        if self.catalog.record_altered(entry_id, found.sha256, found.stat):
            report.altered += 1
            entry = self.catalog.get(entry_id)
            log.warning(
                "ALTERED: catalog entry %d %s:%s no longer matches its SHA-256 (now %s)",
                entry_id,
                entry.account,
                display(entry.path),
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

    def _catalogue(self, found: list[Found], report: ScanReport) -> None:
        with self.audit.batch():
            self._catalogue_batch(found, report)

    def _catalogue_batch(self, found: list[Found], report: ScanReport) -> None:
        for item, entry in zip(found, self.catalog.record_found(found), strict=True):
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
            self._audit(
                "catalogued",
                entry,
                size=item.size,
                sha256=item.sha256,
                reason="found on disk outside an upload",
            )

    def _vanished(self, entry_id: int, path: str, report: ScanReport | None = None) -> None:
        reason = "file gone from disk with no destruction record"
        if not self.catalog.record_vanished(entry_id, path, reason):
            return
        if report is not None:
            report.vanished += 1
        entry = self.catalog.get(entry_id)
        log.warning(
            "VANISHED: catalog entry %d %s:%s is gone from disk, not destroyed by the sweeper",
            entry_id,
            entry.account,
            display(entry.path),
        )
        self._audit("vanished", entry, size=entry.size, sha256=entry.sha256, reason=reason)

    def _audit(self, event: str, entry: Entry, **fields: object) -> None:
        self.audit.record(
            event,
            account=entry.account,
            path=entry.path,
            entry=entry.id,
            protocol=self.protocol,
            **fields,
        )

    # -- reconciliation -----------------------------------------------------------------

    def _walk(self, folder: str) -> Iterator[tuple[str, os.stat_result]]:
        """Every regular file below ``folder`` (no symlink followed, staging skipped)."""
        stack = [folder]
        while stack:
            current = stack.pop()
            try:
                with os.scandir(current) as items:
                    for item in items:
                        if self._stop.is_set():
                            raise _Stopped
                        try:
                            st = item.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat_mod.S_ISDIR(st.st_mode):
                            if item.path != self.storage.staging_root:
                                stack.append(item.path)
                        elif stat_mod.S_ISREG(st.st_mode):
                            yield item.path, st
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue

    def reconcile(self, folder: str | None = None, why: str = "scan") -> ScanReport:
        """Make the catalog match the disk (below ``folder``, or everywhere)."""
        started = time.monotonic()
        report = ScanReport()
        roots = (
            [folder]
            if folder is not None
            else [self.storage.members_root, self.storage.outbox_root]
        )
        known: dict[str, list[Known]] = {}
        for root in roots:
            for k in self.catalog.known(root):
                known.setdefault(k.disk_path, []).append(k)
        seen: set[str] = set()
        batch: list[Found] = []
        young_ns = int((self.clock.now().timestamp() - SETTLE_SECONDS) * 1e9)
        for root in roots:
            for path, raw in self._walk(root):
                where = self.locate(path)
                if where is None:
                    continue
                try:
                    path.encode("utf-8")
                except UnicodeEncodeError:
                    report.skipped.append(display(path))
                    continue
                report.files += 1
                seen.add(path)
                st = file_stat(raw)
                found = self._examine(path, where, st, known.get(path, []), report, young_ns)
                if found is None:
                    continue
                batch.append(found)
                if len(batch) >= BATCH:
                    self._catalogue(batch, report)
                    batch = []
        if batch:
            self._catalogue(batch, report)
        if self._worker is None:  # no worker to come back to them (``intake catalog scan``)
            self._settle_now(report)
        for path, entries in known.items():
            if path in seen:
                continue
            for k in entries:
                if (
                    k.state is not ArrivalState.RECEIVING
                    and k.destroy_intent is None
                    and not os.path.lexists(path)
                ):
                    self._vanished(k.id, path, report)
        report.seconds = time.monotonic() - started
        if report.skipped:
            log.warning(
                "%d file(s) not catalogued (name not UTF-8, or still being written): %s",
                len(report.skipped),
                ", ".join(report.skipped[:5]),
            )
        changed = report.catalogued or report.vanished or report.altered
        log.log(
            logging.WARNING if changed else logging.INFO,
            "reconciled %s (%s): %d file(s), %d hashed, %d catalogued, %d vanished, "
            "%d altered in %.2f s",
            display(folder or self.storage.data_dir),
            why,
            report.files,
            report.hashed,
            report.catalogued,
            report.vanished,
            report.altered,
            report.seconds,
        )
        self.reports.append(report)
        return report
