"""The cataloguer: every arrival in ``data/`` recorded once, with its SHA-256.

The entry point: ``Cataloguer`` is imported from here. It owns its parts, each an object
with its own state, given what it needs (each module's docstring states its own rules):

    cataloguer   ``Cataloguer``: the listener (uploads through the server), the worker
                 thread and its queue; composes a ``Watcher``, a ``Scanner``, a ``Checker``
    jobs         the worker's work items, one typed event per kind
    watcher      ``Watcher``: watchdog's observer and handler (the one module importing
                 watchdog)
    scanner      ``Scanner``: reconciliation: walk the areas, make the catalog match the disk
    checker      ``Checker``: one file against the catalog: layout, settle, hash, record,
                 audit

Two ways in, one record:
- Uploads through the server: the ``Cataloguer`` implements ``FileEvents`` (what a
  ``FileSession`` announces to its listeners). ``started`` makes a
  ``receiving`` entry (so no scan takes the file while it lands), ``received`` records the
  size and SHA-256 computed in flight (never rehashed) with the server's clock, on the
  protocol thread, before the client hears its close acknowledged; ``interrupted`` and
  ``renamed`` follow the entry; ``times_set`` (a client's "preserve timestamp") moves the
  stat baseline along, so a new mtime is never taken for an alteration nor rehashed.
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
- An upload the catalog could not record at once is retried by the worker: the client's
  file is in place whatever happens to its record.
- Requests to reconcile coalesce: a pending full reconciliation absorbs any folder's.
- One owner per thread: the ``Cataloguer`` starts and stops its worker, the ``Watcher``
  (started and stopped by the ``Cataloguer``) watchdog's observer.
"""

from __future__ import annotations

import logging
import os
import queue
import stat as stat_mod
import threading
import time

from intake.adapters.audit.writer import AuditLog, display
from intake.adapters.catalog.catalog import Catalog
from intake.adapters.catalog.model import Entry
from intake.adapters.storage import Storage
from intake.core.authz import Area
from intake.core.clock import Clock
from intake.core.errors import IntakeError
from intake.services.cataloguer.checker import (
    SETTLE_SECONDS,
    Checker,
    ScanReport,
    file_stat,
    stat_or_none,
)
from intake.services.cataloguer.jobs import (
    Check,
    Created,
    DirMoved,
    Gone,
    Job,
    Moved,
    Reconcile,
    Retry,
    Settled,
    Wake,
)
from intake.services.cataloguer.scanner import Scanner, Stopped
from intake.services.cataloguer.watcher import Watcher
from intake.services.files import Arrival, FileEvents
from intake.services.retention import RetentionBook

__all__ = ["SETTLE_SECONDS", "Cataloguer", "ScanReport"]

log = logging.getLogger("intake.cataloguer")


