"""Group commit of the audit log: records written while an fsync runs share the next one.

Each caller still returns only once its own record is durable; the chain, one ``os.write``
per record and fail-closed hold. The fsyncs are counted for real (``strace -f -c`` on a
process writing with 50 threads), never by replacing ``os.fsync``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from intake.adapters.audit import signing
from intake.adapters.audit.group import MAX_RANGES, Tickets
from intake.adapters.audit.writer import AuditLog, read_records
from intake.core.clock import SystemClock
from intake.core.errors import AuditUnavailable
from intake.frontends.cli import main as cli
from tests.test_audit_fail_closed import fill, small_log_filesystem

ROOT = Path(__file__).resolve().parents[1]
THREADS = 50
EACH = 20
# every fsync made to last 20 ms more by the tracer (the real call runs after the delay): a
# slow disk, where this machine's may do thousands a second; the grouping then does not
# depend on how busy the CPU is (before group commit: one fsync per record, 20 s here)
SLOW_DISK = ("-e", "inject=fsync:delay_enter=20000")

WRITER = """
import sys, threading
from pathlib import Path
from intake.adapters.audit.writer import AuditLog
from intake.core.clock import SystemClock

log_dir, key = Path(sys.argv[1]), Path(sys.argv[2])
threads, each = int(sys.argv[3]), int(sys.argv[4])
audit = AuditLog(log_dir, SystemClock(), key, 400, 0)
start = threading.Barrier(threads)

def run(n):
    start.wait()
    for i in range(each):
        audit.record("login.ok", account=f"member{n}-{i}", ip="192.0.2.1", protocol="sftp")

workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
audit.close()
"""


def fsyncs_of(summary: str) -> int:
    """The fsync count in ``strace -c``'s table (0 when there was none)."""
    for line in summary.splitlines():
        fields = line.split()
        if fields and fields[-1] == "fsync":
            return int(fields[3])
    return 0


def seqs(log_dir: Path) -> list[int]:
    return [int(r["seq"]) for r in read_records(log_dir)]


