"""The sweeper: plan with the retention policies, then destroy and forward (borg's prune).

One run: take the run lock, finish any destruction a killed run left half-done, plan
(``intake.core.policy.plan`` with ``now`` from the instance's clock, so ``--now`` governs
the whole run), then carry the plan out. ``dry_run`` plans and reports, changes nothing.

Rules:
- One sweeper at a time per instance: ``state/sweeper.lock`` (``fcntl.flock``) is held by
  every sweep and every ``intake forward``; ``serve``'s sweeper thread and the systemd
  timer's run never overlap (the second one skips, saying so). So a file never has two
  forwarders.
- Policies are read afresh at every run; an invalid policy file stops the run before
  anything is done (``ConfigError`` naming file and key). A file no policy matches is
  kept and reported.
- Destruction is write-ahead, in this order: the file is still there (else: ``vanished``,
  nothing destroyed); ``record_destroy_intent``; re-hash (a mismatch is recorded as
  ``altered`` and the certificate says so); unlink; fsync the folder; the ``destroyed``
  audit record (the certificate: entry, account, path, size, sha256, received_at,
  destroyed_at, policy, integrity); ``record_destroyed``. A run killed at any instant
  leaves an intent that the next run finishes: the file is destroyed once, and the
  certificate is written once (the audit log is checked before writing it again).
- Forwarding: one vendor connection per run; a file that fails waits ``retry_after``,
  doubled at each failure up to ``retry_max`` (``state/forward-retry.json``), and each
  failure is a ``forward.failed`` audit record. A forwarded file is recorded
  (``forwarded_at``, ``forwarded``), then destroyed in the same run when its policy says
  ``forward``. An altered file is never sent.
- The file operations here (hash, unlink, fsync) use ``intake.adapters.storage``'s
  helpers; a file is unlinked only if it is a regular file inside ``data/`` reached
  without a symlink.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake.adapters import audit as audit_mod
from intake.adapters.catalog import Entry
from intake.adapters.forwarder import (
    AlteredError,
    ForwardError,
    VendorSession,
    VendorTarget,
    remote_path_for,
)
from intake.adapters.holidays_fr import working_calendar
from intake.adapters.storage import fsync_dir, sha256_file
from intake.core import policy as policy_mod
from intake.core.clock import isoformat, parse_iso
from intake.core.config import Config
from intake.core.errors import IntakeError, UsageError
from intake.core.model import ArrivalState, Role
from intake.core.paths import is_within
from intake.core.policy import Action, Catalogued, Decision, Plan, Policy, Then
from intake.services.instance import Instance

log = logging.getLogger("intake.sweeper")
LOCK_NAME = "sweeper.lock"
RETRY_NAME = "forward-retry.json"


class SweepBusy(IntakeError):
    """Another sweep or forward holds the instance's sweeper lock."""


