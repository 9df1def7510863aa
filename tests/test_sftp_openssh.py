"""OpenSSH clients against intake: host-key checking, key and password logins, and
everything that is not the sftp subsystem refused (exec, shell, forwarding)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import paramiko
import pytest

from tests.clients import SftpClient
from tests.conftest import PASSWORD, RunningServer, wait_for


def ssh_options(server: RunningServer, user: str, known_hosts: Path | None = None) -> list[str]:
    host, port = server.sftp
    inst = server.instance
    return [
        "-o",
        f"UserKnownHostsFile={known_hosts or inst.known_hosts(host, port)}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-i",
        str(inst.keys[user]),
    ]


def sftp_batch(
    server: RunningServer,
    user: str,
    commands: str,
    tmp_path: Path,
    known_hosts: Path | None = None,
    options: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """OpenSSH's ``sftp -b`` running ``commands`` as ``user``; ``options`` (``-o`` pairs)
    come before the usual ones."""
    batch = tmp_path / "batch"
    batch.write_text(commands)
    host, port = server.sftp
    return subprocess.run(
        [
            "sftp",
            "-b",
            str(batch),
            "-P",
            str(port),
            *options,
            *ssh_options(server, user, known_hosts),
            f"{user}@{host}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def ssh(
    server: RunningServer, user: str, *options: str, command: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    host, port = server.sftp
    return subprocess.run(
        [
            "ssh",
            "-p",
            str(port),
            *ssh_options(server, user),
            *options,
            f"{user}@{host}",
            *([command] if command else []),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def refused(server: RunningServer, operation: str) -> list[dict[str, object]]:
    return [r for r in server.instance.audit("denied") if operation in str(r.get("operation"))]


@pytest.fixture
def keyed(server: RunningServer) -> RunningServer:
    server.instance.add_account("mairie-cerilly", key=True)
    return server


class TestOpenSshSftp:
    def test_key_login_with_strict_host_key_checking(
        self, keyed: RunningServer, tmp_path: Path
    ) -> None:
        """sftp -b: put, ls, get; the host key is checked against the instance's."""
        local = tmp_path / "compta.bak"
        local.write_bytes(b"COSOLUCE" * 100_000)
        proc = sftp_batch(
            keyed,
            "mairie-cerilly",
            f"put {local}\nls -l\nget compta.bak {tmp_path / 'back.bak'}\n",
            tmp_path,
        )
        assert 0 == proc.returncode, proc.stderr
        assert "compta.bak" in proc.stdout
        assert local.read_bytes() == (tmp_path / "back.bak").read_bytes()
        assert (
            local.read_bytes()
            == (keyed.instance.area("mairie-cerilly") / "compta.bak").read_bytes()
        )
        [login] = keyed.instance.audit("login.ok")
        assert {
            "account": "mairie-cerilly",
            "protocol": "sftp",
            "method": "publickey",
            "ip": "127.0.0.1",
        }.items() <= login.items()

    def test_a_wrong_host_key_stops_the_client(self, keyed: RunningServer, tmp_path: Path) -> None:
        """A client that pinned another key refuses to talk: nothing is sent."""
        other = paramiko.Ed25519Key.from_private_key_file(
            str(keyed.instance.keys["mairie-cerilly"])
        )
        host, port = keyed.sftp
        wrong = tmp_path / "wrong_known_hosts"
        wrong.write_text(f"[{host}]:{port} ssh-ed25519 {other.get_base64()}\n")
        local = tmp_path / "x.bak"
        local.write_bytes(b"x")
        proc = sftp_batch(keyed, "mairie-cerilly", f"put {local}\n", tmp_path, known_hosts=wrong)
        assert 0 != proc.returncode
        assert "Host key verification failed" in proc.stderr
        assert [] == list(keyed.instance.area("mairie-cerilly").glob("*"))

    def test_a_member_deletion_is_refused_in_the_client(
        self, keyed: RunningServer, tmp_path: Path
    ) -> None:
        local = tmp_path / "x.bak"
        local.write_bytes(b"x")
        proc = sftp_batch(keyed, "mairie-cerilly", f"put {local}\nrm x.bak\n", tmp_path)
        assert 0 != proc.returncode
        assert "Permission denied" in proc.stderr
        assert (keyed.instance.area("mairie-cerilly") / "x.bak").exists()


