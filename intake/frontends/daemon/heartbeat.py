"""What ``serve``'s main loop does at every tick: status file, metrics textfile, watchdog.

Rules:
- ``state/serve.json`` is rewritten every ``PUBLISH_SECONDS`` (pid, start, addresses,
  sessions open) and once more at stop (``state: stopped``); ``intake status`` reads it.
- The metrics textfile (``[metrics] textfile``) is rewritten every ``TEXTFILE_SECONDS``
  and at stop.
- ``WATCHDOG=1`` is sent at half systemd's ``WatchdogSec`` and only while the daemon
  says it is alive (every accept loop running): a wedged front-end, or this loop itself
  stuck, stops the pings and systemd restarts the service.
- A state file that cannot be written is logged once per failure streak; serving goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from intake import __version__
from intake.adapters.systemd import Notifier
from intake.frontends.daemon.metrics_http import write_textfile
from intake.services.health.status import PUBLISH_SECONDS
from intake.services.metrics import Metrics
from intake.services.status_files import SERVE_NAME, write_json

log = logging.getLogger("intake.daemon")
TEXTFILE_SECONDS = 15


class Heartbeat:
    """The periodic duties of the main loop; ``beat`` is cheap when nothing is due."""

    def __init__(
        self,
        state_dir: Path,
        metrics: Metrics,
        notifier: Notifier,
        alive: Callable[[], bool],
        listening: dict[str, str],
        textfile: Path | None = None,
        workers: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        """``workers``: what each worker process is doing (with ``[server] workers``)."""
        self._path = state_dir / SERVE_NAME
        self._workers = workers
        self._metrics = metrics
        self._notifier = notifier
        self._alive = alive
        self._listening = listening
        self._textfile = textfile
        self._started = time.time()
        self._next_publish = 0.0
        self._next_textfile = 0.0
        self._next_watchdog = 0.0
        self._failing = False

    @property
    def tick(self) -> float:
        """How long the loop may sleep between two beats."""
        interval = self._notifier.watchdog_interval
        return min(0.5, interval) if interval else 0.5

    def beat(self) -> None:
        now = time.monotonic()
        interval = self._notifier.watchdog_interval
        if interval and now >= self._next_watchdog and self._alive():
            self._notifier.watchdog()
            self._next_watchdog = now + interval
        if now >= self._next_publish:
            self._next_publish = now + PUBLISH_SECONDS
            self._publish("running")
        if self._textfile is not None and now >= self._next_textfile:
            self._next_textfile = now + TEXTFILE_SECONDS
            self._write_textfile()

    def stopped(self) -> None:
        self._publish("stopped")
        if self._textfile is not None:
            self._write_textfile()

    def _publish(self, state: str) -> None:
        wall = time.time()
        doc = {
            "state": state,
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self._started,
            "updated_at": wall,
            "listening": self._listening,
            "sessions_open": self._metrics.sessions_open(),
        }
        if self._workers is not None:
            doc["workers"] = self._workers() if state == "running" else []
        if state == "stopped":
            doc["stopped_at"] = wall
        self._attempt(lambda: write_json(self._path, doc), self._path)

    def _write_textfile(self) -> None:
        path = self._textfile
        if path is None:
            return
        self._attempt(lambda: write_textfile(path, self._metrics.render()), path)

    def _attempt(self, write: Callable[[], None], path: Path) -> None:
        try:
            write()
        except OSError as exc:
            if not self._failing:
                log.error("cannot write %s: %s (serving goes on)", path, exc.strerror or exc)
            self._failing = True
            return
        self._failing = False
