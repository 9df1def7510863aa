"""Floods before login (issue 11, items 5 and 9): connections that never log in cannot
starve the members, are counted against their address, and the operational log stays
small and free of tracebacks whatever they send.

Sources are other loopback addresses (all of 127/8 is loopback on Linux): 127.0.N.x is
network N for the /24 rules."""

from __future__ import annotations

import contextlib
import os
import socket
import threading

from tests.attacks import bad_kexinit, connect_from, hold_unauthenticated
from tests.clients import FtpsClient, SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance, running, wait_for


def configure(instance: TestInstance, sftp: str = "", limits: str = "") -> None:
    instance.config_file.write_text(
        f'[sftp]\nlisten = "127.0.0.1:0"\n{sftp}\n'
        '[ftps]\nlisten = "127.0.0.1:0"\npassive_ports = "62100-62199"\n'
        f"[limits]\n{limits}\n"
    )


def closed_at_once(sock: socket.socket, timeout: float = 10) -> bool:
    """True when the server closes ``sock`` without sending anything first."""
    sock.settimeout(timeout)
    try:
        return sock.recv(100) == b""
    except OSError:
        return True


def drain(sock: socket.socket) -> None:
    """Say we are done sending, then read until the server closes."""
    sock.settimeout(10)
    try:
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


class TestConnectionSlots:
    def test_a_member_logs_in_while_a_flood_holds_unauthenticated_slots(
        self, instance: TestInstance
    ) -> None:
        """600 connections that never log in (20 from each of 30 networks) do not keep a
        member out: it logs in over SFTP and FTPS and uploads, and the flood holds no more
        unauthenticated slots than max_startups allows, nor waiting places than its share;
        the connections evicted are audited and charged to nobody."""
        configure(
            instance,
            limits=(
                "max_connections = 40\nmax_connections_per_ip = 20\n"
                'max_startups = "4:30:20"\nmax_startups_per_network = 10\n'
                "max_login_failures = 1\nmax_network_failures = 1000\nprelogin_wait = 60\n"
            ),
        )
        instance.add_account("mairie-a")
        with running(instance) as server:
            guard = server.daemon.instance.guard
            held = hold_unauthenticated(server.sftp, networks=30, per_network=20)
            assert guard.startups() <= 20
            assert guard.waiting() <= 20
            threads = threading.active_count()
            assert threads < 120, f"{threads} threads for a flood of 600 connections"
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.upload("/during-flood.bak", b"backup")
            client.close()
            assert server.ftps is not None
            cafile = str(instance.root / "keys" / "tls.crt")
            ftps = FtpsClient(*server.ftps, "mairie-a", PASSWORD, cafile=cafile)
            ftps.upload("/during-flood-ftps.bak", b"backup")
            ftps.close()
            assert (instance.area("mairie-a") / "during-flood.bak").read_bytes() == b"backup"
            for sock in held:
                sock.close()
        reasons = [str(r["reason"]) for r in instance.audit("login.failed")]
        assert any("evicted" in r for r in reasons)
        assert [] == instance.audit("banned")  # max_login_failures = 1: nobody was charged

    def test_banner_only_connections_are_audited_and_banned(self, instance: TestInstance) -> None:
        """An SSH banner and nothing else is audited (a ``login.failed`` with the address)
        and costs a tenth of a failure: 3 of them do not ban the address (they did when
        each counted as a failed login), 30 do, and it is then refused before any byte."""
        configure(instance, limits="max_login_failures = 3\nban_time = 600")
        instance.add_account("mairie-a")
        with running(instance) as server:

            def banner_only() -> None:
                sock = connect_from("127.0.3.1", server.sftp)
                sock.sendall(b"SSH-2.0-banner-only\r\n")
                drain(sock)

            for _ in range(3):
                banner_only()
            [first] = wait_for(
                lambda: [r for r in instance.audit("login.failed") if r["ip"] == "127.0.3.1"]
            )
            assert "without trying to log in" in str(first["reason"])
            assert [] == instance.audit("banned")
            for _ in range(27):
                banner_only()
            [ban] = wait_for(lambda: instance.audit("banned"))
            assert "127.0.3.1" == ban["ip"]
            assert closed_at_once(connect_from("127.0.3.1", server.sftp))
            assert server.ftps is not None
            refused = connect_from("127.0.3.1", server.ftps)
            refused.settimeout(10)
            assert refused.recv(100).startswith(b"421")
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.upload("/after-ban.bak", b"fine")
            client.close()

    def test_an_ftps_connection_that_never_logs_in_is_audited(self, instance: TestInstance) -> None:
        """Connecting to FTPS and leaving without a USER is a failed login too."""
        configure(instance)
        with running(instance) as server:
            assert server.ftps is not None
            sock = connect_from("127.0.6.1", server.ftps)
            assert sock.recv(100).startswith(b"220")
            sock.close()
            [record] = wait_for(
                lambda: [r for r in instance.audit("login.failed") if r["ip"] == "127.0.6.1"]
            )
            assert "ftps" == record["protocol"]


class TestThreads:
    def test_failed_negotiations_leave_no_thread_behind(self, instance: TestInstance) -> None:
        """100 bad-KEX connections: once they are gone, so are their threads (paramiko's
        handshake timer used to keep one per connection alive for 15 s)."""
        configure(instance, limits="max_login_failures = 1000\nmax_network_failures = 1000")
        with running(instance) as server:
            baseline = threading.active_count()
            for i in range(100):
                sock = connect_from(f"127.0.{20 + i % 10}.1", server.sftp)
                sock.sendall(b"SSH-2.0-badkex\r\n" + bad_kexinit())
                drain(sock)
            guard = server.daemon.instance.guard
            wait_for(lambda: guard.startups() == 0, timeout=60)
            wait_for(lambda: threading.active_count() <= baseline + 5, timeout=5)


class TestLogFlood:
    def test_garbage_and_bad_kex_floods_log_a_bounded_summary(self, instance: TestInstance) -> None:
        """300 bad-KEX, garbage and refused connections log a few summary lines and no
        traceback (paramiko's included); a member still logs in afterwards."""
        configure(instance, limits="max_login_failures = 20\nmax_network_failures = 1000")
        instance.add_account("mairie-a")
        process = ServeProcess(instance)
        try:
            sftp = process.addresses["sftp"]
            ftps = process.addresses["ftps"]
            for i in range(100):
                sock = connect_from(f"127.0.7.{1 + i % 5}", sftp)
                sock.sendall(b"SSH-2.0-badkex\r\n" + bad_kexinit())
                drain(sock)
            for i in range(100):
                sock = connect_from(f"127.0.8.{1 + i % 5}", sftp)
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(64))
                drain(sock)
            for i in range(100):
                sock = connect_from(f"127.0.9.{1 + i % 5}", ftps)
                with contextlib.suppress(OSError):  # refused once banned
                    sock.sendall(b"AUTH TLS\r\n")
                    sock.recv(100)
                    sock.sendall(os.urandom(300))
                drain(sock)
            client = SftpClient(*sftp, "mairie-a", PASSWORD)
            client.close()
        finally:
            process.signal(15)
        # Audited per network and minute: the stop wrote the summaries still pending.
        failed = instance.audit("login.failed")
        assert sum(int(r.get("count", 1)) for r in failed) >= 30  # type: ignore[call-overload]
        assert len(failed) <= 2 * 3
        log = process.log()
        assert "Traceback" not in log
        lines = log.splitlines()
        assert len(lines) < 80, "\n".join(lines[:100])
