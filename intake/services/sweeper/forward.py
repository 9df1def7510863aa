"""Forwarding: the planned files go to the vendor over one SFTP connection per run.

Rules:
- Forwarding is off while ``[vendor] host`` is empty: the files wait in the outbox, and
  the report says why. A half-filled ``[vendor]`` is reported, not guessed at.
- One vendor connection per run. A file that fails waits in the retry book
  (``intake.services.sweeper.retry``), and each failure is a ``forward.failed`` audit
  record; when the connection itself is lost, every file still due fails with its reason.
- A forwarded file is recorded (``forwarded_at``, ``forwarded``), then destroyed in the
  same run when its policy says ``then = "forward"``. An altered file is never sent (the
  vendor session hashes what it reads before the rename): it is recorded as ``altered``.
- ``intake forward ID`` (``forward_one``) sends one file now under the run lock; the file
  stays, its own policy still decides when it is destroyed.
"""

from __future__ import annotations

from typing import Any

from intake.adapters.catalog.catalog import Entry
from intake.adapters.forwarder import (
    AlteredError,
    ForwardError,
    VendorSession,
    VendorTarget,
    remote_path_for,
)
from intake.adapters.secrets import load_secret
from intake.core.clock import isoformat
from intake.core.config import Config
from intake.core.errors import UsageError
from intake.core.model import ArrivalState
from intake.core.policy import Decision, Policy, Then
from intake.services.instance import Instance
from intake.services.sweeper.destroy import Destroyer
from intake.services.sweeper.lock import RunLock
from intake.services.sweeper.report import SweepReport, describe, record_entry
from intake.services.sweeper.retry import RetryBook


def vendor_target(cfg: Config) -> VendorTarget | None:
    """The vendor from ``[vendor]``, or None when forwarding is off (``host = ""``)."""
    vendor = cfg.vendor
    if not vendor.host:
        return None
    for key in ("user", "known_hosts"):
        if not getattr(vendor, key):
            raise UsageError(f"{cfg.file}: vendor.{key}: needed when vendor.host is set")
    if not vendor.key and not vendor.password_file:
        raise UsageError(
            f"{cfg.file}: vendor.key: a key or a password_file is needed when vendor.host is set"
        )
    password = None
    if vendor.password_file:
        password = load_secret(vendor.password_file, cfg.root, cfg.file, "vendor.password_file")
    return VendorTarget(
        host=vendor.host,
        port=vendor.port,
        user=vendor.user,
        key_file=cfg.resolve(vendor.key) if vendor.key else None,
        password=password,
        known_hosts=cfg.resolve(vendor.known_hosts),
        remote_dir=vendor.remote_dir or "/",
        verify=cfg.sweeper.forward_verify,
        timeout=float(cfg.sweeper.forward_timeout),
    )


