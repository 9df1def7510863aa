"""``intake sweep [--dry-run [--now ISO]] [--json] [--all]`` and ``intake forward ID``.

Rules:
- ``--now`` is for ``--dry-run`` only: it asks what a sweep at that time would do (the
  plan, the waits). A sweep that changes anything always reads the real clock, so nothing
  is destroyed early, no certificate names a time that has not come and no monthly
  report is written for a month not over: ``--now`` without ``--dry-run`` is a usage
  error (exit 2, one line), checked before the instance is opened.
- ``sweep`` exits 0 when everything it tried succeeded (or when it skipped because
  another sweep holds the lock), 1 when a destruction or a forward failed, 2 on bad usage
  or an invalid policy file (then nothing at all is done).
- Human output: one line per file acted on (or, dry, to be acted on), every file kept
  without a policy or held, each naming its policy and reason (a forward that waits:
  forwarding off, backoff, is one ``waiting`` line, never also ``would forward``); then
  a summary (counts, bytes freed, failures). ``--all`` also lists the files kept.
  ``--json``: one object.
- ``forward ID`` sends one catalogued file (a member's backup too) to the vendor now,
  from the host: no download and re-upload over a slow line. The file stays; its policy
  still decides when it is destroyed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from intake.adapters.audit.writer import display
from intake.core.clock import Clock, FixedClock, isoformat, parse_iso
from intake.core.errors import UsageError
from intake.core.policy import Action, Decision
from intake.frontends.cli import common
from intake.frontends.cli.catalog import human_size
from intake.services import instance as instance_mod
from intake.services.instance import Instance
from intake.services.sweeper.sweep import Sweeper, SweepReport

NOW_NEEDS_DRY_RUN = (
    "--now is only for --dry-run: a sweep that destroys or forwards always uses the real "
    "clock (try: intake sweep --dry-run --now TIME)"
)


def _open(args: argparse.Namespace) -> Instance:
    clock: Clock = common.CLOCK
    if getattr(args, "now", None):
        if not getattr(args, "dry_run", False):
            raise UsageError(NOW_NEEDS_DRY_RUN)
        try:
            clock = FixedClock(parse_iso(args.now))
        except ValueError:
            raise UsageError(f"--now: not an ISO-8601 time: {args.now!r}") from None
    cfg = instance_mod.load_config(args.config, dict(os.environ), Path.cwd(), clock)
    return instance_mod.open_instance(cfg, clock)


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "id": d.entry.id,
        "account": d.entry.account,
        "path": d.entry.path,
        "size": d.entry.size,
        "received_at": isoformat(d.entry.received_at),
        "action": d.action.value,
        "policy": d.policy,
        "due": isoformat(d.due) if d.due else None,
        "reason": d.reason,
    }


def report_json(report: SweepReport, everything: bool) -> dict[str, Any]:
    decisions = report.plan.decisions if report.plan else ()
    planned = Counter(d.action.value for d in decisions)
    to_free = sum(d.entry.size for d in decisions if d.action is Action.DESTROY)
    return {
        "now": isoformat(report.now),
        "dry_run": report.dry_run,
        "skipped": report.skipped or None,
        "policies": [
            {"name": p.name, "file": p.file, "priority": p.priority, "rule": p.describe()}
            for p in report.policies
        ],
        "summary": {
            "planned": {a.value: planned.get(a.value, 0) for a in Action},
            "recovered": report.recovered,
            "destroyed": len(report.destroyed),
            "forwarded": len(report.forwarded),
            "waiting": len(report.waiting),
            "failed": len(report.failures),
            "bytes_to_free": to_free,
            "bytes_freed": report.bytes_freed,
        },
        "decisions": [
            _decision_json(d) for d in decisions if everything or d.action is not Action.KEEP
        ],
        "destroyed": report.destroyed,
        "forwarded": report.forwarded,
        "waiting": report.waiting,
        "failures": report.failures,
    }


def _line(label: str, item: dict[str, Any], tail: str) -> str:
    return (
        f"  {label:<16} #{item.get('id', item.get('entry')):<6} {display(item['account']):<20} "
        f"{display(item['path'])}  ({human_size(int(item['size']))})  {tail}"
    )


def print_report(report: SweepReport, everything: bool) -> None:
    doc = report_json(report, everything)
    dry = " (dry run: nothing is changed)" if report.dry_run else ""
    print(f"sweep at {doc['now'][:19]}Z{dry}")
    if report.skipped:
        print(f"skipped: {report.skipped}")
        return
    if not report.policies:
        print("  no policy: every file is kept (see policies/ in the instance)")
    for p in report.policies:
        print(f"  policy {p.name}: {p.describe()}  [{p.file}]")
    if report.recovered:
        done = "would finish" if report.dry_run else "finished"
        print(f"  {done} {report.recovered} destruction(s) a previous run left half-done")
    labels = {
        Action.DESTROY: "would destroy",
        Action.FORWARD: "would forward",
        Action.UNMATCHED: "kept, no policy",
        Action.HOLD: "held",
        Action.KEEP: "kept",
    }
    waits = {w["id"] for w in report.waiting}
    for d in doc["decisions"]:
        action = Action(d["action"])
        if not report.dry_run and action in (Action.DESTROY, Action.FORWARD):
            continue  # said below, as done or failed
        if action is Action.FORWARD and d["id"] in waits:
            continue  # said below as waiting (forwarding off, backoff), not as a forward
        tail = f"{d['policy'] or '-'}: {d['reason']}"
        print(_line(labels[action], d, display(tail)))
    for c in report.forwarded:
        print(_line("forwarded", c, f"-> {display(c.get('remote_path') or '')}"))
    for c in report.destroyed:
        extra = "" if c.get("integrity") == "verified" else "  ALTERED before destruction"
        print(_line("destroyed", c, f"{c['policy']}{extra}"))
    for w in report.waiting:
        print(_line("waiting", w, display(w["reason"])))
    for f in report.failures:
        print(_line(f"{f['action']} FAILED", f, display(f["reason"])))
    s = doc["summary"]
    planned = s["planned"]
    if report.dry_run:
        print(
            f"summary: would destroy {planned['destroy']} ({human_size(s['bytes_to_free'])}), "
            f"would forward {planned['forward'] - s['waiting']}, {planned['keep']} kept, "
            f"{planned['unmatched']} without policy (kept), {planned['hold']} held, "
            f"{s['waiting']} waiting"
        )
        return
    print(
        f"summary: {s['destroyed']} destroyed ({human_size(s['bytes_freed'])} freed), "
        f"{s['forwarded']} forwarded, {planned['keep']} kept, "
        f"{planned['unmatched']} without policy (kept), {planned['hold']} held, "
        f"{s['waiting']} waiting, {s['failed']} failure(s)"
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    inst = _open(args)
    try:
        report = Sweeper(inst).run(dry_run=args.dry_run)
    finally:
        inst.close()
    if args.json:
        print(json.dumps(report_json(report, args.all), indent=2))
    else:
        print_report(report, args.all)
    if report.skipped:
        print(f"intake: {report.skipped}: this sweep is skipped", file=sys.stderr)
    for failure in report.failures:
        print(
            f"intake: error: {failure['action']} #{failure['id']} "
            f"{display(failure['path'])}: {display(failure['reason'])}",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def cmd_forward(args: argparse.Namespace) -> int:
    inst = _open(args)
    try:
        done = Sweeper(inst).forward_one(args.id)
    finally:
        inst.close()
    if args.json:
        print(json.dumps(done, indent=2))
    elif "already" in done:
        print(
            f"#{done['id']} {display(done['path'])}: already forwarded to "
            f"{display(done['remote_path'] or '?')} ({done['already']})"
        )
    else:
        print(
            f"#{done['id']} {display(done['path'])} ({human_size(done['size'])}): "
            f"forwarded to {display(done['remote_path'])}"
        )
    return 0


def register(sub: Any, add: common.Add) -> None:
    """Add ``sweep`` and ``forward`` to the ``intake`` parser."""
    p = add(
        sub,
        "sweep",
        cmd_sweep,
        "apply the retention policies once: destroy what expired, forward what waits",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    p.add_argument(
        "--now",
        metavar="ISO-8601",
        help="with --dry-run only: what a sweep at this time would do",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="also list the files kept")
    p = add(
        sub,
        "forward",
        cmd_forward,
        "send one catalogued file (e.g. a member's backup) to the vendor now",
    )
    p.add_argument("id", type=int, help="the catalog entry (intake catalog list)")
    p.add_argument("--json", action="store_true")
