"""The retry book: when a file whose forward failed may be tried again.

Rules:
- One record per catalog entry (attempts, next try, last error) in
  ``state/forward-retry.json``; a missing book is an empty one. An unreadable one is
  kept aside (``forward-retry.json.bad``, ``.bad.1``...) with a warning, never silently
  overwritten, and the sweep goes on with an empty book (the worst case is an early retry).
- A failure waits ``retry_after`` seconds, doubled at each further failure up to
  ``retry_max``.
- A success forgets the entry; the sweep keeps only the entries it planned to forward, so
  the book never outgrows the outbox.
- The book is written whole to a temporary file, fsynced, renamed over the old one, and
  the folder fsynced: a crash leaves the old book or the new one, whole.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from intake.core.clock import isoformat, parse_iso

RETRY_NAME = "forward-retry.json"
log = logging.getLogger("intake.sweeper")


@dataclass
class Retry:
    attempts: int
    next_at: _dt.datetime
    error: str


class RetryBook:
    """Backoff of failed forwards, per entry, in ``state/forward-retry.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[int, Retry] = {}
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self._set_aside(exc)
            return
        try:
            raw = json.loads(text)
            self.items = {
                int(k): Retry(int(v["attempts"]), parse_iso(v["next_at"]), str(v["error"]))
                for k, v in raw.items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._set_aside(exc)

    def _set_aside(self, problem: Exception) -> None:
        """Keep an unreadable book under a free ``.bad`` name (for a person to look at)."""
        aside = self.path.with_name(f"{self.path.name}.bad")
        number = 0
        while aside.exists():
            number += 1
            aside = self.path.with_name(f"{self.path.name}.bad.{number}")
        try:
            os.rename(self.path, aside)
        except OSError as exc:
            log.warning(
                "forward retry book %s unreadable (%s), not moved: %s", self.path, problem, exc
            )
            return
        log.warning(
            "forward retry book %s unreadable (%s): kept as %s; failed forwards may retry early",
            self.path,
            type(problem).__name__,
            aside,
        )

    @classmethod
    def of_state(cls, state_dir: Path) -> RetryBook:
        return cls(state_dir / RETRY_NAME)

    def failed(
        self, entry_id: int, reason: str, now: _dt.datetime, retry_after: int, retry_max: int
    ) -> Retry:
        """Count one more failure of ``entry_id`` and set when it may be tried again."""
        previous = self.items.get(entry_id)
        attempts = (previous.attempts if previous else 0) + 1
        delay = min(retry_after * 2 ** min(attempts - 1, 30), retry_max)
        retry = Retry(attempts, now + _dt.timedelta(seconds=delay), reason)
        self.items[entry_id] = retry
        return retry

    def succeeded(self, entry_id: int) -> None:
        self.items.pop(entry_id, None)

    def keep_only(self, entry_ids: Collection[int]) -> None:
        self.items = {k: v for k, v in self.items.items() if k in entry_ids}

    def save(self) -> None:
        temp = self.path.with_suffix(".tmp")
        doc = {
            str(k): {"attempts": r.attempts, "next_at": isoformat(r.next_at), "error": r.error}
            for k, r in sorted(self.items.items())
        }
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(doc, indent=1).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
