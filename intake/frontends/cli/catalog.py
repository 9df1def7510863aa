"""``intake catalog list|show|scan``: the catalog for operators, and its reconciliation.

Rules:
- Human output by default: a table, sizes human-readable, times both local and UTC, every
  file name escaped (no client string can drive the operator's terminal). ``--json`` is
  the contract of INTERFACE.md: times ISO-8601 UTC, ``null`` until a thing happens.
- ``list`` shows arrivals (received, forwarded, altered, vanished, destroyed): the catalog
  is a history. Uploads that never completed (receiving, interrupted) only with ``--all``.
  Each shows its policy and the date that policy destroys it (``expires_at``);
  ``--expiring-within 7d`` lists only the live files that go within that time.
- ``show ID``: an unknown ID is exit 1 (one line on stderr), a non-number exit 2.
- ``scan`` reconciles now (what ``serve`` does at start) and exits 0 once done; what it
  found (catalogued, vanished, altered) is in its summary, the audit log and on stderr.
  It shares ``state/recovery.lock``: it never runs beside ``serve``'s recovery of a
  previous run (it waits for it, then says who holds it: exit 1).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timedelta
from typing import Any

from intake.adapters.audit.writer import display
from intake.adapters.catalog.catalog import Entry
from intake.adapters.locks import recovery_lock
from intake.core.clock import isoformat
from intake.core.errors import UsageError
from intake.core.paths import check_account_name
from intake.frontends.cli import common
from intake.services.cataloguer.cataloguer import Cataloguer
from intake.services.retention import RetentionBook

SCAN_WAIT = 120.0  # seconds a scan waits for serve's recovery of a previous run


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB'; bytes below 1 KiB as they are."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def local_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def utc_time(moment: datetime) -> str:
    return isoformat(moment)[:19] + "Z"


def _iso(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment else None


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "account": entry.account,
        "area": entry.area,
        "path": entry.path,
        "size": entry.size,
        "sha256": entry.sha256 or None,
        "received_at": isoformat(entry.received_at),
        "state": entry.state.value,
        "policy": entry.policy,
        "forwarded_at": _iso(entry.forwarded_at),
        "destroyed_at": _iso(entry.destroyed_at),
        "expires_at": _iso(entry.expires_at),
        "remote_path": entry.remote_path,
        "protocol": entry.protocol,
        "source": entry.source,
    }


_WITHIN = re.compile(r"^\s*(\d{1,5})\s*(h|hours?|d|days?|w|weeks?)\s*$", re.IGNORECASE)


def parse_within(text: str) -> timedelta:
    """``7d``, ``12h``, ``2w``, ``30 days``: how far ahead ``--expiring-within`` looks."""
    match = _WITHIN.match(text)
    if not match:
        raise UsageError(
            f"--expiring-within: {text!r} is not a duration like 7d, 12h, 2w or '30 days'"
        )
    amount, unit = int(match.group(1)), match.group(2).lower()[0]
    return (
        timedelta(hours=amount)
        if unit == "h"
        else timedelta(days=amount * (7 if unit == "w" else 1))
    )


def cmd_list(args: argparse.Namespace) -> int:
    if args.account is not None:
        check_account_name(args.account)
    within = parse_within(args.expiring_within) if args.expiring_within else None
    inst = common.open_instance(args)
    if within is None:
        entries = inst.catalog.entries(args.account, include_attempts=args.all)
    else:
        entries = [
            e
            for e in inst.catalog.expiring(inst.clock.now() + within)
            if args.account is None or e.account == args.account
        ]
    if args.json:
        print(json.dumps([entry_json(e) for e in entries], indent=2))
        return 0
    if not entries:
        what = "no catalogued arrival" if within is None else "nothing expires"
        if within is not None:
            what += f" within {args.expiring_within}"
        print(what + (f" for {args.account}" if args.account else ""))
        return 0
    rows = [
        (
            str(e.id),
            display(e.account),
            display(e.path),
            human_size(e.size),
            (e.sha256[:12] + "…") if e.sha256 else "-",
            local_time(e.received_at),
            utc_time(e.received_at),
            e.state.value,
            display(e.policy or "-"),
            utc_time(e.expires_at)[:10] if e.expires_at else "-",
        )
        for e in entries
    ]
    header = (
        "ID",
        "ACCOUNT",
        "PATH",
        "SIZE",
        "SHA-256",
        "RECEIVED (LOCAL)",
        "RECEIVED (UTC)",
        "STATE",
        "POLICY",
        "EXPIRES (UTC)",
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    catalog = common.open_instance(args).catalog
    entry = catalog.get(args.id)
    history = catalog.history(args.id)
    if args.json:
        doc = entry_json(entry)
        doc["history"] = [
            {"at": isoformat(h["at"]), "event": h["event"], "detail": h["detail"]} for h in history
        ]
        print(json.dumps(doc, indent=2))
        return 0
    fields = [
        ("entry", str(entry.id)),
        ("account", display(entry.account)),
        ("path", display(entry.path)),
        ("area", entry.area),
        ("size", f"{human_size(entry.size)} ({entry.size} bytes)"),
        ("sha256", entry.sha256 or "-"),
        ("received", f"{local_time(entry.received_at)} ({utc_time(entry.received_at)})"),
        ("state", entry.state.value),
        ("policy", display(entry.policy or "-")),
        (
            "expires",
            f"{local_time(entry.expires_at)} ({utc_time(entry.expires_at)})"
            if entry.expires_at
            else "-",
        ),
        (
            "forwarded",
            f"{local_time(entry.forwarded_at)} ({utc_time(entry.forwarded_at)})"
            f" to {display(entry.remote_path or '?')}"
            if entry.forwarded_at
            else "-",
        ),
        (
            "destroyed",
            f"{local_time(entry.destroyed_at)} ({utc_time(entry.destroyed_at)})"
            if entry.destroyed_at
            else "-",
        ),
        (
            "how",
            f"{entry.protocol} upload"
            if entry.source == "upload"
            else "found on disk outside an upload",
        ),
    ]
    for name, value in fields:
        print(f"{name + ':':<11} {value}")
    print("history:")
    for h in history:
        detail = " ".join(f"{k}={display(v)}" for k, v in sorted(h["detail"].items()))
        print(f"  {local_time(h['at'])} ({utc_time(h['at'])})  {h['event']:<15} {detail}".rstrip())
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    inst = common.open_instance(args)
    try:
        retention = RetentionBook(inst.catalog, inst.config.policies_dir, inst.accounts)
        retention.reload()
        # Never beside serve's recovery of a previous run (staging, uploads cut).
        lock = recovery_lock(inst.config.state_dir, shared=True)
        lock.acquire(wait=SCAN_WAIT)
        try:
            cataloguer = Cataloguer(
                inst.catalog,
                inst.storage,
                inst.audit,
                inst.clock,
                protocol="cli",
                retention=retention,
            )
            report = cataloguer.reconcile(None, "intake catalog scan")
        finally:
            lock.release()
    finally:
        inst.close()
    if args.json:
        print(
            json.dumps(
                {
                    "files": report.files,
                    "hashed": report.hashed,
                    "catalogued": report.catalogued,
                    "vanished": report.vanished,
                    "altered": report.altered,
                    "seconds": round(report.seconds, 3),
                    "skipped": report.skipped,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"scanned {report.files} file(s) in {report.seconds:.2f} s: {report.hashed} hashed, "
        f"{report.catalogued} catalogued, {report.vanished} vanished, "
        f"{report.altered} altered"
    )
    return 0


def register(subparsers: Any, add: common.Add) -> None:
    """Add ``catalog list|show|scan`` to the ``intake`` parser."""
    catalog = subparsers.add_parser("catalog", help="the catalogued arrivals")
    sub = catalog.add_subparsers(dest="catalog_command", required=True, parser_class=common.Parser)
    p = add(sub, "list", cmd_list, "list catalogued arrivals, oldest first")
    p.add_argument("--account", metavar="NAME", help="only this account's arrivals")
    p.add_argument(
        "--all",
        action="store_true",
        help="also uploads that never completed (receiving, interrupted)",
    )
    p.add_argument(
        "--expiring-within",
        metavar="DURATION",
        help="only live files whose policy destroys them within DURATION (7d, 12h, 2w)",
    )
    p.add_argument("--json", action="store_true")
    p = add(sub, "show", cmd_show, "one catalog entry and its history")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--json", action="store_true")
    p = add(sub, "scan", cmd_scan, "reconcile the catalog with the disk now")
    p.add_argument("--json", action="store_true")