class TestPasswordLogin:
    def test_paramiko_password_login(self, server: RunningServer) -> None:
        server.instance.add_account("mairie-a")
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        client.upload("/a.bak", b"data")
        client.close()
        [login] = server.instance.audit("login.ok")
        assert "password" == login["method"]

    def test_wrong_password_is_audited_with_ip_and_reason(self, server: RunningServer) -> None:
        server.instance.add_account("mairie-a")
        with pytest.raises(paramiko.AuthenticationException):
            SftpClient(*server.sftp, "mairie-a", "not the password")
        with pytest.raises(paramiko.AuthenticationException):
            SftpClient(*server.sftp, "nobody", "whatever")
        reasons = {(r["account"], r["reason"]) for r in server.instance.audit("login.failed")}
        assert {("mairie-a", "wrong password"), ("nobody", "unknown account")} <= reasons
        assert all("127.0.0.1" == r["ip"] for r in server.instance.audit("login.failed"))
        assert "not the password" not in "".join(
            p.read_text() for p in (server.instance.root / "log").rglob("*") if p.is_file()
        )

    def test_disabled_account_cannot_log_in(self, server: RunningServer, tmp_path: Path) -> None:
        """Neither by password nor by key; its files stay."""
        server.instance.add_account("mairie-a", key=True)
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        client.upload("/kept.bak", b"kept")
        client.close()
        server.instance.cli("account", "disable", "mairie-a", check=True)
        with pytest.raises(paramiko.AuthenticationException):
            SftpClient(*server.sftp, "mairie-a", PASSWORD)
        proc = sftp_batch(server, "mairie-a", "ls\n", tmp_path)
        assert 0 != proc.returncode
        assert (server.instance.area("mairie-a") / "kept.bak").exists()
        assert any("account disabled" == r["reason"] for r in server.instance.audit("login.failed"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestOnlySftp:
    def test_exec_is_refused(self, keyed: RunningServer) -> None:
        proc = ssh(keyed, "mairie-cerilly", command="ls")
        assert 0 != proc.returncode
        wait_for(lambda: refused(keyed, "exec"))

    def test_shell_is_refused(self, keyed: RunningServer) -> None:
        proc = ssh(keyed, "mairie-cerilly", "-tt")
        assert 0 != proc.returncode
        wait_for(lambda: refused(keyed, "shell"))

    def test_local_forwarding_is_refused(self, keyed: RunningServer) -> None:
        """ssh -L: the tunnel opens locally, but the server refuses to connect it."""
        local = free_port()
        host, port = keyed.sftp
        tunnel = subprocess.Popen(
            [
                "ssh",
                "-N",
                "-p",
                str(port),
                *ssh_options(keyed, "mairie-cerilly"),
                "-L",
                f"{local}:127.0.0.1:{port}",
                f"mairie-cerilly@{host}",
            ],
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        try:

            def connected() -> socket.socket | None:
                try:
                    return socket.create_connection(("127.0.0.1", local), timeout=5)
                except OSError:
                    return None

            conn = wait_for(connected)
            assert isinstance(conn, socket.socket)
            with conn:
                assert b"" == conn.recv(100)  # closed: no SSH banner came through
            wait_for(lambda: refused(keyed, "direct-tcpip"))
        finally:
            tunnel.kill()
            tunnel.wait(10)

    def test_remote_forwarding_is_refused(self, keyed: RunningServer) -> None:
        """ssh -R: the server refuses to listen for the client."""
        proc = ssh(
            keyed, "mairie-cerilly", "-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"
        )
        assert 0 != proc.returncode
        wait_for(lambda: refused(keyed, "remote port forwarding"))

    def test_dynamic_forwarding_channel_is_refused(self, keyed: RunningServer) -> None:
        """ssh -D opens direct-tcpip channels like -L: refused the same way (paramiko)."""
        host, port = keyed.sftp
        transport = paramiko.Transport((host, port))
        transport.connect()
        transport.auth_publickey(
            "mairie-cerilly",
            paramiko.Ed25519Key.from_private_key_file(str(keyed.instance.keys["mairie-cerilly"])),
        )
        with pytest.raises(paramiko.ChannelException):
            transport.open_channel("direct-tcpip", ("10.0.0.1", 80), ("127.0.0.1", 0))
        with pytest.raises(paramiko.SSHException):
            transport.open_session().exec_command("id")
        transport.close()
        assert refused(keyed, "direct-tcpip")

    def test_other_clients_are_served_meanwhile(self, keyed: RunningServer, tmp_path: Path) -> None:
        """After refusals, the server still serves normally."""
        ssh(keyed, "mairie-cerilly", command="ls")
        proc = sftp_batch(keyed, "mairie-cerilly", "ls\n", tmp_path)
        assert 0 == proc.returncode, proc.stderr
