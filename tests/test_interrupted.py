"""Uploads cut before the client closed the file: never received, always audited."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.clients import SftpClient
from tests.conftest import PASSWORD, RunningServer, ServeProcess, TestInstance, wait_for


def received_files(instance: TestInstance, member: str) -> list[str]:
    return sorted(p.name for p in instance.area(member).rglob("*") if p.is_file())


def staging(instance: TestInstance) -> list[Path]:
    return list((instance.root / "data" / ".staging").iterdir())


class TestCutConnections:
    def test_dropped_connection_leaves_no_file(self, server: RunningServer) -> None:
        """The client vanishes mid-upload: no file, partial data gone, one audit record."""
        server.instance.add_account("mairie-a")
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        handle = client.sftp.open("/partial.bak", "wb")
        handle.write(b"x" * 1_000_000)
        handle.flush()
        client.transport.sock.close()  # type: ignore[attr-defined]
        [record] = wait_for(lambda: server.instance.audit("upload.interrupted"))
        assert "/partial.bak" == record["path"]
        assert "mairie-a" == record["account"]
        assert [] == received_files(server.instance, "mairie-a")
        assert [] == staging(server.instance)
        assert [] == server.instance.audit("upload.complete")

    def test_killed_openssh_client_leaves_no_file(
        self, server: RunningServer, tmp_path: Path
    ) -> None:
        """OpenSSH sftp killed (SIGKILL) in the middle of a rate-limited put."""
        server.instance.add_account("mairie-a", key=True)
        host, port = server.sftp
        local = tmp_path / "big.bak"
        local.write_bytes(b"y" * 20_000_000)
        batch = tmp_path / "batch"
        batch.write_text(f"put {local}\n")
        proc = subprocess.Popen(
            [
                "sftp",
                "-l",
                "4000",
                "-b",
                str(batch),
                "-P",
                str(port),
                "-o",
                f"UserKnownHostsFile={server.instance.known_hosts(host, port)}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
                str(server.instance.keys["mairie-a"]),
                f"mairie-a@{host}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: staging(server.instance) and staging(server.instance)[0].stat().st_size)
        proc.kill()
        proc.wait(10)
        wait_for(lambda: server.instance.audit("upload.interrupted"))
        assert [] == received_files(server.instance, "mairie-a")
        assert [] == staging(server.instance)

    def test_other_uploads_are_unaffected(self, server: RunningServer) -> None:
        """One member's cut upload does not disturb another's upload."""
        server.instance.add_account("mairie-a")
        server.instance.add_account("mairie-b")
        a = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        b = SftpClient(*server.sftp, "mairie-b", PASSWORD)
        handle = a.sftp.open("/cut.bak", "wb")
        handle.write(b"a" * 100_000)
        handle.flush()
        a.transport.sock.close()  # type: ignore[attr-defined]
        b.upload("/whole.bak", b"b" * 100_000)
        b.close()
        assert ["whole.bak"] == received_files(server.instance, "mairie-b")


class TestServerStops:
    def test_sigterm_closes_sessions_and_interrupts_open_uploads(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """SIGTERM: the open upload becomes upload.interrupted, the process exits 0."""
        instance.add_account("mairie-a")
        client = SftpClient(*serve_process.addresses["sftp"], "mairie-a", PASSWORD)
        handle = client.sftp.open("/during-stop.bak", "wb")
        handle.write(b"z" * 500_000)
        handle.flush()
        wait_for(lambda: staging(instance))
        assert 0 == serve_process.signal(signal.SIGTERM)
        [record] = instance.audit("upload.interrupted")
        assert "server shutting down" == record["reason"]
        assert [] == received_files(instance, "mairie-a")
        assert [] == staging(instance)

    def test_kill_9_leftovers_are_discarded_at_the_next_start(self, instance: TestInstance) -> None:
        """After a crash mid-upload, the next start discards the partial data."""
        instance.add_account("mairie-a")
        first = ServeProcess(instance)
        client = SftpClient(*first.addresses["sftp"], "mairie-a", PASSWORD)
        handle = client.sftp.open("/crash.bak", "wb")
        handle.write(b"c" * 300_000)
        handle.flush()
        wait_for(lambda: staging(instance))
        first.kill()
        assert staging(instance)
        second = ServeProcess(instance)
        try:
            assert [] == staging(instance)
            assert [] == received_files(instance, "mairie-a")
            fresh = SftpClient(*second.addresses["sftp"], "mairie-a", PASSWORD)
            fresh.upload("/crash.bak", b"the whole file")
            fresh.close()
            assert ["crash.bak"] == received_files(instance, "mairie-a")
        finally:
            second.kill()


class TestStorageFailures:
    def test_a_full_disk_never_yields_a_truncated_backup(self, instance: TestInstance) -> None:
        """A write that fails (file size limit, like a full disk) fails the upload for good:
        the client sees an error, no truncated file is ever received, the cause is audited."""
        instance.add_account("mairie-a")
        limit = 2 * 1024 * 1024
        process = ServeProcess(instance, max_file_size=limit)
        try:
            client = SftpClient(*process.addresses["sftp"], "mairie-a", PASSWORD)
            with pytest.raises(OSError):
                client.upload("/too-big.bak", b"t" * (3 * limit))
            client.upload("/small.bak", b"fits")
            client.close()
            assert ["small.bak"] == received_files(instance, "mairie-a")
            [record] = instance.audit("upload.interrupted")
            assert str(record["reason"]).startswith("write failed")
            assert [] == staging(instance)
        finally:
            process.kill()