class Cataloguer(FileEvents):
    """Keeps the catalog equal to what arrived; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        storage: Storage,
        audit: AuditLog,
        clock: Clock,
        protocol: str | None = None,
        retention: RetentionBook | None = None,
    ) -> None:
        """``protocol``: "cli" for ``intake catalog scan``; None inside ``serve``."""
        self.catalog = catalog
        self.storage = storage
        self._audit = audit
        self._stop = threading.Event()
        self._queue: queue.Queue[Job] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._checker = Checker(catalog, storage, audit, protocol, retention)
        self._scanner = Scanner(
            catalog, storage, clock, self._checker, self._stop, self._settles_later
        )
        self._watcher = Watcher(self)
        self._reconciles: dict[str | None, str] = {}  # folder (None: all) -> why
        self._reconcile_lock = threading.Lock()
        self._unrecorded: dict[str, Arrival] = {}  # uploads whose recording must be retried

    @property
    def reports(self) -> list[ScanReport]:
        """One per reconciliation, in order."""
        return self._scanner.reports

    def reconcile(self, folder: str | None = None, why: str = "scan") -> ScanReport:
        """Make the catalog match the disk (below ``folder``, or everywhere)."""
        return self._scanner.reconcile(folder, why)

    # -- the listener (protocol threads) -------------------------------------------------

    def started(self, account: str, area: Area, path: str, protocol: str) -> None:
        target = self._checker.disk_path(account, area, path)
        if target is not None:
            self.catalog.begin_receiving(account, area.value, path, target, protocol)

    def received(self, arrival: Arrival) -> None:
        try:
            self._record(arrival)
            self._checker.assign_policies()
        except Exception:
            # The client's file is in place whatever happens here: retry off its thread.
            log.exception("could not catalogue %s at once; retrying", display(arrival.path))
            self._unrecorded[arrival.disk_path] = arrival
            self.enqueue(Retry(arrival.disk_path))

    def _record(self, arrival: Arrival) -> None:
        self.catalog.record_received(
            arrival.account,
            arrival.area.value,
            arrival.path,
            arrival.disk_path,
            arrival.size,
            arrival.sha256,
            arrival.protocol,
            stat_or_none(arrival.disk_path),
        )

    def interrupted(self, account: str, area: Area, path: str, size: int, reason: str) -> None:
        target = self._checker.disk_path(account, area, path)
        if target is not None:
            self.catalog.record_interrupted(target, size, reason)
            # A file put there by hand while the upload was open was left to it: check now.
            self.enqueue(Check(target))

    def renamed(
        self,
        account: str,
        area: Area,
        old_path: str,
        new_path: str,
        old_disk_path: str,
        new_disk_path: str,
    ) -> None:
        st = stat_or_none(new_disk_path)
        if (
            self.catalog.record_moved(old_disk_path, new_disk_path, self._checker.locate, st)
            is None
        ):
            self.enqueue(Check(new_disk_path))  # never catalogued: the worker hashes it

    def times_set(self, disk_path: str, before: os.stat_result, after: os.stat_result) -> None:
        if not self.catalog.record_times_set(disk_path, file_stat(before), file_stat(after)):
            self.enqueue(Check(disk_path))  # baseline was stale anyway: the worker hashes

    # -- running -------------------------------------------------------------------------

    def start(self, watch: bool = True) -> None:
        """Serve start: close what the last run left receiving, watch, reconcile (async)."""
        self._recover_received()
        cut = self.catalog.interrupt_all_receiving("the server stopped before the upload ended")
        if cut:
            log.warning("%d upload(s) cut by the previous stop recorded as interrupted", len(cut))
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="cataloguer", daemon=True)
        self._worker.start()
        if watch:
            self._watcher.start(self.storage.data_dir)
        self.request_reconcile(None, "server start")

    def start_listening(self) -> None:
        """A worker process: catalogue its own uploads (retrying a record that failed),
        nothing else; the supervisor's cataloguer recovers, watches and reconciles."""
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="cataloguer", daemon=True)
        self._worker.start()

    def settle_orphans(self, entries: list[Entry], reason: str) -> tuple[int, int]:
        """Uploads left ``receiving`` by a worker process that died (the supervisor found
        no live process holding them): one whose file is in place was committed and is
        recorded received; the others are interrupted (audited ``upload.interrupted``,
        their staging leftovers removed). Returns (received, interrupted)."""
        received = interrupted = 0
        for entry in entries:
            if self._record_in_place(entry):
                received += 1
                continue
            self.storage.discard_staged(entry.disk_path)
            if not self.catalog.record_interrupted(entry.disk_path, 0, reason):
                continue  # its upload ended meanwhile, in a live process
            interrupted += 1
            self._audit.record(
                "upload.interrupted",
                account=entry.account,
                protocol=entry.protocol or "unknown",
                path=entry.path,
                size=0,
                reason=reason,
            )
        if received:
            self._checker.assign_policies()
        return received, interrupted

    def _record_in_place(self, entry: Entry) -> bool:
        try:
            digest, raw = self.storage.hash_beneath(entry.disk_path)
        except (OSError, IntakeError):
            return False
        self.catalog.record_received(
            entry.account,
            entry.area,
            entry.path,
            entry.disk_path,
            raw.st_size,
            digest,
            entry.protocol or "unknown",
            file_stat(raw),
        )
        log.warning(
            "upload of %s was in place when the process receiving it ended: recorded as received",
            display(entry.path),
        )
        return True

    def _recover_received(self) -> None:
        """Uploads left ``receiving`` whose file is in place were committed (the rename is
        the commit point) by a server killed before it recorded them: received, not cut."""
        recovered = sum(self._record_in_place(entry) for entry in self.catalog.receiving())
        if recovered:
            self._checker.assign_policies()

    def stop(self) -> None:
        self._watcher.stop()
        self._stop.set()
        self._queue.put(Wake())
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None

    def enqueue(self, job: Job) -> None:
        self._queue.put(job)

    def request_reconcile(self, folder: str | None, why: str) -> None:
        """Ask the worker to reconcile ``folder`` (None: everything); requests coalesce."""
        with self._reconcile_lock:
            if None in self._reconciles:
                return
            if folder is None:
                self._reconciles.clear()
            self._reconciles.setdefault(folder, why)
        self.enqueue(Reconcile())

    def _settles_later(self) -> bool:
        """True when a worker will come back to files still settling (inside ``serve``)."""
        return self._worker is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            due = self._checker.next_due()
            timeout = None if due is None else max(0.0, due - time.monotonic())
            try:
                job = self._queue.get(timeout=timeout)
            except queue.Empty:
                job = Settled()
            try:
                self._do(job)
            except Stopped:
                return
            except Exception:
                log.exception("cataloguer: %s failed", type(job).__name__)

    def _do(self, job: Job) -> None:
        match job:
            case Check(path):
                self._checker.forget(path)
                self._checker.check(path)
            case Created(path):
                self._created(path)
            case Gone(path):
                self._checker.forget(path)
                self._checker.gone(path)
            case Moved(src, dest):
                self._moved(src, dest)
            case DirMoved(src, dest):
                self._dir_moved(src, dest)
            case Retry(path):
                arrival = self._unrecorded.pop(path, None)
                if arrival is not None:
                    self._record(arrival)
                    self._checker.assign_policies()
            case Settled():
                for settled, _ in self._checker.take_settled():
                    self._checker.check(settled)
            case Reconcile():
                with self._reconcile_lock:
                    pending, self._reconciles = self._reconciles, {}
                for folder, why in pending.items():
                    self._scanner.reconcile(folder, why)
            case Wake():
                pass

    # -- single files (worker thread) ---------------------------------------------------

    def _created(self, path: str) -> None:
        """A file appeared without a close (yet): wait for its close, or for it to settle."""
        if self._checker.locate(path) is None:
            return
        try:
            st = os.lstat(path)
        except OSError:
            return
        if stat_mod.S_ISREG(st.st_mode):
            self._checker.wait(path, file_stat(st))

    def _moved(self, src: str, dest: str) -> None:
        if not dest:  # moved out of the tree
            self._checker.gone(src)
            return
        if self._checker.locate(dest) is None:
            if src:
                self._checker.gone(src)
            return
        self._checker.forget(src)
        if src and self._checker.locate(src) is not None:
            entry = self.catalog.record_moved(src, dest, self._checker.locate, stat_or_none(dest))
            if entry is not None:
                log.info("catalog entry %d follows a rename to %s", entry.id, display(entry.path))
                return
        self._checker.check(dest)  # moved in from outside or from staging: whole, check it now

    def _dir_moved(self, src: str, dest: str) -> None:
        if src and dest and self._checker.in_areas(dest) and self._checker.in_areas(src):
            moved = self.catalog.record_moved_tree(src, dest, self._checker.locate)
            if moved:
                log.info("%d catalog entr(ies) follow a folder rename", moved)
        if src:
            self._scanner.reconcile(src, "folder moved away")
        if dest:
            self._scanner.reconcile(dest, "folder moved in")
