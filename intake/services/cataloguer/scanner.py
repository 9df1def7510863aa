"""Reconciliation: make the catalog match the disk, below one folder or everywhere.

watchdog is the trigger, reconciliation the guarantee: inotify drops events on queue
overflow and can miss files in a new folder, so the cataloguer reconciles at every start, on
overflow, on each new or moved folder, and on ``intake catalog scan``. A ``Scanner`` is
owned by ``intake.services.cataloguer.cataloguer.Cataloguer`` and examines each file with
the cataloguer's ``Checker``.

Rules:
- One walk, no symlink followed, ``data/.staging`` skipped; a name that is not UTF-8 is not
  catalogued but reported (``ScanReport.skipped``).
- What the catalog knows below the folder is read once, before the walk; each file is then
  examined as ``checker`` says, and new ones are catalogued ``BATCH`` per transaction.
- A file written a moment ago is deferred until it settles: by the worker inside
  ``serve``; without one (``intake catalog scan``) the scan waits a few seconds for it, and
  reports what still moves as skipped.
- What the catalog knew and the walk did not meet is ``vanished``, unless it is being
  received or the sweeper intends to destroy it.
- A scan stops between two files as soon as the cataloguer is stopped (``Stopped``).
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterator

from intake.adapters.audit.writer import display
from intake.adapters.catalog.catalog import Catalog, Found, Known
from intake.adapters.storage import Storage
from intake.core.clock import Clock
from intake.core.model import ArrivalState
from intake.services.cataloguer.checker import (
    SETTLE_SECONDS,
    Checker,
    ScanReport,
    file_stat,
)

log = logging.getLogger("intake.cataloguer")

BATCH = 500  # files catalogued per transaction during a scan


class Stopped(Exception):
    """The cataloguer was stopped in the middle of a scan."""


class Scanner:
    """Walks the areas and brings the catalog in line with every file there."""

    def __init__(
        self,
        catalog: Catalog,
        storage: Storage,
        clock: Clock,
        checker: Checker,
        stopped: threading.Event,
        settles_later: Callable[[], bool],
    ) -> None:
        """``stopped``: set, a scan stops between two files. ``settles_later``: True when a
        worker will come back to files still settling (inside ``serve``)."""
        self._catalog = catalog
        self._storage = storage
        self._clock = clock
        self._checker = checker
        self._stopped = stopped
        self._settles_later = settles_later
        self.reports: list[ScanReport] = []  # one per reconciliation, in order

    def _walk(self, folder: str) -> Iterator[tuple[str, os.stat_result]]:
        """Every regular file with one name below ``folder``, entered by descriptor (a
        folder swapped for a symlink is never followed), staging skipped; a FIFO, device,
        socket or hard link met on the way is refused (audited once)."""
        for path, st in self._storage.walk_beneath(folder):
            if self._stopped.is_set():
                raise Stopped
            if stat_mod.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    self._checker.refuse_special(path, "a hard link (more than one name)")
                    continue
                yield path, st
            elif not stat_mod.S_ISLNK(st.st_mode):
                self._checker.refuse_special(path)

    def reconcile(self, folder: str | None = None, why: str = "scan") -> ScanReport:
        """Make the catalog match the disk (below ``folder``, or everywhere)."""
        started = time.monotonic()
        report = ScanReport()
        roots = (
            [folder]
            if folder is not None
            else [self._storage.members_root, self._storage.outbox_root]
        )
        known: dict[str, list[Known]] = {}
        for root in roots:
            for k in self._catalog.known(root):
                known.setdefault(k.disk_path, []).append(k)
        seen: set[str] = set()
        batch: list[Found] = []
        young_ns = int((self._clock.now().timestamp() - SETTLE_SECONDS) * 1e9)
        for root in roots:
            for path, raw in self._walk(root):
                where = self._checker.locate(path)
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
                found = self._checker.examine(
                    path, where, st, known.get(path, []), report, young_ns
                )
                if found is None:
                    continue
                batch.append(found)
                if len(batch) >= BATCH:
                    self._checker.catalogue(batch, report)
                    batch = []
        if batch:
            self._checker.catalogue(batch, report)
        if not self._settles_later():  # no worker to come back to them
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
                    self._checker.vanished(k.id, path, report)
        report.seconds = time.monotonic() - started
        self._log(report, folder, why)
        self.reports.append(report)
        return report

    def _settle_now(self, report: ScanReport, rounds: int = 5) -> None:
        """Wait (a few seconds at most) for files written a moment ago to settle."""
        for _ in range(rounds):
            due = self._checker.next_due()
            if due is None:
                return
            time.sleep(max(0.0, due - time.monotonic()))
            for path, current in self._checker.take_settled():
                where = self._checker.locate(path)
                if where is not None:
                    self._checker.check_stat(path, where, current, report)
        waiting = self._checker.drop_waiting()
        report.skipped += [display(p) + " (still being written)" for p in waiting]

    def _log(self, report: ScanReport, folder: str | None, why: str) -> None:
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
            display(folder or self._storage.data_dir),
            why,
            report.files,
            report.hashed,
            report.catalogued,
            report.vanished,
            report.altered,
            report.seconds,
        )
