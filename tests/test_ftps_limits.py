"""FTPS under hostile or unlucky conditions: login deadline, caps and bans shared with SFTP,
a server stop in the middle of an upload, session reuse turned off."""

from __future__ import annotations

import ftplib
import socket
import threading
import time

import paramiko
import pytest

from intake.core.errors import StartupError
from intake.frontends.daemon.serve import Daemon
from tests.clients import FtpsClient, SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance, running, wait_for


def configure(instance: TestInstance, ftps: str = "", limits: str = "") -> None:
    instance.config_file.write_text(
        '[sftp]\nlisten = "127.0.0.1:0"\n'
        f'[ftps]\nlisten = "127.0.0.1:0"\n{ftps}\n'
        f"[limits]\n{limits}\n"
    )


def first_reply(address: tuple[str, int]) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(address, timeout=10)
    return sock, sock.recv(4096)


def cafile(instance: TestInstance) -> str:
    return str(instance.root / "keys" / "tls.crt")


class TestLoginDeadline:
    def test_a_client_that_only_sends_noop_is_cut(self, instance: TestInstance) -> None:
        """NOOP is allowed before login, but the deadline runs from connect, then 421."""
        configure(instance, ftps="login_timeout = 2")
        with running(instance) as server:
            assert server.ftps is not None
            sock, banner = first_reply(server.ftps)
            assert banner.startswith(b"220")
            replies = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    sock.sendall(b"NOOP\r\n")
                    data = sock.recv(4096)
                except OSError:
                    break
                if not data:
                    break
                replies += data
                time.sleep(0.3)
            sock.close()
            assert b"421" in replies
            reasons = [r["reason"] for r in instance.audit("login.failed")]
            assert "login timeout" in reasons


class TestSharedLimits:
    def test_a_ban_earned_over_sftp_closes_ftps_too(self, instance: TestInstance) -> None:
        """Failed SFTP logins ban the address; FTPS refuses it before any TLS (421)."""
        configure(instance, limits="max_login_failures = 3")
        instance.add_account("mairie-a")
        with running(instance) as server:
            assert server.ftps is not None
            for _ in range(3):
                with pytest.raises(paramiko.AuthenticationException):
                    SftpClient(*server.sftp, "mairie-a", "wrong")
            wait_for(lambda: instance.audit("banned"))
            sock, reply = first_reply(server.ftps)
            sock.close()
            assert reply.startswith(b"421")
            with pytest.raises((ftplib.Error, OSError, EOFError)):
                FtpsClient(*server.ftps, "mairie-a", PASSWORD, cafile(instance))

    def test_wrong_password_is_audited_and_counts(self, instance: TestInstance) -> None:
        """A wrong FTPS password is a 530 and a ``login.failed`` record with protocol ftps."""
        configure(instance)
        instance.add_account("mairie-a")
        with running(instance) as server:
            assert server.ftps is not None
            with pytest.raises(ftplib.error_perm, match="530"):
                FtpsClient(*server.ftps, "mairie-a", "wrong", cafile(instance))
            [record] = instance.audit("login.failed")
            assert ("ftps", "mairie-a", "wrong password") == (
                record["protocol"],
                record["account"],
                record["reason"],
            )

    def test_connections_per_address_are_capped(self, instance: TestInstance) -> None:
        """Beyond max_connections_per_ip, a new FTPS connection gets 421 at once."""
        configure(instance, limits="max_connections_per_ip = 2")
        with running(instance) as server:
            assert server.ftps is not None
            kept = [first_reply(server.ftps) for _ in range(2)]
            assert all(reply.startswith(b"220") for _, reply in kept)
            sock, reply = first_reply(server.ftps)
            sock.close()
            assert reply.startswith(b"421")
            for s, _ in kept:
                s.close()


