"""STAT of a receipt against STAT of a normal file, with many entries in the account. Not a test.

    .venv/bin/python bench/receipts_stat.py [--entries 10000] [--seconds 3] [--rounds 3] [--json]

A fresh instance (on /dev/shm when there is one: filling the catalog is 10 000 committed
transactions) whose member ``mairie-a`` holds ``--entries`` uploads recorded through the
catalog API (``record_received``, spread over 12 folders, each file really on disk so the
start-up reconciliation leaves them held; measured once it has ended), then one real upload
over SFTP. A real
``intake serve`` process on loopback; one paramiko SFTP session STATs, round after round,
for ``--seconds`` each (bounded): the uploaded file ``/2025/target.zip`` (beside ~830
others), then its receipt ``/.receipts/2025/target.zip.receipt.json``. Printed: STAT/s
of each (median, min-max of the rounds) and the ratio normal / receipt (issue 17's target:
within 2x).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.adapters.catalog.catalog import Catalog, FileStat  # noqa: E402
from intake.core.clock import SystemClock  # noqa: E402
from intake.services.instance import init_instance  # noqa: E402
from tests.clients import SftpClient  # noqa: E402
from tests.conftest import PASSWORD, ServeProcess, TestInstance, write_test_config  # noqa: E402

MEMBER = "mairie-a"
NORMAL = "/2025/target.zip"
RECEIPT = "/.receipts/2025/target.zip.receipt.json"


def fill(inst: TestInstance, entries: int) -> None:
    """``entries`` uploads of ``MEMBER``, recorded as the listener records them."""
    area = inst.area(MEMBER)
    data = b"pg_dump"
    digest = hashlib.sha256(data).hexdigest()
    catalog = Catalog(inst.root / "state" / "catalog.db", SystemClock())
    try:
        for n in range(entries):
            rel = f"{2014 + n % 12}/base-{n:06}.zip"
            path = area / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            st = os.lstat(path)
            stat = FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
            catalog.record_received(
                MEMBER, "member", f"/{rel}", str(path), len(data), digest, "sftp", stat
            )
    finally:
        catalog.close()


def rate(client: SftpClient, path: str, seconds: float) -> float:
    """STATs of ``path`` per second over ``seconds`` (one request at a time)."""
    count = 0
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        client.sftp.stat(path)
        count += 1
    return count / (time.monotonic() - started)


def settled(proc: ServeProcess, timeout: float = 120.0) -> None:
    """Wait (bounded) for the start-up reconciliation of the 10 000 files to end."""
    deadline = time.monotonic() + timeout
    while "reconciled" not in proc.log():
        if time.monotonic() > deadline:
            raise SystemExit("the start-up reconciliation did not end in time")
        time.sleep(0.2)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (0 < args.entries <= 200_000 and 0 < args.seconds <= 60 and 0 < args.rounds <= 20):
        parser.error("--entries 1..200000, --seconds 0..60, --rounds 1..20")
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="intake-receipts-", dir=base))
    try:
        root = work / "inst"
        root.mkdir()
        conf = write_test_config(root)
        init_instance(root, SystemClock())
        inst = TestInstance(root, conf)
        inst.add_account(MEMBER)
        started = time.monotonic()
        fill(inst, args.entries)
        filled = time.monotonic() - started
        proc = ServeProcess(inst)
        try:
            settled(proc)
            client = SftpClient(*proc.addresses["sftp"], MEMBER, PASSWORD)
            client.upload(NORMAL, b"the backup that has a receipt")
            client.sftp.stat(RECEIPT)  # signed once: the cache holds it from now on
            normal: list[float] = []
            receipt: list[float] = []
            for _ in range(args.rounds):
                normal.append(rate(client, NORMAL, args.seconds))
                receipt.append(rate(client, RECEIPT, args.seconds))
            client.close()
        finally:
            proc.signal(signal.SIGTERM)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "entries": args.entries,
        "fill_seconds": round(filled, 1),
        "normal_stat_per_s": summary(normal),
        "receipt_stat_per_s": summary(receipt),
        "ratio_normal_over_receipt": statistics.median(normal) / statistics.median(receipt),
        "rounds": {"normal_stat_per_s": normal, "receipt_stat_per_s": receipt},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for name, values in (("normal STAT", normal), ("receipt STAT", receipt)):
        s = summary(values)
        print(
            f"{name:13} {s['median']:8.0f}/s  ({s['min']:.0f}-{s['max']:.0f}, {len(values)} rounds)"
        )
    print(
        f"entries {args.entries} (catalogued in {filled:.1f} s); normal/receipt ratio"
        f" {result['ratio_normal_over_receipt']:.2f} (target <= 2)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
