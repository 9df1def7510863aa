"""SIGHUP ends the sessions whose login no longer holds (issue 11, item 7): a disabled
account's open SFTP and FTPS sessions are closed at the reload, their uploads in flight
become ``upload.interrupted``; other accounts' sessions go on."""

from __future__ import annotations

import signal

import paramiko
import pytest

from tests.clients import FtpsClient, SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance, wait_for


def reason_of(instance: TestInstance, path: str) -> str | None:
    for record in instance.audit("upload.interrupted"):
        if record["path"] == path:
            return str(record["reason"])
    return None


class TestDisableAtReload:
    def test_disable_then_sighup_ends_open_sftp_and_ftps_sessions(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """``account disable`` + SIGHUP: both of its sessions end, each upload in flight is
        audited as interrupted ("account disabled"), nothing is received; another member
        keeps uploading."""
        instance.add_account("mairie-a")
        instance.add_account("mairie-b")
        addresses = serve_process.addresses
        sftp = SftpClient(*addresses["sftp"], "mairie-a", PASSWORD)
        handle = sftp.sftp.open("/sftp-in-flight.bak", "wb")
        handle.write(b"s" * 100_000)
        handle.flush()
        cafile = str(instance.root / "keys" / "tls.crt")
        ftps = FtpsClient(*addresses["ftps"], "mairie-a", PASSWORD, cafile=cafile)
        data = ftps.ftp.transfercmd("STOR /ftps-in-flight.bak")
        data.sendall(b"f" * 100_000)
        other = SftpClient(*addresses["sftp"], "mairie-b", PASSWORD)
        instance.cli("account", "disable", "mairie-a", check=True)
        serve_process.proc.send_signal(signal.SIGHUP)

        wait_for(lambda: reason_of(instance, "/sftp-in-flight.bak"), timeout=30)
        wait_for(lambda: reason_of(instance, "/ftps-in-flight.bak"), timeout=30)
        assert "account disabled" == reason_of(instance, "/sftp-in-flight.bak")
        assert "account disabled" == reason_of(instance, "/ftps-in-flight.bak")
        wait_for(lambda: not sftp.transport.is_active(), timeout=30)
        with pytest.raises((OSError, EOFError, paramiko.SSHException)):
            handle.write(b"more")
            handle.close()
        ftps.ftp.sock.settimeout(30)
        with pytest.raises((OSError, EOFError)):
            data.settimeout(30)
            for _ in range(100):
                data.sendall(b"f" * 65536)
            ftps.ftp.voidcmd("NOOP")
        data.close()
        assert [] == [p.name for p in instance.area("mairie-a").iterdir()]
        other.upload("/still-served.bak", b"fine")
        other.close()
        completed = [r["path"] for r in instance.audit("upload.complete")]
        assert ["/still-served.bak"] == completed

    def test_a_password_change_ends_the_sessions_that_used_the_old_one(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """``account passwd`` + SIGHUP ends the password sessions of that account; its
        new password logs in."""
        instance.add_account("mairie-a")
        address = serve_process.addresses["sftp"]
        client = SftpClient(*address, "mairie-a", PASSWORD)
        handle = client.sftp.open("/old-password.bak", "wb")
        handle.write(b"p" * 1000)
        handle.flush()
        instance.cli(
            "account",
            "passwd",
            "mairie-a",
            "--password-stdin",
            stdin="new secret words\n",
            check=True,
        )
        serve_process.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: reason_of(instance, "/old-password.bak"), timeout=30)
        assert "password changed" == reason_of(instance, "/old-password.bak")
        wait_for(lambda: not client.transport.is_active(), timeout=30)
        SftpClient(*address, "mairie-a", "new secret words").close()

    def test_a_reload_leaves_valid_sessions_alone(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """SIGHUP with nothing changed: the open upload is received at its close."""
        instance.add_account("mairie-a")
        client = SftpClient(*serve_process.addresses["sftp"], "mairie-a", PASSWORD)
        handle = client.sftp.open("/kept.bak", "wb")
        handle.write(b"k" * 1000)
        handle.flush()
        serve_process.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "received SIGHUP" in serve_process.log(), timeout=30)
        handle.close()
        client.close()
        assert [] == instance.audit("upload.interrupted")
        assert (instance.area("mairie-a") / "kept.bak").stat().st_size == 1000