class TestServerStop:
    def test_stop_during_an_upload_interrupts_it(self, instance: TestInstance) -> None:
        """Stopping the server while a file is arriving: interrupted, nothing received."""
        configure(instance)
        instance.add_account("mairie-a")
        with running(instance) as server:
            assert server.ftps is not None
            client = FtpsClient(*server.ftps, "mairie-a", PASSWORD, cafile(instance))
            client.ftp.voidcmd("TYPE I")
            conn = client.ftp.transfercmd("STOR /stopped.bak")
            conn.sendall(b"x" * 500_000)
            wait_for(lambda: list((instance.root / "data" / ".staging").iterdir()))
            stopper = threading.Thread(target=server.daemon.stop)
            stopper.start()
            stopper.join(30)
            conn.close()
            client.ftp.close()
        [record] = instance.audit("upload.interrupted")
        assert "/stopped.bak" == record["path"]
        assert "server shutting down" == record["reason"]
        assert not (instance.area("mairie-a") / "stopped.bak").exists()


class TestNat:
    def test_pasv_announces_the_masquerade_address(self, instance: TestInstance) -> None:
        """Behind NAT, PASV gives the configured public address and a configured port."""
        configure(
            instance, ftps='masquerade_address = "203.0.113.7"\npassive_ports = "61500-61599"'
        )
        instance.add_account("mairie-a")
        with running(instance) as server:
            assert server.ftps is not None
            client = FtpsClient(*server.ftps, "mairie-a", PASSWORD, cafile(instance))
            host, port = ftplib.parse227(client.ftp.sendcmd("PASV"))
            client.close()
        assert "203.0.113.7" == host
        assert 61500 <= port <= 61599


class TestStorageFailures:
    def test_a_full_disk_never_yields_a_truncated_backup(self, instance: TestInstance) -> None:
        """A write that fails (file size limit, like a full disk): 451, nothing received,
        the cause audited; the session goes on."""
        configure(instance)
        instance.add_account("mairie-a")
        limit = 2 * 1024 * 1024
        process = ServeProcess(instance, max_file_size=limit)
        try:
            host, port = process.addresses["ftps"]
            client = FtpsClient(host, port, "mairie-a", PASSWORD, cafile(instance))
            try:
                client.upload("/too-big.bak", b"t" * (3 * limit))
            except ftplib.error_temp as exc:
                reply = str(exc)
            except OSError:  # the data connection closed under the client's writes
                with pytest.raises(ftplib.error_temp) as late:
                    client.ftp.voidresp()
                reply = str(late.value)
            assert reply.startswith("451")
            client.upload("/small.bak", b"fits")
            client.close()
            assert [p.name for p in instance.area("mairie-a").iterdir()] == ["small.bak"]
            [record] = instance.audit("upload.interrupted")
            assert str(record["reason"]).startswith("write failed")
            assert [] == list((instance.root / "data" / ".staging").iterdir())
        finally:
            process.kill()


class TestStartup:
    def test_an_unusable_tls_key_stops_serve_with_one_clear_error(
        self, instance: TestInstance
    ) -> None:
        """A broken keys/tls.key is a StartupError naming the files; nothing keeps listening."""
        configure(instance)
        (instance.root / "keys" / "tls.key").write_text("not a key\n")
        inst = instance.open()
        try:
            with pytest.raises(StartupError, match=r"tls\.key"):
                Daemon(inst, workers=1).start()
        finally:
            inst.close()


class TestSessionReuseOff:
    def test_stdlib_client_works_when_reuse_is_not_required(self, instance: TestInstance) -> None:
        """``require_session_reuse = false`` lets a client without reuse transfer files."""
        configure(instance, ftps="require_session_reuse = false")
        instance.add_account("mairie-a")
        with running(instance) as server:
            assert server.ftps is not None
            client = FtpsClient(
                *server.ftps, "mairie-a", PASSWORD, cafile(instance), reuse_session=False
            )
            client.upload("/plain-reuse.bak", b"data")
            assert b"data" == client.download("/plain-reuse.bak")
            client.close()
