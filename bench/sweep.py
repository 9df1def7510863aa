"""Time of a sweep over a large catalog: planning over N entries, destroying M of them.

A fresh instance in a temporary folder; N catalog entries written through the real
catalog API (``record_found``, received a year ago for the M due ones, today for the
rest), M real files on disk (the others are never touched by the plan). Then:

- ``load``: ``catalog.live_entries()`` (SQLite to ``Entry`` values);
- ``plan``: ``intake.core.policy.plan`` over them with the shipped policies (pure);
- ``dry run``: ``Sweeper.run(dry_run=True)`` (load + plan + report), as ``--dry-run``;
- ``first sweep``: a sweep before anything is due: it records each entry's policy in the
  catalog (one catalog transaction per entry: in real life each arrival gets its policy
  at the first night after it came, months before it is destroyed);
- ``sweep``: ``Sweeper.run()`` at NOW: destroys the M due files (intent, re-hash, unlink,
  folder fsync, audit certificate, catalog record, each);
- ``second sweep``: the same again, nothing left to do (the steady state of a nightly run).

    .venv/bin/python bench/sweep.py [--entries 100000] [--destroy 10000] [--dir /var/tmp]

Writes bench/out/sweep.json. Not a test: no figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.adapters.catalog.catalog import Catalog, FileStat, Found  # noqa: E402
from intake.adapters.holidays_fr import working_calendar  # noqa: E402
from intake.core import config as config_mod  # noqa: E402
from intake.core.clock import FixedClock, SystemClock  # noqa: E402
from intake.core.model import Role  # noqa: E402
from intake.core.policy import Action, plan  # noqa: E402
from intake.services.instance import init_instance, open_instance  # noqa: E402
from intake.services.sweeper.sweep import Sweeper, load_policies  # noqa: E402

NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
MEMBERS = 300


def populate(root: Path, entries: int, due: int) -> None:
    cfg = config_mod.load(root / "intake.toml")
    inst = open_instance(cfg, SystemClock())
    for m in range(MEMBERS):
        inst.accounts.add(f"mairie-{m:03}", Role.MEMBER, None, [])
    inst.close()
    old = Catalog(cfg.state_dir / "catalog.db", FixedClock(NOW - dt.timedelta(days=400)))
    new = Catalog(cfg.state_dir / "catalog.db", FixedClock(NOW - dt.timedelta(days=10)))
    batch_old: list[Found] = []
    batch_new: list[Found] = []
    payload = b"x" * 4096
    digest = hashlib.sha256(payload).hexdigest()
    for i in range(entries):
        member = f"mairie-{i % MEMBERS:03}"
        rel = f"{i // MEMBERS:05}.sql.gz"
        disk = cfg.data_dir / "members" / member / rel
        stat = FileStat(len(payload), 0, i, 0)
        if i < due:
            disk.parent.mkdir(parents=True, exist_ok=True)
            disk.write_bytes(payload)
            st = disk.stat()
            stat = FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
            batch_old.append(
                Found(member, "member", f"/{rel}", str(disk), len(payload), digest, stat)
            )
        else:
            batch_new.append(
                Found(member, "member", f"/{rel}", str(disk), len(payload), digest, stat)
            )
    old.record_found(batch_old)
    new.record_found(batch_new)
    old.close()
    new.close()


def timed(label: str, results: dict[str, float], func):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = func()
    results[label] = round(time.perf_counter() - start, 3)
    print(f"{label:<14} {results[label]:8.3f} s", flush=True)
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--destroy", type=int, default=10_000)
    parser.add_argument("--dir", default=None, help="where the instance is made (a real disk)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="intake-bench-sweep-", dir=args.dir))
    results: dict[str, float] = {}
    try:
        root = work / "inst"
        init_instance(root, SystemClock())
        timed("populate", results, lambda: populate(root, args.entries, args.destroy))
        cfg = config_mod.load(root / "intake.toml")
        inst = open_instance(cfg, FixedClock(NOW))
        try:
            policies = load_policies(cfg.policies_dir)
            live = timed("load", results, inst.catalog.live_entries)
            working = working_calendar()
            planned = timed("plan", results, lambda: plan(live, policies, NOW, working))
            due = len(planned.by_action(Action.DESTROY))
            assert due == args.destroy, (due, args.destroy)
            sweeper = Sweeper(inst)
            timed("dry run", results, lambda: sweeper.run(dry_run=True))
            inst.close()
            early = open_instance(cfg, FixedClock(NOW - dt.timedelta(days=350)))
            first = timed("first sweep", results, Sweeper(early).run)
            early.close()
            assert not first.destroyed
            inst = open_instance(cfg, FixedClock(NOW))
            report = timed("sweep", results, Sweeper(inst).run)
            assert len(report.destroyed) == args.destroy and report.ok, report.failures[:3]
            again = timed("second sweep", results, Sweeper(inst).run)
            assert not again.destroyed
        finally:
            inst.close()
        per_file_ms = 1000 * results["sweep"] / max(args.destroy, 1)
        print(f"{'per destroyed':<14} {per_file_ms:8.2f} ms (sweep / destroyed files)")
        out = {
            "entries": args.entries,
            "destroyed": args.destroy,
            "seconds": results,
            "ms_per_destroyed_file": round(per_file_ms, 2),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "filesystem_dir": str(work),
        }
        (ROOT / "bench" / "out").mkdir(exist_ok=True)
        (ROOT / "bench" / "out" / "sweep.json").write_text(json.dumps(out, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
