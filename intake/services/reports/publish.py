"""The auditor's reports: one on demand (``intake report``), and the monthly ones of the sweep.

Rules:
- ``build`` renders one report (an account, or every member) for a period, from the
  catalog and the audit log (``data``), as HTML (``html``).
- Monthly reports (``[reports] monthly = true``, the default): each sweep that is not a
  dry run makes sure the last complete month (by the sweep's clock) has its reports in
  ``log/reports/YYYY-MM/``: ``<member>.html`` for each member and ``_all.html`` for the
  summary, in ``[reports] lang``. The auditor reads them, read-only, in
  ``/audit/reports/``. A report already there is never rewritten; each is written to a
  temporary name, fsynced and renamed, so a cut sweep leaves none half-written.
- A report that cannot be written is a warning in the operational log; the sweep's own
  work is not undone for it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import tempfile
from pathlib import Path

from intake.core.errors import IntakeError, UsageError
from intake.services.documents import signed as documents
from intake.services.instance import REPORTS_FOLDER, Instance
from intake.services.reports import html as report_html
from intake.services.reports.data import Window, gather, member_names

log = logging.getLogger("intake.reports")
FOLDER = REPORTS_FOLDER
SUMMARY = "_all.html"


def build(instance: Instance, account: str | None, window: Window, lang: str) -> str:
    """The HTML of one report: ``account``, or every member when it is None."""
    key_id = documents.audit_signer(instance.config).key_id
    if account is None:
        data = gather(instance, member_names(instance), window, "all", key_id)
    else:
        known = {info.account.name for info in instance.accounts.infos()}
        known |= {e.account for e in instance.catalog.entries(account)}
        if account not in known:
            raise UsageError(f"no account {account!r}")
        data = gather(instance, [account], window, "account", key_id)
    return report_html.render(data, lang)


def write_file(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` whole or not at all (temporary name, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def last_complete_month(now: _dt.datetime) -> tuple[str, Window]:
    """``("2026-11", [2026-11-01, 2026-12-01))`` for any ``now`` in December 2026."""
    start_of_this = now.astimezone(_dt.UTC).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    start = (start_of_this - _dt.timedelta(days=1)).replace(day=1)
    return start.strftime("%Y-%m"), Window(start, start_of_this)


def _file_name(member: str | None) -> str:
    return SUMMARY if member is None else f"{member}.html"


def write_monthly(instance: Instance, now: _dt.datetime) -> list[Path]:
    """Make the missing reports of the last complete month; returns the files written."""
    cfg = instance.config
    month, window = last_complete_month(now)
    folder = cfg.log_dir / FOLDER / month
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o750)
        (cfg.log_dir / FOLDER).chmod(0o750)
        names = member_names(instance)
        missing = [n for n in [*names, None] if not (folder / _file_name(n)).exists()]
        if not missing:
            return written
        # One pass over the catalog and the month's audit files serves every member.
        key_id = documents.audit_signer(cfg).key_id
        data = gather(instance, names, window, "all", key_id)
        pages = {
            a.account: dataclasses.replace(data, scope="account", accounts=[a])
            for a in data.accounts
        }
        for name in missing:
            target = folder / _file_name(name)
            page = data if name is None else pages[name]
            write_file(target, report_html.render(page, cfg.reports.lang))
            written.append(target)
    except (OSError, IntakeError) as exc:
        log.warning("monthly reports of %s: %s", month, exc)
    return written
