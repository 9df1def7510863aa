"""Hostile or broken clients: login deadline, pre-login byte cap, bans, connection caps.
Each test checks that the server keeps serving a well-behaved client afterwards."""

from __future__ import annotations

import socket
import time

import paramiko
import pytest

from tests.clients import SftpClient
from tests.conftest import PASSWORD, TestInstance, running, wait_for


def configure(instance: TestInstance, sftp: str = "", limits: str = "") -> None:
    instance.config_file.write_text(
        f'[sftp]\nlisten = "127.0.0.1:0"\n{sftp}\n[ftps]\nlisten = ""\n[limits]\n{limits}\n'
    )


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """True when the server closes ``sock`` within ``seconds`` (sending ``trickle`` slowly)."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.send(trickle)
            data = sock.recv(65536)
            if not data:
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


class TestLoginDeadline:
    def test_silent_and_trickling_clients_are_cut_at_the_deadline(
        self, instance: TestInstance
    ) -> None:
        """A client that never logs in is closed after login_timeout, even if it trickles."""
        configure(instance, sftp="login_timeout = 2")
        instance.add_account("mairie-a")
        with running(instance) as server:
            silent = socket.create_connection(server.sftp)
            trickler = socket.create_connection(server.sftp)
            trickler.send(b"SSH-2.0-slow\r\n")
            assert closed_within(silent, 10)
            assert closed_within(trickler, 10, trickle=b"\x00")
            reasons = [r["reason"] for r in instance.audit("login.failed")]
            assert "login timeout" in reasons
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.close()


class TestPreLoginCap:
    def test_a_flood_before_login_is_cut(self, instance: TestInstance) -> None:
        """Megabytes before authentication (a banner with no newline) close the connection."""
        configure(instance, sftp="max_prelogin_bytes = 65536")
        instance.add_account("mairie-a")
        with running(instance) as server:
            flood = socket.create_connection(server.sftp)
            flood.settimeout(5)
            sent = 0
            with pytest.raises(OSError):
                while sent < 50_000_000:
                    sent += flood.send(b"A" * 65536)
            assert sent < 50_000_000
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.upload("/after-flood.bak", b"fine")
            client.close()

    def test_authenticated_transfers_are_not_capped(self, instance: TestInstance) -> None:
        """The cap applies before login only: a large upload after login goes through."""
        configure(instance, sftp="max_prelogin_bytes = 65536")
        instance.add_account("mairie-a")
        with running(instance) as server:
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.upload("/big.bak", b"b" * 3_000_000)
            client.close()
            assert 3_000_000 == (instance.area("mairie-a") / "big.bak").stat().st_size


class TestBans:
    def test_repeated_failures_ban_the_address(self, instance: TestInstance) -> None:
        """After max_login_failures the address is banned (audited), right password or not."""
        configure(instance, limits="max_login_failures = 3\nban_time = 600")
        instance.add_account("mairie-a")
        with running(instance) as server:
            for _ in range(3):
                with pytest.raises(paramiko.AuthenticationException):
                    SftpClient(*server.sftp, "mairie-a", "wrong")
            [ban] = wait_for(lambda: instance.audit("banned"))
            assert "127.0.0.1" == ban["ip"]
            with pytest.raises((paramiko.SSHException, OSError, EOFError)):
                SftpClient(*server.sftp, "mairie-a", PASSWORD)
            assert [] == instance.audit("login.ok")


class TestConnectionCaps:
    def test_per_address_cap(self, instance: TestInstance) -> None:
        """Connections beyond max_connections_per_ip are closed at once; freed slots reopen."""
        configure(instance, limits="max_connections_per_ip = 2")
        instance.add_account("mairie-a")
        with running(instance) as server:
            first = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            second = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            third = socket.create_connection(server.sftp)
            assert closed_within(third, 5)
            first.close()
            second.close()

            def admitted() -> bool:
                try:
                    SftpClient(*server.sftp, "mairie-a", PASSWORD).close()
                    return True
                except (paramiko.SSHException, OSError, EOFError):
                    return False

            wait_for(admitted)


class TestIdleTimeout:
    def test_an_idle_session_is_closed_and_its_open_upload_interrupted(
        self, instance: TestInstance
    ) -> None:
        """No request for idle_timeout seconds: the session ends, the open upload is cut."""
        configure(instance, sftp="idle_timeout = 2")
        instance.add_account("mairie-a")
        with running(instance) as server:
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            handle = client.sftp.open("/left-open.bak", "wb")
            handle.write(b"i" * 1000)
            handle.flush()
            wait_for(lambda: not client.transport.is_active(), timeout=15)
            [record] = wait_for(lambda: instance.audit("upload.interrupted"))
            assert "idle timeout" == record["reason"]
            assert [] == list(instance.area("mairie-a").glob("*"))
