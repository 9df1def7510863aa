"""What a sweep says about each file: the report the CLI renders, and the audit records.

Rules:
- A file is described by its catalog id, account, path and size (``describe``); each list
  of the report holds such descriptions plus what happened to the file.
- A problem with one file is a failure in the report and a warning in the log
  (``SweepReport.fail``); the run goes on with the other files.
- Every audit record about a file names it the same way: ``protocol`` (``sweeper``, or
  ``cli`` for ``intake forward``), then catalog ``entry``, ``account`` and ``path``, then
  the event's own fields (``record_entry``).
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from typing import Any

from intake.adapters.audit import writer as audit_mod
from intake.adapters.audit.writer import AuditLog
from intake.core.policy import Catalogued, Plan, Policy

log = logging.getLogger("intake.sweeper")


def describe(entry: Catalogued) -> dict[str, Any]:
    return {"id": entry.id, "account": entry.account, "path": entry.path, "size": entry.size}


def record_entry(
    audit: AuditLog, event: str, entry: Catalogued, protocol: str, **detail: Any
) -> None:
    """The audit record of ``event`` about one catalogued file."""
    audit.record(
        event,
        protocol=protocol,
        entry=entry.id,
        account=entry.account,
        path=entry.path,
        **detail,
    )


@dataclass
class SweepReport:
    """What a run did (or, dry, would do); rendered by the CLI as text or JSON."""

    now: _dt.datetime
    dry_run: bool
    policies: list[Policy] = field(default_factory=list)
    plan: Plan | None = None
    skipped: str = ""
    recovered: int = 0
    destroyed: list[dict[str, Any]] = field(default_factory=list)
    forwarded: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    bytes_freed: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, entry: Catalogued, action: str, reason: str) -> None:
        """``action`` (destroy, forward) failed on ``entry``: reported and logged."""
        self.failures.append({**describe(entry), "action": action, "reason": reason})
        log.warning(
            "entry %d (%s %s): %s failed: %s",
            entry.id,
            entry.account,
            audit_mod.display(entry.path),
            action,
            reason,
        )
