"""What the auditor's report says, gathered from the catalog and the audit log (no HTML here).

``gather`` reads once and hands out plain values; ``intake.services.reports.html`` renders
them. Nothing here trusts a stored string: values are kept as they are and escaped only
by the renderer.

Rules:
- The period is ``[since, until)`` on the time of each fact: ``received_at`` for an
  arrival, the certificate's ``destroyed_at`` for a destruction, the record's ``ts`` for
  everything from the audit log. Either end may be open.
- For an account, the report holds: its backups received in the period (catalog, with
  their SHA-256), who read them (its own downloads, and technicians' downloads of
  ``/<account>/...``), what was forwarded to the vendor, what was destroyed (with the
  signed certificate's fingerprint), its refused operations and failed logins, its logins.
  Receipts read under ``/.receipts/`` are not reads of a backup.
- A refusal that members' clients make on their own, every time, is an expected client
  probe (``is_probe``), counted apart from the real refusals: rclone's shell and hash
  probes over SFTP (``exec`` of ``md5sum``, ``sha1sum``... and the session channels it
  opens past the limit for them), lftp's and WinSCP's permission change after an upload
  (a ``setattr`` of permissions alone). Anything else refused stays a refusal.
- The summary (``--all``) also holds what concerns no account: failed logins with a
  name that is no account (or none), blocks (``banned``/``unbanned``) and refusals
  before a login (``outsiders``).
- Only the audit files whose month can hold records of the period are read.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake.adapters.audit import chain as audit_chain
from intake.adapters.audit import writer as audit_mod
from intake.adapters.catalog.catalog import Catalog, Entry
from intake.core.clock import isoformat, parse_iso
from intake.core.model import Role
from intake.services.documents import signed as documents
from intake.services.documents.receipts import FOLDER as RECEIPTS_FOLDER
from intake.services.instance import Instance

MAX_MONTHS = 36  # months drawn in the charts, the latest ones


@dataclass(frozen=True)
class Window:
    since: _dt.datetime | None = None
    until: _dt.datetime | None = None

    def __contains__(self, moment: _dt.datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )

    def months(self) -> tuple[str, str]:
        """The first and last ``YYYY-MM`` that can hold records of the window."""
        low = self.since.strftime("%Y-%m") if self.since else "0000-00"
        high = self.until.strftime("%Y-%m") if self.until else "9999-99"
        return low, high


@dataclass(frozen=True)
class Fact:
    """One audit record, as the report shows it."""

    at: _dt.datetime
    event: str
    account: str
    role: str = ""
    protocol: str = ""
    ip: str = ""
    path: str = ""
    operation: str = ""
    reason: str = ""
    size: int | None = None
    detail: str = ""  # method of a login, remote path of a forward, ...
    command: str = ""  # the command of a refused exec
    attributes: str = ""  # what a refused attribute change asked for ("permissions")
    until: str = ""  # the end of a block (ISO-8601 UTC)


@dataclass(frozen=True)
class Destruction:
    entry: int
    path: str
    size: int
    sha256: str
    received_at: str
    destroyed_at: _dt.datetime
    policy: str
    integrity: str
    certificate: str | None  # fingerprint of the signed certificate, None if none kept


@dataclass
class AccountReport:
    account: str
    role: str
    backups: list[Entry] = field(default_factory=list)
    reads: list[Fact] = field(default_factory=list)
    forwards: list[Fact] = field(default_factory=list)
    destructions: list[Destruction] = field(default_factory=list)
    refusals: list[Fact] = field(default_factory=list)
    probes: list[Fact] = field(default_factory=list)  # expected client probes (``is_probe``)
    logins: list[Fact] = field(default_factory=list)

    @property
    def received_bytes(self) -> int:
        return sum(e.size for e in self.backups)

    @property
    def technician_reads(self) -> list[Fact]:
        return [r for r in self.reads if r.account != self.account]


@dataclass
class Report:
    scope: str  # "account" | "all"
    instance: str
    key_id: str
    generated_at: _dt.datetime
    window: Window
    accounts: list[AccountReport]
    outsiders: list[Fact] = field(default_factory=list)  # no account's: see the module rules

    def months(self) -> list[str]:
        """``YYYY-MM`` from the first fact (or ``since``) to ``until`` (or now), at most
        ``MAX_MONTHS``, the latest."""
        moments: list[_dt.datetime] = []
        for a in self.accounts:
            moments += [e.received_at for e in a.backups]
            moments += [d.destroyed_at for d in a.destructions]
            moments += [f.at for f in (*a.reads, *a.logins, *a.refusals, *a.forwards)]
        moments += [f.at for f in self.outsiders]
        first = self.window.since or (min(moments) if moments else self.generated_at)
        last = self.window.until - _dt.timedelta(microseconds=1) if self.window.until else None
        last = last or max([*moments, self.generated_at])
        months = []
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            months.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months[-MAX_MONTHS:]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _fact(record: dict[str, Any], at: _dt.datetime, path: str | None = None) -> Fact:
    size = record.get("size")
    return Fact(
        at=at,
        event=_text(record.get("event")),
        account=_text(record.get("account")),
        role=_text(record.get("role")),
        protocol=_text(record.get("protocol")),
        ip=_text(record.get("ip")),
        path=_text(record.get("path")) if path is None else path,
        operation=_text(record.get("operation")),
        reason=_text(record.get("reason")),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        detail=_text(record.get("method") or record.get("remote_path")),
        command=_text(record.get("command")),
        attributes=_text(record.get("attributes")),
        until=_text(record.get("until")),
    )


# What rclone runs over SFTP to learn the remote shell and its hash commands.
PROBE_COMMANDS = frozenset(
    {"echo ${ShellId}%ComSpec%", "md5sum", "md5 -r", "sha1sum", "sha1 -r", "sha256sum"}
)


def is_probe(record: dict[str, Any]) -> bool:
    """A refusal members' clients make on their own, every time (see the module rules)."""
    if record.get("event") != "denied" or record.get("protocol") != "sftp":
        return False
    operation = record.get("operation")
    if operation == "exec":
        command = _text(record.get("command")).strip()
        return command in PROBE_COMMANDS or command.split(" ", 1)[0] in ("md5sum", "sha1sum")
    if operation == "channel session":  # rclone's extra channels for those probes
        return True
    return operation == "setattr" and record.get("attributes") == "permissions"


