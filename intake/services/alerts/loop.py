"""``serve``'s alert loop: deliver the queue, watch the disk, send the daily digest.

Rules:
- One daemon thread. It delivers at start (what a previous run or a CLI command left in
  the queue goes out as soon as the mail server answers), then whenever an alert is
  raised (``Alerts.wake``) and at least every ``TICK`` seconds (throttled groups and
  retries fall due with time).
- Every ``DISK_EVERY`` seconds it measures the data folder's free space: below the
  reserve is a ``disk`` alert (at most one per throttle), back above re-arms it.
- With ``[alerts] digest = "HH:MM [Zone]"``, once a day after that time it queues a
  digest: what the audit log counts since the previous one (received, destroyed,
  forwarded, refused ...). The day it was sent for is kept in the queue's state, so a
  restart never sends two.
- It never takes the server down: every failure is logged and the loop goes on.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
import zoneinfo
from collections import Counter

from intake.adapters.audit import writer as audit_mod
from intake.adapters.diskspace import DiskReserve
from intake.core.alerts import Alert
from intake.core.clock import isoformat, parse_iso
from intake.core.config_values import parse_digest_time
from intake.services.alerts.alerter import Alerts

log = logging.getLogger("intake.alerts")
TICK = 2.0
DISK_EVERY = 60.0
DIGEST_COUNTS = (
    ("reçus", ("upload.complete", "catalogued")),
    ("détruits", ("destroyed",)),
    ("transmis à l'éditeur", ("forwarded",)),
    ("refusés", ("denied", "login.failed")),
    ("interrompus", ("upload.interrupted",)),
    ("transmissions en échec", ("forward.failed",)),
    ("adresses bannies", ("banned",)),
    ("disparus ou altérés", ("vanished", "altered")),
)


def digest_counts(alerts: Alerts, since: _dt.datetime) -> dict[str, str]:
    """What the audit log says happened since ``since``, in the digest's words."""
    seen: Counter[str] = Counter()
    for record in audit_mod.read_records(alerts.cfg.log_dir):
        try:
            if parse_iso(str(record.get("ts", ""))) < since:
                continue
        except ValueError:
            continue
        event = str(record.get("event", ""))
        if event == "alert" and record.get("status") != "raised":
            continue
        seen[event] += 1
    counts = {label: str(sum(seen[e] for e in events)) for label, events in DIGEST_COUNTS}
    counts["alertes"] = str(seen["alert"])
    counts["depuis"] = isoformat(since)
    return counts


class AlertsLoop:
    """The thread; ``stop`` ends it (a delivery in flight finishes within its timeout)."""

    def __init__(self, alerts: Alerts, reserve: DiskReserve | None) -> None:
        self.alerts = alerts
        self.reserve = reserve
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alerts", daemon=True)
        self._next_disk = 0.0
        self._zone_error = ""

    def start(self) -> None:
        self.alerts.in_serve = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.alerts.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.alerts.wake.clear()
            for step in (self.check_disk, self.check_digest, self.alerts.deliver):
                try:
                    step()
                except Exception:
                    log.exception("alerts: %s failed", step.__name__)
            self.alerts.wake.wait(TICK)

    def check_disk(self) -> None:
        if self.reserve is None or time.monotonic() < self._next_disk:
            return
        self._next_disk = time.monotonic() + DISK_EVERY
        space = self.reserve.measure()
        if space.low:
            self.alerts.disk_low(space.free, space.reserve)
        else:
            self.alerts.disk_ok()

    def check_digest(self) -> None:
        alerts = self.alerts
        try:
            when = parse_digest_time(alerts.settings.digest)
        except ValueError:
            return
        if when is None or not alerts.enabled:
            return
        hour, minute, zone_name = when
        try:
            zone = zoneinfo.ZoneInfo(zone_name) if zone_name != "UTC" else _dt.UTC
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            if self._zone_error != zone_name:
                self._zone_error = zone_name
                log.error("alerts.digest: unknown time zone %r: no digest", zone_name)
            return
        now = alerts.clock.now()
        local = now.astimezone(zone)
        if (local.hour, local.minute) < (hour, minute):
            return
        day = local.date().isoformat()
        with alerts.queue.changing_state() as state:
            if state.digest_day == day:
                return
            state.digest_day = day
        since = now - _dt.timedelta(days=1)
        alerts.raise_alert(Alert("digest", now, subject=day, details=digest_counts(alerts, since)))