class Forwarder:
    """Sends the catalogued files of one open instance to the vendor."""

    def __init__(self, instance: Instance, destroyer: Destroyer) -> None:
        self.cfg = instance.config
        self.catalog = instance.catalog
        self.audit = instance.audit
        self.clock = instance.clock
        self.destroyer = destroyer

    def retry_book(self) -> RetryBook:
        return RetryBook.of_state(self.cfg.state_dir)

    def note_waiting(
        self, decisions: list[Decision], report: SweepReport, retries: RetryBook
    ) -> list[Decision]:
        """Forwards that wait (forwarding off, backoff); returns those due now."""
        try:
            target = vendor_target(self.cfg)
        except UsageError as exc:
            for d in decisions:
                report.waiting.append({**describe(d.entry), "reason": str(exc)})
            return []
        due = []
        for d in decisions:
            retry = retries.items.get(d.entry.id)
            if target is None:
                reason = "forwarding is off ([vendor] host is empty): waits in the outbox"
            elif retry is not None and retry.next_at > report.now:
                reason = (
                    f"retry after {isoformat(retry.next_at)} "
                    f"(attempt {retry.attempts + 1}; last error: {retry.error})"
                )
            else:
                due.append(d)
                continue
            report.waiting.append({**describe(d.entry), "reason": reason})
        return due

    def forward_all(
        self, decisions: list[Decision], policies: dict[str, Policy], report: SweepReport
    ) -> None:
        if not decisions:
            return
        retries = self.retry_book()
        try:
            due = self.note_waiting(decisions, report, retries)
            if due:
                self._forward_due(due, policies, retries, report)
        finally:
            retries.keep_only({d.entry.id for d in decisions})
            retries.save()

    def _forward_due(
        self,
        due: list[Decision],
        policies: dict[str, Policy],
        retries: RetryBook,
        report: SweepReport,
    ) -> None:
        target = vendor_target(self.cfg)
        if target is None:
            raise UsageError("forwarding is off: [vendor] host is empty")
        session = VendorSession(target)
        try:
            session.connect()
        except ForwardError as exc:
            self._fail_all(due, str(exc), retries, report)
            return
        with session:
            for index, d in enumerate(due):
                entry = self.catalog.get(d.entry.id)
                try:
                    self._send(session, entry, "sweeper")
                except ForwardError as exc:
                    self._failed(entry, str(exc), retries, report)
                    if not session.alive:
                        self._fail_all(due[index + 1 :], str(exc), retries, report)
                        return
                    continue
                retries.succeeded(entry.id)
                report.forwarded.append(
                    {**describe(entry), "remote_path": self.catalog.get(entry.id).remote_path}
                )
                policy = policies.get(d.policy or "")
                if policy is not None and policy.then is Then.FORWARD:
                    self.destroyer.destroy(self.catalog.get(entry.id), policy.name, report)

    def _send(self, session: VendorSession, entry: Entry, protocol: str) -> None:
        remote = remote_path_for(session.target.remote_dir, entry.area, entry.account, entry.path)
        try:
            sent = session.send(entry.disk_path, remote, entry.size, entry.sha256, f"e{entry.id}")
        except AlteredError as exc:
            if self.catalog.record_altered(entry.id, exc.actual_sha256):
                record_entry(
                    self.audit,
                    "altered",
                    entry,
                    protocol,
                    sha256=entry.sha256,
                    actual_sha256=exc.actual_sha256,
                    reason="found when forwarding",
                )
            raise
        at = self.clock.now()
        self.catalog.record_forwarded(entry.id, at, sent.remote_path)
        record_entry(
            self.audit,
            "forwarded",
            entry,
            protocol,
            size=entry.size,
            sha256=entry.sha256,
            remote_path=sent.remote_path,
            vendor=session.target.host,
            verify=session.target.verify,
            resumed=True if sent.already_there else None,
        )

    def _failed(self, entry: Entry, reason: str, retries: RetryBook, report: SweepReport) -> None:
        sweeper = self.cfg.sweeper
        retry = retries.failed(entry.id, reason, report.now, sweeper.retry_after, sweeper.retry_max)
        record_entry(
            self.audit,
            "forward.failed",
            entry,
            "sweeper",
            reason=reason,
            attempt=retry.attempts,
            retry_at=isoformat(retry.next_at),
        )
        report.fail(entry, "forward", reason)

    def _fail_all(
        self, decisions: list[Decision], reason: str, retries: RetryBook, report: SweepReport
    ) -> None:
        """The connection is down: every one of ``decisions`` fails with ``reason``."""
        for d in decisions:
            self._failed(self.catalog.get(d.entry.id), reason, retries, report)

    def forward_one(self, entry_id: int) -> dict[str, Any]:
        """Send one catalogued file to the vendor now (a technician's request on the host).

        The file stays: its own policy still decides when it is destroyed.
        """
        target = vendor_target(self.cfg)
        if target is None:
            raise UsageError(
                f"{self.cfg.file}: forwarding is off: set [vendor] host, user, key and known_hosts"
            )
        with RunLock(self.cfg.state_dir):
            entry = self.catalog.get(entry_id)
            if entry.state is ArrivalState.FORWARDED:
                return {
                    **describe(entry),
                    "remote_path": entry.remote_path,
                    "already": isoformat(entry.forwarded_at or entry.received_at),
                }
            if entry.state is not ArrivalState.RECEIVED:
                raise UsageError(f"catalog entry {entry_id} is {entry.state.value}: not sent")
            try:
                with VendorSession(target) as session:
                    self._send(session, entry, "cli")
            except ForwardError as exc:
                record_entry(self.audit, "forward.failed", entry, "cli", reason=str(exc))
                raise
            done = self.catalog.get(entry_id)
            return {**describe(done), "remote_path": done.remote_path}