OUTSIDER_EVENTS = frozenset({"banned", "unbanned"})


def _records(log_dir: Path, window: Window) -> Iterator[tuple[_dt.datetime, dict[str, Any]]]:
    low, high = window.months()
    for path in audit_mod.log_files(log_dir):
        month = path.name.removeprefix(audit_chain.FILE_PREFIX).removesuffix(
            audit_chain.FILE_SUFFIX
        )
        if not low <= month <= high:
            continue
        with path.open("r", encoding="ascii", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    at = parse_iso(str(record["ts"]))
                except (ValueError, KeyError, TypeError):
                    continue
                if isinstance(record, dict) and at in window:
                    yield at, record


def _destructions(catalog: Catalog, account: str, window: Window) -> list[Destruction]:
    found = []
    for kept in catalog.certificates(account, window.since):
        doc = json.loads(kept.document)
        at = parse_iso(kept.destroyed_at)
        if at not in window:
            continue
        found.append(
            Destruction(
                entry=kept.entry_id,
                path=_text(doc.get("path")),
                size=int(doc.get("size") or 0),
                sha256=_text(doc.get("sha256")),
                received_at=_text(doc.get("received_at")),
                destroyed_at=at,
                policy=_text(doc.get("policy")),
                integrity=_text(doc.get("integrity")),
                certificate=documents.fingerprint(doc),
            )
        )
    certified = {d.entry for d in found}
    for e in catalog.entries(account):
        if e.destroyed_at and e.destroyed_at in window and e.id not in certified:
            found.append(  # destroyed before certificates were kept
                Destruction(
                    e.id,
                    e.path,
                    e.size,
                    e.sha256,
                    isoformat(e.received_at),
                    e.destroyed_at,
                    e.policy or "",
                    "",
                    None,
                )
            )
    return sorted(found, key=lambda d: (d.destroyed_at, d.entry))


def _route(
    reports: dict[str, AccountReport],
    roles: dict[str, str],
    records: Iterable[tuple[_dt.datetime, dict[str, Any]]],
    outsiders: list[Fact] | None = None,
) -> None:
    """Hand each audit record to the account report(s) it concerns; what concerns no
    account goes to ``outsiders`` when it is given (the summary)."""
    for at, record in records:
        event = record.get("event")
        account = _text(record.get("account"))
        path = _text(record.get("path"))
        if event == "download":
            mine = reports.get(account)
            if mine is not None and not path.startswith(f"/{RECEIPTS_FOLDER}"):
                mine.reads.append(_fact(record, at))
                continue
            if roles.get(account) == Role.TECHNICIAN.value:
                owner, _, rest = path.lstrip("/").partition("/")
                if owner in reports and rest:
                    reports[owner].reads.append(_fact(record, at, "/" + rest))
            continue
        mine = reports.get(account)
        if mine is None:
            if outsiders is not None and (
                event in OUTSIDER_EVENTS
                or (event in ("login.failed", "denied") and account not in roles)
            ):
                outsiders.append(_fact(record, at))
            continue
        if event == "login.ok":
            mine.logins.append(_fact(record, at))
        elif event in ("login.failed", "denied", "account.attacked"):
            (mine.probes if is_probe(record) else mine.refusals).append(_fact(record, at))
        elif event == "forwarded":
            mine.forwards.append(_fact(record, at))


def roles_of(instance: Instance) -> dict[str, str]:
    return {name: role.value for role in Role for name in instance.accounts.names(role)}


def gather(
    instance: Instance,
    accounts: list[str],
    window: Window,
    scope: str,
    key_id: str,
) -> Report:
    roles = roles_of(instance)
    reports = {name: AccountReport(name, roles.get(name, "")) for name in accounts}
    for name, report in reports.items():
        report.backups = [e for e in instance.catalog.entries(name) if e.received_at in window]
        report.destructions = _destructions(instance.catalog, name, window)
    outsiders: list[Fact] | None = [] if scope == "all" else None
    _route(reports, roles, _records(instance.config.log_dir, window), outsiders)
    return Report(
        scope=scope,
        instance=instance.config.server.hostname,
        key_id=key_id,
        generated_at=instance.clock.now(),
        window=window,
        accounts=[reports[name] for name in accounts],
        outsiders=outsiders or [],
    )


def member_names(instance: Instance) -> list[str]:
    """Every member: by its account, or by a backup of a member area still in the catalog."""
    names = set(instance.accounts.names(Role.MEMBER))
    names |= {e.account for e in instance.catalog.entries() if e.area == "member"}
    return sorted(names)
