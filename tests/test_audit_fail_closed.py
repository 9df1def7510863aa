"""Fail closed: when the audit log cannot be written, what it would record does not happen.

The log folder is a small tmpfs filled up (a real ENOSPC, short writes included); the
server runs as a real process, clients are real. Needs root to mount (skipped otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from paramiko.sftp import CMD_CLOSE

from intake.adapters.audit.writer import AuditLog
from intake.core.clock import SystemClock
from intake.core.errors import AuditUnavailable
from tests.clients import SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance
from tests.sweeping import AGES_AGO, catalogue


@contextlib.contextmanager
def small_log_filesystem(log_dir: Path, size: str = "256k") -> Iterator[None]:
    """Mount a tmpfs of ``size`` over ``log_dir`` (its files copied in)."""
    saved = log_dir.with_name("log.saved")
    shutil.copytree(log_dir, saved)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750", "tmpfs", str(log_dir)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(saved)
        pytest.skip(f"cannot mount a small filesystem here: {proc.stderr.strip()}")
    try:
        for item in saved.iterdir():
            if item.is_dir():
                shutil.copytree(item, log_dir / item.name)
            else:
                shutil.copy2(item, log_dir / item.name)
        yield
    finally:
        subprocess.run(["umount", "-l", str(log_dir)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem is full."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert errno.ENOSPC == exc.errno
    with filler.open("ab", buffering=0) as handle, contextlib.suppress(OSError):
        while True:  # the last partial page
            handle.write(b"\0")
    # the audit file's own last page may still have room: use it up with short records,
    # so that no real record (each longer than these) fits any more
    audit = AuditLog(folder, SystemClock())
    with contextlib.suppress(AuditUnavailable):
        for _ in range(100):
            audit.record("list", account="-", path="/")
    audit.close()
    return filler


def strict_upload(client: SftpClient, path: str, data: bytes) -> None:
    """Upload and hear the server's answer to CLOSE (paramiko's close() swallows it)."""
    handle = client.sftp.open(path, "wb")
    handle.write(data)
    handle.flush()
    handle._closed = True  # type: ignore[attr-defined]
    client.sftp._request(CMD_CLOSE, handle.handle)  # type: ignore[attr-defined]


class TestFailClosed:
    def test_writer_raises_and_leaves_no_torn_line(self, tmp_path: Path) -> None:
        """ENOSPC (or a short write) raises AuditUnavailable; the file ends on a whole line
        and the next record, once space is back, chains onto the last whole one."""
        log_dir = tmp_path / "log"
        log_dir.mkdir()
        with small_log_filesystem(log_dir, "64k"):
            audit = AuditLog(log_dir, SystemClock())
            audit.record("list", account="a", path="/", protocol="sftp")
            filler = fill(log_dir)
            with pytest.raises(AuditUnavailable):
                for _ in range(100):
                    audit.record("list", account="a", path="/" + "x" * 300, protocol="sftp")
            (log_file,) = log_dir.glob("audit-*.jsonl")
            assert log_file.read_bytes().endswith(b"\n")
            filler.unlink()
            audit.record("list", account="b", path="/", protocol="sftp")
            audit.close()
            lines = log_file.read_bytes().splitlines()
            assert list(range(1, len(lines) + 1)) == [
                int(line.split(b'"seq": ')[1].split(b",")[0]) for line in lines
            ]

    def test_full_log_refuses_upload_and_login_and_loses_nothing(
        self, instance: TestInstance
    ) -> None:
        """With the log's filesystem full: an upload is refused and not kept, a login is
        refused, every file acknowledged before is intact; space back, the client resends
        and the log verifies whole."""
        log_dir = instance.root / "log"
        with small_log_filesystem(log_dir):
            instance.add_account("alice")
            serve = ServeProcess(instance)
            try:
                client = SftpClient(*serve.addresses["sftp"], "alice", PASSWORD)
                sent: dict[str, bytes] = {}
                client.upload("/first.bak", b"first backup\n" * 1000)
                sent["first.bak"] = b"first backup\n" * 1000
                filler = fill(log_dir)
                refused = None
                for i in range(60):
                    data = f"backup {i}\n".encode() * 500
                    try:
                        strict_upload(client, f"/b{i}.bak", data)
                    except OSError:
                        refused = f"b{i}.bak"
                        break
                    sent[f"b{i}.bak"] = data
                assert refused is not None, "an upload went through with the log full"
                area = instance.area("alice")
                assert not (area / refused).exists()
                for name, data in sent.items():
                    assert data == (area / name).read_bytes()
                login_refused = False
                for _ in range(40):
                    try:
                        SftpClient(*serve.addresses["sftp"], "alice", PASSWORD).close()
                    except Exception:
                        login_refused = True
                        break
                assert login_refused
                filler.unlink()
                client.close()
                client = SftpClient(*serve.addresses["sftp"], "alice", PASSWORD)
                client.upload(f"/{refused}", b"sent again\n")
                client.close()
                assert b"sent again\n" == (area / refused).read_bytes()
                assert 0 == serve.signal(signal.SIGTERM)
            finally:
                serve.kill()
            log_text = serve.log()
            assert "audit log cannot be written" in log_text
            assert "Traceback" not in log_text
            proc = instance.cli("audit", "verify")
            assert 0 == proc.returncode, proc.stdout + proc.stderr
            complete = {r["path"] for r in instance.audit("upload.complete")}
            assert {f"/{n}" for n in sent} | {f"/{refused}"} == complete

    def test_full_log_stops_the_sweep_before_destroying(self, instance: TestInstance) -> None:
        """A sweep that cannot write the audit log destroys nothing: exit 1, one line."""
        instance.add_account("mairie-a")
        backup = instance.area("mairie-a") / "old.sql.gz"
        backup.parent.mkdir(parents=True, exist_ok=True)
        backup.write_bytes(b"old backup\n" * 100)
        catalogue(instance, AGES_AGO)  # received long ago: due
        with small_log_filesystem(instance.root / "log"):
            filler = fill(instance.root / "log")
            proc = instance.cli("sweep")
            assert 1 == proc.returncode
            assert "audit log cannot be written" in proc.stderr
            assert "Traceback" not in proc.stderr
            assert b"old backup\n" * 100 == backup.read_bytes()
            filler.unlink()
            assert 0 == instance.cli("sweep").returncode
            assert not backup.exists()
            assert 0 == instance.cli("audit", "verify").returncode