class TestGroupCommit:
    def test_50_threads_share_fsyncs_and_the_chain_holds(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """50 threads append 20 records each at once: every record is in the log once,
        seq is consecutive, the log verifies with the public key, and the process made far
        fewer fsyncs than records (one per record before group commit)."""
        strace = shutil.which("strace")
        if strace is None:
            pytest.skip("strace is not installed")
        keys, log_dir = tmp_path / "keys", tmp_path / "log"
        keys.mkdir()
        log_dir.mkdir()
        signing.ensure_audit_key(keys)
        key = keys / signing.AUDIT_KEY_FILE
        public = tmp_path / "audit.pub"
        public.write_bytes(signing.load_signer(key).verifier.pem())
        summary = tmp_path / "strace.txt"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        trace = [strace, "-f", "--seccomp-bpf", "-qq", "-c", "-e", "trace=fsync", *SLOW_DISK]
        writer = [sys.executable, "-c", WRITER, str(log_dir), str(key), str(THREADS), str(EACH)]
        proc = subprocess.run(
            [*trace, "-o", str(summary), *writer],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert 0 == proc.returncode, proc.stderr
        records = list(read_records(log_dir))
        logins = [r["account"] for r in records if r["event"] == "login.ok"]
        expected = {f"member{n}-{i}" for n in range(THREADS) for i in range(EACH)}
        assert len(expected) == len(logins)
        assert expected == set(logins)
        assert list(range(1, len(records) + 1)) == seqs(log_dir)
        argv = ["audit", "verify", "--log-dir", str(log_dir), "--public-key", str(public)]
        assert 0 == cli.main(argv), capsys.readouterr()
        fsyncs = fsyncs_of(summary.read_text())
        assert fsyncs > 0, summary.read_text()  # strace counted something
        assert fsyncs <= len(records) // 8, f"{fsyncs} fsyncs for {len(records)} records"

    def test_concurrent_appenders_on_a_filling_disk_fail_closed(self, tmp_path: Path) -> None:
        """50 threads append while the log's filesystem runs out: a caller whose record
        could not be written gets AuditUnavailable, every other one returns; the log holds
        exactly the records whose append returned, on whole lines, chained. (An fsync error
        cannot be provoked here, no dm-error or FUSE library: this is the write path.)"""
        log_dir = tmp_path / "log"
        log_dir.mkdir()
        with small_log_filesystem(log_dir, "128k"):
            audit = AuditLog(log_dir, SystemClock())
            audit.record("list", account="first", path="/", protocol="sftp")
            filler = fill(log_dir)
            with filler.open("r+b") as handle:  # room for a few records, not for all
                handle.truncate(max(0, filler.stat().st_size - 16384))
            start = threading.Barrier(THREADS)
            returned: list[str] = []
            refused: list[str] = []
            other: list[BaseException] = []
            lock = threading.Lock()

            def run(n: int) -> None:
                start.wait()
                for i in range(4):
                    name = f"t{n}-{i}"
                    try:
                        audit.record("list", account=name, path="/" + "x" * 200, protocol="sftp")
                    except AuditUnavailable:
                        with lock:
                            refused.append(name)
                    except BaseException as exc:  # reported below
                        with lock:
                            other.append(exc)
                    else:
                        with lock:
                            returned.append(name)

            workers = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            assert [] == other
            assert returned, "no record fitted"
            assert refused, "every record fitted: the filesystem did not fill"
            (log_file,) = log_dir.glob("audit-*.jsonl")
            assert log_file.read_bytes().endswith(b"\n")
            logged = [r["account"] for r in read_records(log_dir) if r["account"] != "-"]
            assert "first" == logged[0]  # ("-": fill's own short records)
            assert sorted(returned) == sorted(logged[1:])
            filler.unlink()
            audit.record("list", account="after", path="/", protocol="sftp")
            audit.close()
            numbers = seqs(log_dir)
            assert list(range(1, len(numbers) + 1)) == numbers


class TestTickets:
    """The bookkeeping alone: which tickets a failed fsync leaves failed."""

    def test_a_later_success_never_covers_a_failed_range(self) -> None:
        tickets = Tickets()
        for _ in range(3):
            tickets.issue()
        assert 3 == tickets.begin()
        tickets.finish(3, None)
        tickets.issue()  # 4
        target = tickets.begin()
        tickets.issue()  # 5, written while the fsync runs
        assert 4 == target
        tickets.finish(4, "Input/output error")
        assert tickets.wait(5)  # settled too (failed: it may share the dropped pages)
        tickets.issue()  # 6
        assert 6 == tickets.begin()
        tickets.finish(6, None)
        assert tickets.failure(0, 3) is None
        assert "Input/output error" == tickets.failure(3, 4)
        assert "Input/output error" == tickets.failure(4, 5)
        assert tickets.failure(5, 6) is None
        assert "Input/output error" == tickets.failure(0, 6)  # a batch spanning it

    def test_failed_ranges_are_bounded_and_merge_towards_failure(self) -> None:
        tickets = Tickets()
        for i in range(MAX_RANGES + 10):
            tickets.issue()
            tickets.finish(tickets.begin() or 0, "No space left on device" if i % 2 else None)
        ranges = tickets._failed  # the bound is the point
        assert len(ranges) <= MAX_RANGES
        assert tickets.failure(1, 2) is not None  # merged: the first success now counts failed
        assert tickets.failure(MAX_RANGES + 8, MAX_RANGES + 9) is None


def test_strace_summary_parses() -> None:
    """The parser reads the count column of strace's table, errors column or not."""
    table = (
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.012345          12      1001           fsync\n"
    )
    assert 1001 == fsyncs_of(table)
    assert 7 == fsyncs_of(table.replace("1001           fsync", "7         2 fsync"))
