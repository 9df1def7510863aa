"""The cost of the audit chain: records written per second with the lock and fsync, and
``audit verify`` over a million records.

A fresh log folder and audit key in a temporary folder, written through the real writer
(``intake.adapters.audit.writer.AuditLog``: structlog rendering, ``flock``, head check, one
``os.write``, ``fsync``, signed checkpoints every 1000 records). Then:

- ``plain_fsync``: the floor: ``os.write`` + ``fsync`` of a 250-byte line, no chain;
- ``single``: one process, one record at a time, each fsynced (what serve does per event);
- ``processes``: P processes at once, the same, serialised by the log's ``flock``;
- ``batched``: the chain writer without per-record fsync (``batch()``: a catalog scan)
  fed pre-rendered records; this also grows the log to N records (default 1 000 000);
- ``verify``: ``intake.adapters.audit.verify.verify_log`` over all N records (chain,
  sequence, every checkpoint signature), as ``intake audit verify`` runs it.
- ``--tokens T``: the batched part also writes T ``timestamp`` records, spread evenly,
  each a real RFC 3161 token from a local ``openssl ts`` authority (``tests/tsa.py``)
  for the head a checkpoint just signed; then ``verify_tokens`` is the same check with
  the authority's CA (``audit verify --tsa-ca-file``: every token, every record's cover).

    .venv/bin/python bench/audit_verify.py [--records 1000000] [--fsynced 2000]
        [--processes 4] [--dir /var/tmp] [--tokens 1000]

Writes bench/out/audit_verify.json. Not a test: no figure here is asserted anywhere. On a
shared, loaded machine compare the CPU seconds of ``verify``: wall time then measures the
other tenants.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.adapters.audit import signing, tsa  # noqa: E402
from intake.adapters.audit import verify as audit_verify  # noqa: E402
from intake.adapters.audit.writer import AuditLog  # noqa: E402
from intake.core.clock import SystemClock, isoformat  # noqa: E402


def writer(root: Path) -> AuditLog:
    return AuditLog(root / "log", SystemClock(), root / "keys" / signing.AUDIT_KEY_FILE, 1000, 0)


def write(root: Path, count: int, tag: str) -> None:
    audit = writer(root)
    for i in range(count):
        audit.record(
            "upload.complete",
            account=f"mairie-{tag}",
            ip="192.0.2.10",
            protocol="sftp",
            path=f"/sauvegardes/base-{i:07d}.sql.gz",
            size=123456789,
            sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        )
    audit.close()


def write_batched(root: Path, count: int, tokens: int = 0, url: str = "") -> None:
    """The chain writer itself (lock, head check, write, hash; checkpoints every 1000),
    fed pre-rendered records: what it costs beyond structlog's rendering. ``tokens``:
    that many time-stamps from the authority at ``url``, spread evenly."""
    audit = writer(root)
    every = count // tokens if tokens else 0
    template = (
        '{"ts": "2026-12-02T09:14:03.512204Z", "event": "catalogued", '
        '"account": "mairie-cerilly", "protocol": "cli", "path": "/sauvegardes/base-%07d.sql.gz", '
        '"size": 123456789, '
        '"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}'
    )
    for i in range(count):
        audit.chain.append(template % i, durable=False)
        if every and i % every == every - 1:
            info = audit.checkpoint("timestamp")
            assert info is not None
            token = tsa.request(url, info.head, 30)
            audit.record(
                "timestamp",
                stamps=info.seq,
                head=info.head,
                tsa=token.authority,
                gen_time=isoformat(token.gen_time),
                interval=10**9,  # the records' times are a fixed template: no time rule here
                response=base64.b64encode(token.response).decode(),
            )
    audit.chain.sync()
    audit.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--fsynced", type=int, default=2000, help="records in the fsync runs")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--dir", default=None, help="where to write (default: $TMPDIR)")
    parser.add_argument("--tokens", type=int, default=0, help="time-stamp tokens in the log")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="intake-bench-audit-", dir=args.dir))
    results: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "dir": str(base),
    }
    try:
        (base / "keys").mkdir()
        signing.ensure_audit_key(base / "keys")
        (base / "log").mkdir()

        plain = base / "plain.jsonl"
        line = b'{"ts": "2026-12-02T09:14:03.512204Z", "event": "upload.complete", "x": 1}\n' * 3
        fd = os.open(plain, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        began = time.perf_counter()
        for _ in range(args.fsynced):
            os.write(fd, line)
            os.fsync(fd)
        took = time.perf_counter() - began
        os.close(fd)
        rate = args.fsynced / took
        results["plain_fsync"] = {"records": args.fsynced, "seconds": took, "per_second": rate}
        print(f"baseline, write+fsync without chain or lock: {rate:,.0f} records/s")

        began = time.perf_counter()
        write(base, args.fsynced, "single")
        took = time.perf_counter() - began
        rate = args.fsynced / took
        results["single"] = {"records": args.fsynced, "seconds": took, "per_second": rate}
        print(f"single process, lock+fsync: {args.fsynced / took:,.0f} records/s")

        each = args.fsynced // args.processes
        jobs = [
            multiprocessing.Process(target=write, args=(base, each, f"p{n}"))
            for n in range(args.processes)
        ]
        began = time.perf_counter()
        for job in jobs:
            job.start()
        for job in jobs:
            job.join()
        took = time.perf_counter() - began
        total = each * args.processes
        results["processes"] = {
            "processes": args.processes,
            "records": total,
            "seconds": took,
            "per_second": total / took,
        }
        print(f"{args.processes} processes, lock+fsync: {total / took:,.0f} records/s together")

        remaining = max(0, args.records - total - args.fsynced)
        authority = None
        if args.tokens:
            from tests.tsa import Authority, make_pki

            authority = Authority(make_pki(base / "tsa")).start()
        began = time.perf_counter()
        write_batched(base, remaining, args.tokens, authority.url if authority else "")
        took = time.perf_counter() - began
        if authority is not None:
            authority.stop()
        results["batched"] = {"records": remaining, "seconds": took, "per_second": remaining / took}
        print(f"batched (one fsync), lock per record: {remaining / took:,.0f} records/s")

        size = sum(p.stat().st_size for p in (base / "log").glob("audit-*.jsonl"))
        trusted = [signing.load_signer(base / "keys" / signing.AUDIT_KEY_FILE).verifier]
        began, cpu = time.perf_counter(), time.process_time()
        report = audit_verify.verify_log(base / "log", trusted)
        took, cpu = time.perf_counter() - began, time.process_time() - cpu
        assert report.ok, report.problem
        results["verify"] = {
            "records": report.records,
            "checkpoints": report.checkpoints,
            "bytes": size,
            "seconds": took,
            "cpu_seconds": cpu,
            "per_second": report.records / took,
        }
        print(
            f"verify: {report.records:,} records ({size / 2**20:,.0f} MiB, "
            f"{report.checkpoints:,} checkpoints) in {took:.1f} s ({cpu:.1f} s of CPU)"
        )
        if args.tokens:
            roots = tsa.load_roots(base / "tsa" / "ca.crt")
            began, cpu = time.perf_counter(), time.process_time()
            report = audit_verify.verify_log(base / "log", trusted, tsa_roots=roots)
            took, cpu = time.perf_counter() - began, time.process_time() - cpu
            assert report.ok, report.problem
            results["verify_tokens"] = {
                "records": report.records,
                "tokens": report.timestamps.tokens,
                "seconds": took,
                "cpu_seconds": cpu,
            }
            print(
                f"verify with --tsa-ca-file: {report.records:,} records, "
                f"{report.timestamps.tokens:,} tokens in {took:.1f} s ({cpu:.1f} s of CPU)"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "audit_verify.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
