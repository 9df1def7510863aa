"""Nobody locked out by their own client (issue 16, items 1-4; issue 15, item 5).

A client that refuses the host key or the certificate and retries is not guessing: it is
audited, costs a tenth of a failure, and its member logs in right after. A burst of
logins from one address waits for slots instead of being reset. Blocks can be listed and
lifted from the command line, also in a running ``serve``; a blocked FTPS client is told
until when in French. Connections that never log in grow the audit log by networks, not
by connections.

Other sources are other loopback addresses: 127.A.B.x is network 127.A.B.0/24."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import paramiko
import pytest

from tests.attacks import connect_from
from tests.clients import FtpsClient, SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance, running, wait_for


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def configure(instance: TestInstance, limits: str = "") -> None:
    """Both protocols on free ports, the ``[limits]`` defaults unless ``limits`` says."""
    instance.config_file.write_text(
        '[sftp]\nlisten = "127.0.0.1:0"\n'
        '[ftps]\nlisten = "127.0.0.1:0"\npassive_ports = "62300-62399"\n'
        f"[limits]\n{limits}\n"
    )


def cafile(instance: TestInstance) -> str:
    return str(instance.root / "keys" / "tls.crt")


def login_from(source: str, address: tuple[str, int], password: str) -> bool:
    """One SFTP password login from ``source``; True if it logged in."""
    sock = socket.create_connection(address, timeout=60, source_address=(source, 0))
    transport = paramiko.Transport(sock)
    transport.banner_timeout = 60
    try:
        transport.connect(username="mairie-a", password=password)
        return True
    except (paramiko.SSHException, OSError, EOFError):
        return False
    finally:
        transport.close()


def first_line(source: str, address: tuple[str, int]) -> bytes:
    sock = connect_from(source, address)
    sock.settimeout(10)
    try:
        return sock.recv(4096)
    finally:
        sock.close()


def closed_by_server(sock: socket.socket) -> None:
    """Close our side at once (nothing sent), then wait for the server to close its own:
    each connection has ended on the server before the next one starts."""
    sock.settimeout(30)
    try:
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    finally:
        sock.close()


def audit_bytes(instance: TestInstance) -> int:
    return sum(f.stat().st_size for f in (instance.root / "log").rglob("*") if f.is_file())


class TestRetryStorms:
    def test_rclone_with_a_wrong_known_hosts_does_not_ban_its_member(
        self, instance: TestInstance, tmp_path: Path
    ) -> None:
        """``rclone copy`` with a known_hosts holding only the ed25519 key (rclone asks
        for RSA first) fails and retries; with the default limits its address is not
        banned, and its member logs in at once afterwards (it was banned for 15 min)."""
        need("rclone")
        configure(instance)
        instance.add_account("mairie-a")
        with running(instance) as server:
            host, port = server.sftp
            ed25519 = (instance.root / "keys" / "ssh_host_ed25519_key.pub").read_text().split()
            known = tmp_path / "known_hosts"
            known.write_text(f"[{host}]:{port} {ed25519[0]} {ed25519[1]}\n")
            obscured = subprocess.run(
                ["rclone", "obscure", "-"], input=PASSWORD, capture_output=True, text=True
            ).stdout.strip()
            (tmp_path / "src").mkdir()
            (tmp_path / "src" / "base.bak").write_bytes(b"backup")
            env = {
                **os.environ,
                "RCLONE_CONFIG": str(tmp_path / "no-rclone.conf"),
                "RCLONE_CONFIG_INTAKE_TYPE": "sftp",
                "RCLONE_CONFIG_INTAKE_HOST": host,
                "RCLONE_CONFIG_INTAKE_PORT": str(port),
                "RCLONE_CONFIG_INTAKE_USER": "mairie-a",
                "RCLONE_CONFIG_INTAKE_PASS": obscured,
                "RCLONE_CONFIG_INTAKE_KNOWN_HOSTS_FILE": str(known),
            }
            storm = time.monotonic()
            proc = subprocess.run(
                ["rclone", "copy", str(tmp_path / "src"), "intake:/"],
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            storm = time.monotonic() - storm
            assert 0 != proc.returncode
            assert "knownhosts" in proc.stderr or "host key" in proc.stderr, proc.stderr[-2000:]
            started = time.monotonic()
            client = SftpClient(host, port, "mairie-a", PASSWORD)
            waited = time.monotonic() - started
            client.upload("/after-rclone.bak", b"fine")
            client.close()
        assert [] == instance.audit("banned")
        failed = instance.audit("login.failed")
        connections = sum(int(str(r.get("count", 1))) for r in failed)
        assert connections >= 3  # rclone did retry
        assert all("none" == r["method"] for r in failed)
        print(
            f"\nrclone storm: {connections} connection(s) in {storm:.1f} s, then the member "
            f"waited {waited:.2f} s to log in (a login, not a ban)"
        )

    def test_lftp_refusing_the_certificate_ten_times_does_not_ban_its_member(
        self, instance: TestInstance
    ) -> None:
        """lftp without the self-signed certificate refuses it, 10 runs in a row; the
        address is not banned and the member's FTPS login with the certificate trusted
        succeeds at once (10 such runs banned it for 15 min)."""
        need("lftp")
        configure(instance)
        instance.add_account("mairie-a")
        with running(instance) as server:
            assert server.ftps is not None
            host, port = server.ftps
            script = (
                "set ftp:ssl-force true; set ftp:ssl-protect-data true;"
                " set ssl:verify-certificate yes; set ssl:ca-file /dev/null;"
                " set net:max-retries 1; set net:timeout 10;"
                f" open --env-password -u mairie-a -p {port} {host}; ls /"
            )
            storm = time.monotonic()
            for _ in range(10):
                proc = subprocess.run(
                    ["lftp", "-c", script],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    env={**os.environ, "LFTP_PASSWORD": PASSWORD},
                )
                assert 0 != proc.returncode
            storm = time.monotonic() - storm
            started = time.monotonic()
            client = FtpsClient(host, port, "mairie-a", PASSWORD, cafile=cafile(instance))
            waited = time.monotonic() - started
            client.upload("/after-lftp.bak", b"fine")
            client.close()
        assert [] == instance.audit("banned")
        failed = instance.audit("login.failed")
        assert all("none" == r["method"] for r in failed)
        assert 10 <= sum(int(str(r.get("count", 1))) for r in failed)  # each refusal audited
        print(f"\nlftp storm: 10 runs in {storm:.1f} s, then the member waited {waited:.2f} s")


class TestBurst:
    def test_twenty_simultaneous_sftp_logins_from_one_address_all_get_in(
        self, instance: TestInstance
    ) -> None:
        """20 paramiko clients from one address, released at once on an idle server:
        all log in and upload (those over the pre-login caps wait for a slot instead of
        being reset: 10 failed with "Error reading SSH protocol banner")."""
        configure(instance)
        instance.add_account("mairie-a")
        with running(instance) as server:
            gate = threading.Barrier(20)
            errors: list[BaseException] = []

            def member(n: int) -> None:
                gate.wait()
                try:
                    client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
                    client.upload(f"/burst-{n}.bak", b"x" * 1000)
                    client.close()
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=member, args=(n,)) for n in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert [] == errors
            assert 20 == len(list(instance.area("mairie-a").glob("burst-*.bak")))
        assert 20 == len(instance.audit("login.ok"))
        assert [] == instance.audit("login.failed")


class TestBanCommands:
    def test_list_lift_french_421_and_sighup_keep_the_block(self, instance: TestInstance) -> None:
        """Three wrong passwords block 127.0.12.1: ``ban list --json`` shows it, FTPS
        answers 421 saying until when in Paris time, a SIGHUP keeps it; ``ban lift``
        (audited ``unbanned``) lets the member in at once in the running serve."""
        configure(instance, "max_login_failures = 3")
        instance.add_account("mairie-a")
        process = ServeProcess(instance)
        try:
            sftp, ftps = process.addresses["sftp"], process.addresses["ftps"]
            for _ in range(3):
                assert not login_from("127.0.12.1", sftp, "wrong")
            [banned] = wait_for(lambda: instance.audit("banned"))
            assert "127.0.12.1" == banned["ip"]
            listed = instance.cli("ban", "list", "--json")
            assert 0 == listed.returncode, listed.stderr
            [entry] = json.loads(listed.stdout)
            assert ("127.0.12.1", "address", "127.0.12.1", None, 3.0) == (
                entry["ip"],
                entry["kind"],
                entry["address"],
                entry["network"],
                entry["failures"],
            )
            assert entry["reason"] and entry["since"] and entry["until"] == banned["until"]
            until = _dt.datetime.fromisoformat(str(entry["until"]).replace("Z", "+00:00"))
            paris = until.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M:%S")
            reply = first_line("127.0.12.1", ftps).decode()
            assert reply.startswith("421 "), reply
            assert paris in reply and "heure de Paris" in reply and "bloquée" in reply
            human = instance.cli("ban", "list")
            assert "127.0.12.1" in human.stdout

            process.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "certificate reloaded" in process.log(), timeout=30)
            assert "127.0.12.1" in instance.cli("ban", "list").stdout
            assert first_line("127.0.12.1", ftps).startswith(b"421 ")
            assert not login_from("127.0.12.1", sftp, PASSWORD)

            lifted = instance.cli("ban", "lift", "127.0.12.1")
            assert 0 == lifted.returncode, lifted.stderr
            [unbanned] = instance.audit("unbanned")
            assert ("127.0.12.1", "cli") == (unbanned["ip"], unbanned["protocol"])
            assert login_from("127.0.12.1", sftp, PASSWORD)
            assert [] == json.loads(instance.cli("ban", "list", "--json").stdout)
            assert 1 == instance.cli("ban", "lift", "127.0.12.1").returncode
            assert 2 == instance.cli("ban", "lift", "mairie").returncode
        finally:
            process.signal(signal.SIGTERM)

    def test_a_network_block_is_listed_and_lifted_by_its_network(
        self, instance: TestInstance
    ) -> None:
        """Wrong passwords from 4 addresses of 127.0.14.0/24 block the network; ``ban
        lift 127.0.14.9/24`` names it as written in the list and ends it."""
        configure(instance, "max_login_failures = 5\nmax_network_failures = 4")
        instance.add_account("mairie-a")
        with running(instance) as server:
            for host in range(1, 5):
                assert not login_from(f"127.0.14.{host}", server.sftp, "wrong")
            wait_for(lambda: instance.audit("banned"))
            [entry] = json.loads(instance.cli("ban", "list", "--json").stdout)
            assert ("127.0.14.0/24", "network") == (entry["ip"], entry["kind"])
            assert not login_from("127.0.14.77", server.sftp, PASSWORD)
            assert 0 == instance.cli("ban", "lift", "127.0.14.9/24").returncode
            assert login_from("127.0.14.77", server.sftp, PASSWORD)

    def test_trusted_networks_are_never_blocked(self, instance: TestInstance) -> None:
        """``[limits] trusted_networks``: wrong passwords from the agency's own network
        never block it; its right password still logs in."""
        configure(instance, 'max_login_failures = 1\ntrusted_networks = ["127.0.13.0/24"]')
        instance.add_account("mairie-a")
        with running(instance) as server:
            for _ in range(5):
                assert not login_from("127.0.13.1", server.sftp, "wrong")
            assert login_from("127.0.13.1", server.sftp, PASSWORD)
        assert [] == instance.audit("banned")
        assert 5 == len(instance.audit("login.failed"))


class TestPreLoginFlood:
    def test_a_rotating_connect_and_close_flood_grows_the_log_by_networks(
        self, instance: TestInstance
    ) -> None:
        """Connect-and-close from 494 loopback addresses of 9 networks: the audit log gets
        at most one record per network per minute (two with the stop's summaries), not one
        per connection; every connection is still scored (the network that sent 150 from
        150 addresses is blocked)."""
        configure(instance, "max_network_failures = 10")
        instance.add_account("mairie-a")
        networks = [f"127.{30 + n}.{7 * n}" for n in range(8)]
        with running(instance) as server:
            before = audit_bytes(instance)
            sources = [f"{net}.{h}" for h in range(1, 44) for net in networks]
            sources += [f"127.99.1.{h}" for h in range(1, 151)]
            for source in sources:
                with contextlib.suppress(OSError):  # refused once its network is blocked
                    closed_by_server(connect_from(source, server.sftp))
            wait_for(lambda: instance.audit("banned"), timeout=30)
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.close()
            during = len(instance.audit("login.failed"))
        grown = audit_bytes(instance) - before
        failed = instance.audit("login.failed")
        [ban] = instance.audit("banned")
        assert "127.99.1.0/24" == ban["ip"]
        assert during <= 9
        assert len(failed) <= 2 * 9
        scored = sum(int(str(r.get("count", 1))) for r in failed)
        print(
            f"\n{len(sources)} connect-and-close from {len(sources)} addresses: {scored} "
            f"audited in {len(failed)} record(s), {grown} bytes of audit log"
        )
        assert grown < 40_000  # one record per connection wrote ~150 bytes each
        assert re.match(r"\d+ connection\(s\) ended before a login", str(failed[-1]["reason"]))
