"""The trigger: watchdog's inotify observer on ``data/``, turned into cataloguer jobs.

The one module that imports watchdog (the single seam); ``intake.services.cataloguer.cataloguer``
starts and stops a ``Watcher``.

Rules:
- The handler runs on watchdog's thread: it only translates an event into a job and queues
  it, never touches the disk or the catalog, never blocks.
- A file closed, created, deleted or moved is a job for the worker; a folder created or
  removed asks for a reconciliation of that folder (inotify can miss what lands in a new
  folder before its watch is in place).
- watchdog reports an inotify queue overflow only in its log: a handler on its logger hears
  it and asks for a full reconciliation.
- Watching is best effort: if the observer cannot start (``fs.inotify.max_user_watches``
  reached), an error is logged and reconciliation at start and on demand remains.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Protocol

from watchdog import events as wd
from watchdog.observers.inotify import InotifyObserver

from intake.services.cataloguer.jobs import Check, Created, DirMoved, Gone, Job, Moved

log = logging.getLogger("intake.cataloguer")

# watchdog 7 re-adds its own callback when a folder is created while it registers the
# folder's parent, and warns that it "will be Overwritten" with the same callback: noise
# (the cataloguer rescans every new folder anyway), kept out of the operator's log.
warnings.filterwarnings(
    "ignore", message="Callback with id .* already exists for watch", category=RuntimeWarning
)

WATCHDOG_LOGGER = "watchdog.observers.inotify_c"


class Jobs(Protocol):
    """Where the watcher sends its work (the cataloguer)."""

    def enqueue(self, job: Job) -> None: ...

    def request_reconcile(self, folder: str | None, why: str) -> None: ...


class _OverflowAlarm(logging.Handler):
    """watchdog only logs an inotify queue overflow: hear it and reconcile."""

    def __init__(self, jobs: Jobs) -> None:
        super().__init__(logging.WARNING)
        self._jobs = jobs

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._jobs.request_reconcile(None, "inotify queue overflow")


class _Handler(wd.FileSystemEventHandler):
    """Runs on watchdog's thread: only translate and queue, never block."""

    EVENTS = [
        wd.DirCreatedEvent,
        wd.DirDeletedEvent,
        wd.DirMovedEvent,
        wd.FileClosedEvent,
        wd.FileCreatedEvent,
        wd.FileDeletedEvent,
        wd.FileMovedEvent,
    ]

    def __init__(self, jobs: Jobs) -> None:
        self._jobs = jobs

    def on_any_event(self, event: wd.FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        jobs = self._jobs
        if isinstance(event, wd.FileClosedEvent):
            jobs.enqueue(Check(src))
        elif isinstance(event, wd.FileCreatedEvent):
            jobs.enqueue(Created(src))
        elif isinstance(event, wd.FileDeletedEvent):
            jobs.enqueue(Gone(src))
        elif isinstance(event, wd.FileMovedEvent):
            jobs.enqueue(Moved(src, dest))
        elif isinstance(event, wd.DirCreatedEvent):
            jobs.request_reconcile(src, "new folder")
        elif isinstance(event, wd.DirDeletedEvent):
            jobs.request_reconcile(src, "folder removed")
        elif isinstance(event, wd.DirMovedEvent):
            jobs.enqueue(DirMoved(src, dest))


class Watcher:
    """An inotify observer on one folder, recursive, feeding ``jobs``."""

    def __init__(self, jobs: Jobs) -> None:
        self._jobs = jobs
        self._observer: InotifyObserver | None = None
        self._alarm: _OverflowAlarm | None = None

    def start(self, folder: str) -> None:
        self._alarm = _OverflowAlarm(self._jobs)
        watchdog_log = logging.getLogger(WATCHDOG_LOGGER)
        if watchdog_log.getEffectiveLevel() > logging.WARNING:
            watchdog_log.setLevel(logging.WARNING)
        watchdog_log.addHandler(self._alarm)
        observer = InotifyObserver(generate_full_events=True)
        try:
            observer.schedule(
                _Handler(self._jobs), folder, recursive=True, event_filter=_Handler.EVENTS
            )
            observer.start()
        except OSError as exc:  # e.g. fs.inotify.max_user_watches reached
            log.error(
                "cannot watch %s (%s): files dropped by hand are catalogued only at "
                "start and by `intake catalog scan`",
                folder,
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
