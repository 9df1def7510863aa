"""``serve``'s sweeper: the in-process scheduler of sweeps.

Rules:
- A sweep at start, then one every ``[sweeper] interval`` seconds, in a daemon thread.
  Each sweep takes the run lock like any other, so it skips (and says so) while a timer's
  run or an ``intake forward`` holds it.
- A failed sweep is logged and the schedule goes on; it never takes the server down.
- ``stop`` waits ``timeout`` for a running sweep, then abandons it with the process: its
  destructions are write-ahead (the next run finishes them), its forwards redone.
"""

from __future__ import annotations

import logging
import threading

from intake.core.errors import IntakeError
from intake.services.instance import Instance
from intake.services.sweeper.sweep import Sweeper, load_policies

log = logging.getLogger("intake.sweeper")


class SweeperThread:
    """``serve``'s sweeper: a sweep at start, then every ``[sweeper] interval`` seconds.

    A sweep still running at ``stop`` is left to finish within ``timeout``, then abandoned
    with the process (its destructions are write-ahead, its forwards redone next time).
    """

    def __init__(self, instance: Instance, interval: int) -> None:
        self.instance = instance
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def start(self) -> None:
        log.info(
            "sweeper: every %d s (policies in %s)", self.interval, self.instance.config.policies_dir
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                report = Sweeper(self.instance).run()
                result = "skipped" if report.skipped else "ok" if report.ok else "failed"
                self.instance.metrics.inc("intake_sweeps_total", result=result)
                if report.skipped:
                    log.info("sweeper: %s: skipped", report.skipped)
                else:
                    log.info(
                        "sweeper: %d destroyed (%d bytes), %d forwarded, %d waiting, %d failure(s)",
                        len(report.destroyed),
                        report.bytes_freed,
                        len(report.forwarded),
                        len(report.waiting),
                        len(report.failures),
                    )
            except IntakeError as exc:
                self.instance.metrics.inc("intake_sweeps_total", result="failed")
                log.error("sweeper: %s: nothing done", exc)
            except Exception:
                self.instance.metrics.inc("intake_sweeps_total", result="failed")
                log.exception("sweeper: the sweep failed")
            self._stop.wait(self.interval)

    def reload(self) -> None:
        """SIGHUP: check the policies now (every sweep reads them afresh anyway)."""
        try:
            policies = load_policies(self.instance.config.policies_dir)
        except IntakeError as exc:
            log.error("policies: %s (the next sweep will do nothing until this is fixed)", exc)
            return
        log.info("policies reloaded: %s", ", ".join(p.name for p in policies) or "none")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "sweeper: a sweep is still running; abandoned (the next run finishes it)"
                )
