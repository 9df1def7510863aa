"""The sweeper: plan with the retention policies, then destroy and forward (borg's prune).

One run: take the run lock, finish any destruction a killed run left half-done, plan
(``intake.core.policy.plan`` with ``now`` from the instance's clock), then carry the plan
out. ``dry_run`` plans and reports, changes nothing; ``serve`` and ``intake sweep`` give it
the real clock; the command line lets only a dry run read another (``--dry-run --now``).

Rules:
- One sweeper at a time per instance (``lock``): a run that finds the lock held
  skips, saying so.
- Policies are read afresh at every run; an invalid policy file stops the run before
  anything is done (``ConfigError`` naming file and key). A file no policy matches is
  kept and reported.
- Applying: each decided file's policy is recorded in the catalog, then the forwards run
  (a file whose policy says ``then = "forward"`` is destroyed as soon as it is sent),
  then the destructions.
- A run that applied (not dry, not skipped) leaves its summary in ``state/last-sweep.json``
  (when, how long, what it did, ok or not), even when it failed half-way: ``intake
  status`` and the metrics read it.
- Then, unless ``[reports] monthly = false``, last month's auditor reports are written if
  missing (``intake.services.reports.publish``).

The pieces, each in its own module:

    lock      the run lock (``state/sweeper.lock``)
    report    the report of a run, and the audit records about a file
    destroy   destruction: write-ahead, re-hash, unlink, certificate, recovery
    retry     the backoff of failed forwards (``state/forward-retry.json``)
    forward   forwarding to the vendor, and ``intake forward ID``
    scheduler ``serve``'s scheduler (imports this module, so it is not re-exported)
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from intake.adapters.holidays_fr import working_calendar
from intake.core import policy as policy_mod
from intake.core.clock import isoformat
from intake.core.errors import IntakeError
from intake.core.model import Role
from intake.core.policy import Action, Plan, Policy
from intake.services.instance import Instance
from intake.services.reports.publish import write_monthly
from intake.services.retention import load_policies
from intake.services.status_files import LAST_SWEEP_NAME, write_json
from intake.services.sweeper.destroy import Destroyer
from intake.services.sweeper.forward import Forwarder, vendor_target
from intake.services.sweeper.lock import LOCK_NAME, RunLock, SweepBusy
from intake.services.sweeper.report import SweepReport
from intake.services.sweeper.retry import RETRY_NAME, Retry, RetryBook

__all__ = [
    "LOCK_NAME",
    "RETRY_NAME",
    "Retry",
    "RetryBook",
    "RunLock",
    "SweepBusy",
    "SweepReport",
    "Sweeper",
    "load_policies",
    "vendor_target",
]


class Sweeper:
    """Plans and applies the retention policies of one open instance."""

    def __init__(self, instance: Instance) -> None:
        self.inst = instance
        self.cfg = instance.config
        self.catalog = instance.catalog
        self.clock = instance.clock
        self.working = working_calendar()
        self.destroyer = Destroyer(instance)
        self.forwarder = Forwarder(instance, self.destroyer)

    def make_plan(self, policies: list[Policy]) -> Plan:
        accounts = self.inst.accounts
        roles = {name: role for role in Role for name in accounts.names(role)}
        return policy_mod.plan(
            self.catalog.live_entries(), policies, self.clock.now(), self.working, roles
        )

    def run(self, dry_run: bool = False) -> SweepReport:
        policies = load_policies(self.cfg.policies_dir)
        report = SweepReport(self.clock.now(), dry_run, policies)
        if dry_run:
            report.recovered = len(self.catalog.pending_destroy_intents())
            report.plan = self.make_plan(policies)
            self.forwarder.note_waiting(
                report.plan.by_action(Action.FORWARD), report, self.forwarder.retry_book()
            )
            return report
        try:
            with RunLock(self.cfg.state_dir):
                started, began = time.time(), time.monotonic()
                error = "the sweep stopped half-way"
                try:
                    self._apply(policies, report)
                    error = ""
                finally:
                    self._save_summary(report, started, time.monotonic() - began, error)
                if self.cfg.reports.monthly:
                    write_monthly(self.inst, self.clock.now())
        except SweepBusy as exc:
            report.skipped = str(exc)
        return report

    def _save_summary(
        self, report: SweepReport, started: float, duration: float, error: str
    ) -> None:
        doc = {
            "started_at": started,
            "ended_at": started + duration,
            "duration": round(duration, 3),
            "ok": report.ok and not error,
            "error": error or None,
            "now": isoformat(report.now),
            "destroyed": len(report.destroyed),
            "forwarded": len(report.forwarded),
            "waiting": len(report.waiting),
            "failures": len(report.failures),
            "bytes_freed": report.bytes_freed,
            "pid": os.getpid(),
        }
        # A description only: the catalog and the audit log hold what was done.
        with contextlib.suppress(OSError):
            write_json(self.cfg.state_dir / LAST_SWEEP_NAME, doc)

    def _apply(self, policies: list[Policy], report: SweepReport) -> None:
        # Fail closed: a signed checkpoint first proves the audit log takes records;
        # if it cannot be written, AuditUnavailable stops the run before any destruction.
        self.inst.audit.checkpoint("sweep", force=True)
        self.destroyer.recover(report)
        report.plan = plan = self.make_plan(policies)
        by_name = {p.name: p for p in policies}
        changes = []
        for d in plan.decisions:
            if not d.policy:
                continue
            expires = policy_mod.expires_at(d.entry, by_name[d.policy], self.working)
            if (getattr(d.entry, "policy", None), getattr(d.entry, "expires_at", None)) != (
                d.policy,
                expires,
            ):
                changes.append((d.entry.id, d.policy, expires))
        self.catalog.set_policies(changes)
        self.forwarder.forward_all(
            plan.by_action(Action.FORWARD), {p.name: p for p in policies}, report
        )
        for decision in plan.by_action(Action.DESTROY):
            if decision.policy is None:  # the plan never destroys without a policy
                raise IntakeError(f"entry {decision.entry.id}: destruction planned without policy")
            self.destroyer.destroy(self.catalog.get(decision.entry.id), decision.policy, report)

    def forward_one(self, entry_id: int) -> dict[str, Any]:
        """Send one catalogued file to the vendor now (``intake forward ID``); it stays."""
        return self.forwarder.forward_one(entry_id)