class RunLock:
    """``state/sweeper.lock``: an exclusive ``flock``, released when the process dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd = -1

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise SweepBusy(f"another sweep or forward is running (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = -1


def load_policies(folder: Path) -> list[Policy]:
    """Every ``*.toml`` in ``folder`` (hidden files skipped), in the order they are tried."""
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.glob("*.toml") if not p.name.startswith("."))
    texts = []
    for path in files:
        try:
            texts.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read the policy ({exc})") from None
    return policy_mod.parse_policies(texts)


def vendor_target(cfg: Config) -> VendorTarget | None:
    """The vendor from ``[vendor]``, or None when forwarding is off (``host = ""``)."""
    vendor = cfg.vendor
    if not vendor.host:
        return None
    for key in ("user", "key", "known_hosts"):
        if not getattr(vendor, key):
            raise UsageError(f"{cfg.file}: vendor.{key}: needed when vendor.host is set")
    return VendorTarget(
        host=vendor.host,
        port=vendor.port,
        user=vendor.user,
        key_file=cfg.resolve(vendor.key),
        known_hosts=cfg.resolve(vendor.known_hosts),
        remote_dir=vendor.remote_dir or "/",
        verify=cfg.sweeper.forward_verify,
        timeout=float(cfg.sweeper.forward_timeout),
    )


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
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            raw = json.loads(path.read_text(encoding="utf-8"))
            self.items = {
                int(k): Retry(int(v["attempts"]), parse_iso(v["next_at"]), str(v["error"]))
                for k, v in raw.items()
            }

    def save(self) -> None:
        temp = self.path.with_suffix(".tmp")
        doc = {
            str(k): {"attempts": r.attempts, "next_at": isoformat(r.next_at), "error": r.error}
            for k, r in sorted(self.items.items())
        }
        temp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        os.replace(temp, self.path)


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


def _describe(entry: Catalogued) -> dict[str, Any]:
    return {"id": entry.id, "account": entry.account, "path": entry.path, "size": entry.size}


class Sweeper:
    """Plans and applies the retention policies of one open instance."""

    def __init__(self, instance: Instance) -> None:
        self.inst = instance
        self.cfg = instance.config
        self.catalog = instance.catalog
        self.audit = instance.audit
        self.clock = instance.clock
        self.working = working_calendar()
        self._certified: set[int] | None = None

    # -- planning --------------------------------------------------------------------

    def make_plan(self, policies: list[Policy]) -> Plan:
        accounts = self.inst.accounts
        roles = {name: role for role in Role for name in accounts.names(role)}
        return policy_mod.plan(
            self.catalog.live_entries(), policies, self.clock.now(), self.working, roles
        )

    # -- the run ---------------------------------------------------------------------

    def run(self, dry_run: bool = False) -> SweepReport:
        policies = load_policies(self.cfg.policies_dir)
        report = SweepReport(self.clock.now(), dry_run, policies)
        if dry_run:
            report.recovered = len(self.catalog.pending_destroy_intents())
            report.plan = self.make_plan(policies)
            self._note_waiting(
                report.plan.by_action(Action.FORWARD),
                report,
                RetryBook(self.cfg.state_dir / RETRY_NAME),
            )
            return report
        try:
            with RunLock(self.cfg.state_dir):
                self._apply(policies, report)
        except SweepBusy as exc:
            report.skipped = str(exc)
        return report

    def _apply(self, policies: list[Policy], report: SweepReport) -> None:
        self._recover(report)
        report.plan = plan = self.make_plan(policies)
        for decision in plan.decisions:
            entry = decision.entry
            if decision.policy and getattr(entry, "policy", None) != decision.policy:
                self.catalog.set_policy(entry.id, decision.policy)
        self._forward_all(plan.by_action(Action.FORWARD), {p.name: p for p in policies}, report)
        for decision in plan.by_action(Action.DESTROY):
            assert decision.policy is not None
            self._destroy(self.catalog.get(decision.entry.id), decision.policy, report)

    # -- destruction -----------------------------------------------------------------

    def _recover(self, report: SweepReport) -> None:
        """Finish the destructions a killed run recorded the intent of."""
        for entry in self.catalog.pending_destroy_intents():
            log.warning("finishing the destruction of entry %d left by a previous run", entry.id)
            report.recovered += 1
            self._destroy(entry, entry.destroy_intent or "?", report)

    def _already_certified(self, entry_id: int) -> dict[str, Any] | None:
        for record in audit_mod.read_records(self.cfg.log_dir):
            if record.get("event") == "destroyed" and record.get("entry") == entry_id:
                return record
        return None

    def _failure(self, report: SweepReport, entry: Entry, action: str, reason: str) -> None:
        report.failures.append({**_describe(entry), "action": action, "reason": reason})
        log.warning(
            "entry %d (%s %s): %s failed: %s",
            entry.id,
            entry.account,
            audit_mod.display(entry.path),
            action,
            reason,
        )

    def _destroy(self, entry: Entry, policy: str, report: SweepReport) -> None:
        """Destroy one file; a problem with it is a reported failure, the run goes on."""
        try:
            self._destroy_one(entry, policy, report)
        except (IntakeError, OSError) as exc:
            self._failure(report, entry, "destroy", str(exc))

    def _destroy_one(self, entry: Entry, policy: str, report: SweepReport) -> None:
        path = entry.disk_path
        data_dir = os.path.realpath(self.cfg.data_dir)
        if os.path.realpath(path) != os.path.normpath(path) or not is_within(data_dir, path):
            self._failure(report, entry, "destroy", "not a plain path inside data/: refused")
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if entry.destroy_intent is not None:  # unlinked by a run that was then killed
                self._certify(
                    entry,
                    policy,
                    entry.state is not ArrivalState.ALTERED,
                    "",
                    0,
                    report,
                    recovering=True,
                )
                return
            if self.catalog.record_vanished(entry.id, path, "gone before its destruction"):
                self.audit.record(
                    "vanished",
                    protocol="sweeper",
                    entry=entry.id,
                    account=entry.account,
                    path=entry.path,
                    reason="gone before its destruction",
                )
            self._failure(report, entry, "destroy", "the file is missing: recorded as vanished")
            return
        if not stat.S_ISREG(st.st_mode):
            self._failure(report, entry, "destroy", "not a regular file: refused")
            return
        if entry.destroy_intent is None:
            self.catalog.record_destroy_intent(entry.id, policy)
        actual = sha256_file(path)
        verified = actual == entry.sha256
        if not verified and entry.state is not ArrivalState.ALTERED:
            self.catalog.record_altered(entry.id, actual)
            self.audit.record(
                "altered",
                protocol="sweeper",
                entry=entry.id,
                account=entry.account,
                path=entry.path,
                sha256=entry.sha256,
                actual_sha256=actual,
                reason="found when destroying",
            )
        os.unlink(path)
        fsync_dir(os.path.dirname(path))
        report.bytes_freed += st.st_size
        # The certificate is written after the unlink: with the file still here, none was.
        self._certify(entry, policy, verified, actual, st.st_size, report, recovering=False)

    def _certify(
        self,
        entry: Entry,
        policy: str,
        verified: bool,
        actual: str,
        size: int,
        report: SweepReport,
        recovering: bool,
    ) -> None:
        earlier = self._already_certified(entry.id) if recovering else None
        if earlier is not None:
            at = parse_iso(str(earlier.get("destroyed_at") or earlier["ts"]))
            certificate = {k: v for k, v in earlier.items() if k not in ("ts", "event")}
            certificate = {**_describe(entry), **certificate}
        else:
            at = self.clock.now()
            certificate = {
                "protocol": "sweeper",
                "entry": entry.id,
                "account": entry.account,
                "area": entry.area,
                "path": entry.path,
                "size": entry.size,
                "sha256": entry.sha256,
                "received_at": isoformat(entry.received_at),
                "destroyed_at": isoformat(at),
                "policy": policy,
                "integrity": "verified" if verified else "altered",
                "actual_sha256": None if verified or not actual else actual,
                "actual_size": size if size and size != entry.size else None,
                "forwarded_at": isoformat(entry.forwarded_at) if entry.forwarded_at else None,
                "remote_path": entry.remote_path,
            }
            self.audit.record("destroyed", **certificate)
        self.catalog.record_destroyed(entry.id, at, policy, verified)
        report.destroyed.append(
            {"id": entry.id, **{k: v for k, v in certificate.items() if v is not None}}
        )

    # -- forwarding ------------------------------------------------------------------

    def _note_waiting(
        self, decisions: list[Decision], report: SweepReport, retries: RetryBook
    ) -> list[Decision]:
        """Forwards that wait (forwarding off, backoff); returns those due now."""
        try:
            target = vendor_target(self.cfg)
        except UsageError as exc:
            for d in decisions:
                report.waiting.append({**_describe(d.entry), "reason": str(exc)})
            return []
        due = []
        for d in decisions:
            retry = retries.items.get(d.entry.id)
            if target is None:
                reason = "forwarding is off ([vendor] host is empty): waits in the outbox"
                report.waiting.append({**_describe(d.entry), "reason": reason})
            elif retry is not None and retry.next_at > report.now:
                report.waiting.append(
                    {
                        **_describe(d.entry),
                        "reason": (
                            f"retry after {isoformat(retry.next_at)} "
                            f"(attempt {retry.attempts + 1}; last error: {retry.error})"
                        ),
                    }
                )
            else:
                due.append(d)
        return due

    def _forward_all(
        self, decisions: list[Decision], policies: dict[str, Policy], report: SweepReport
    ) -> None:
        if not decisions:
            return
        retries = RetryBook(self.cfg.state_dir / RETRY_NAME)
        try:
            due = self._note_waiting(decisions, report, retries)
            if not due:
                return
            target = vendor_target(self.cfg)
            assert target is not None
            session = VendorSession(target)
            try:
                session.connect()
            except ForwardError as exc:
                for d in due:
                    self._forward_failed(self.catalog.get(d.entry.id), str(exc), retries, report)
                return
            with session:
                for index, d in enumerate(due):
                    entry = self.catalog.get(d.entry.id)
                    try:
                        self._send(session, entry, "sweeper")
                    except ForwardError as exc:
                        self._forward_failed(entry, str(exc), retries, report)
                        if not session.alive:
                            for rest in due[index + 1 :]:
                                self._forward_failed(
                                    self.catalog.get(rest.entry.id), str(exc), retries, report
                                )
                            return
                        continue
                    retries.items.pop(entry.id, None)
                    report.forwarded.append(
                        {**_describe(entry), "remote_path": self.catalog.get(entry.id).remote_path}
                    )
                    policy = policies.get(d.policy or "")
                    if policy is not None and policy.then is Then.FORWARD:
                        self._destroy(self.catalog.get(entry.id), policy.name, report)
        finally:
            planned = {d.entry.id for d in decisions}
            retries.items = {k: v for k, v in retries.items.items() if k in planned}
            retries.save()

    def _send(self, session: VendorSession, entry: Entry, protocol: str) -> None:
        remote = remote_path_for(session.target.remote_dir, entry.area, entry.account, entry.path)
        try:
            sent = session.send(entry.disk_path, remote, entry.size, entry.sha256, f"e{entry.id}")
        except AlteredError as exc:
            if self.catalog.record_altered(entry.id, exc.actual_sha256):
                self.audit.record(
                    "altered",
                    protocol=protocol,
                    entry=entry.id,
                    account=entry.account,
                    path=entry.path,
                    sha256=entry.sha256,
                    actual_sha256=exc.actual_sha256,
                    reason="found when forwarding",
                )
            raise
        at = self.clock.now()
        self.catalog.record_forwarded(entry.id, at, sent.remote_path)
        self.audit.record(
            "forwarded",
            protocol=protocol,
            entry=entry.id,
            account=entry.account,
            path=entry.path,
            size=entry.size,
            sha256=entry.sha256,
            remote_path=sent.remote_path,
            vendor=session.target.host,
            verify=session.target.verify,
            resumed=True if sent.already_there else None,
        )

    def _forward_failed(
        self, entry: Entry, reason: str, retries: RetryBook, report: SweepReport
    ) -> None:
        previous = retries.items.get(entry.id)
        attempts = (previous.attempts if previous else 0) + 1
        sweeper = self.cfg.sweeper
        delay = min(sweeper.retry_after * 2 ** min(attempts - 1, 30), sweeper.retry_max)
        next_at = report.now + _dt.timedelta(seconds=delay)
        retries.items[entry.id] = Retry(attempts, next_at, reason)
        self.audit.record(
            "forward.failed",
            protocol="sweeper",
            entry=entry.id,
            account=entry.account,
            path=entry.path,
            reason=reason,
            attempt=attempts,
            retry_at=isoformat(next_at),
        )
        self._failure(report, entry, "forward", reason)

    # -- intake forward ID -------------------------------------------------------------

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
                    **_describe(entry),
                    "remote_path": entry.remote_path,
                    "already": isoformat(entry.forwarded_at or entry.received_at),
                }
            if entry.state is not ArrivalState.RECEIVED:
                raise UsageError(f"catalog entry {entry_id} is {entry.state.value}: not sent")
            try:
                with VendorSession(target) as session:
                    self._send(session, entry, "cli")
            except ForwardError as exc:
                self.audit.record(
                    "forward.failed",
                    protocol="cli",
                    entry=entry.id,
                    account=entry.account,
                    path=entry.path,
                    reason=str(exc),
                )
                raise
            done = self.catalog.get(entry_id)
            return {**_describe(done), "remote_path": done.remote_path}


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
                log.error("sweeper: %s: nothing done", exc)
            except Exception:
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
