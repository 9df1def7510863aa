"""Members' real FTPS clients with their default settings, and the welcome banners.

rclone (Go's TLS: resumes TLS 1.2 only with session tickets), curl and lftp run as real
processes; FileZilla's sequence (explicit TLS, data connections resuming the control
session, MLSD listings, MFMT when "preserve timestamps" is on) is replayed with
``ftplib`` resuming the session. Uploads are repeated many times in a row: a TLS
detail on data connections can cut the tail of one upload in ten (docs/pitfalls.md).
Secrets never go on a command line: curl reads a netrc file, lftp ``--env-password``,
rclone the obscured password from the environment.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from tests.clients import ReusingFTP_TLS, tls_client_context
from tests.conftest import PASSWORD, RunningServer, TestInstance, running, write_test_config

MEMBER = "mairie-ftps"
IN_A_ROW = 40


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def catalog(instance: TestInstance) -> dict[str, dict[str, Any]]:
    proc = instance.cli("catalog", "list", "--json", check=True)
    return {e["path"]: e for e in json.loads(proc.stdout) if e["account"] == MEMBER}


def assert_catalogued(instance: TestInstance, files: dict[str, bytes]) -> None:
    """Each path received, with the size and SHA-256 of its data, and whole on disk."""
    entries = catalog(instance)
    for path, data in files.items():
        entry = entries[path]
        assert ("received", len(data), hashlib.sha256(data).hexdigest()) == (
            entry["state"],
            entry["size"],
            entry["sha256"],
        ), path
        assert data == (instance.area(MEMBER) / path.lstrip("/")).read_bytes(), path


@pytest.fixture
def member(server: RunningServer) -> RunningServer:
    server.instance.add_account(MEMBER)
    assert server.ftps is not None
    return server


def cafile(server: RunningServer) -> str:
    return str(server.instance.root / "keys" / "tls.crt")


class TestFilezillaFtpsDefaults:
    def test_explicit_tls_mlsd_mfmt_and_byte_exact_download(self, member: RunningServer) -> None:
        """FileZilla "Require explicit FTP over TLS": every data connection resumes the
        control session; FEAT offers MLST and MFMT; MLSD lists; MFMT sets the date;
        the download is byte-exact; the catalog keeps the arrival time."""
        assert member.ftps is not None
        ftp = ReusingFTP_TLS(context=tls_client_context(cafile(member)), timeout=30)
        ftp.connect(*member.ftps)
        ftp.login(MEMBER, PASSWORD)
        ftp.prot_p()
        try:
            features = ftp.sendcmd("FEAT")
            assert "MLST" in features and "MFMT" in features
            data = os.urandom(500_000)
            ftp.storbinary("STOR /fz.bak", io.BytesIO(data))
            assert ftp.sendcmd("MFMT 20240105083000 /fz.bak").startswith("213")
            listing = dict(ftp.mlsd("/", facts=["type", "size", "modify"]))
            assert {"type": "file", "size": str(len(data)), "modify": "20240105083000"} == (
                listing["fz.bak"]
            )
            chunks: list[bytes] = []
            ftp.retrbinary("RETR /fz.bak", chunks.append)
            assert data == b"".join(chunks)
        finally:
            ftp.quit()
        assert_catalogued(member.instance, {"/fz.bak": data})
        assert not catalog(member.instance)["/fz.bak"]["received_at"].startswith("2024")


class TestCurlManyInARow:
    def test_uploads_in_a_row_arrive_whole(self, member: RunningServer, tmp_path: Path) -> None:
        """``curl --ssl-reqd -T`` 40 times, one process each: every file arrives whole
        (no truncated tail), byte-exact, catalogued; a listing shows them all."""
        need("curl")
        assert member.ftps is not None
        host, port = member.ftps
        netrc = tmp_path / "netrc"
        netrc.write_text(f'machine {host} login {MEMBER} password "{PASSWORD}"\n')
        netrc.chmod(0o600)
        base = ["curl", "--silent", "--show-error", "--ssl-reqd", "--cacert", cafile(member),
                "--netrc-file", str(netrc)]  # fmt: skip
        files: dict[str, bytes] = {}
        for i in range(IN_A_ROW):
            data = os.urandom(200_000 + 977 * i)
            local = tmp_path / f"c{i}.bak"
            local.write_bytes(data)
            proc = subprocess.run(
                [*base, "-T", str(local), f"ftp://{host}:{port}/c{i}.bak"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert 0 == proc.returncode, proc.stderr
            files[f"/c{i}.bak"] = data
        listing = subprocess.run(
            [*base, "--list-only", f"ftp://{host}:{port}/"], capture_output=True, text=True
        )
        assert sorted(p.lstrip("/") for p in files) == sorted(listing.stdout.split())
        back = subprocess.run(
            [*base, f"ftp://{host}:{port}/c7.bak"], capture_output=True, timeout=60
        )
        assert files["/c7.bak"] == back.stdout
        assert_catalogued(member.instance, files)
        assert [] == member.instance.audit("upload.interrupted")


class TestLftpManyInARow:
    def test_one_session_many_uploads(self, member: RunningServer, tmp_path: Path) -> None:
        """lftp (GnuTLS) with FTPS forced: 40 uploads over one control connection, each on
        its own resumed data connection; all whole; ``get`` byte-exact."""
        need("lftp")
        assert member.ftps is not None
        host, port = member.ftps
        files: dict[str, bytes] = {}
        for i in range(IN_A_ROW):
            data = os.urandom(150_000 + 1013 * i)
            (tmp_path / f"l{i}.bak").write_bytes(data)
            files[f"/l{i}.bak"] = data
        puts = "; ".join(f"put {tmp_path / f'l{i}.bak'} -o /l{i}.bak" for i in range(IN_A_ROW))
        script = (
            "set ftp:ssl-force true; set ftp:ssl-protect-data true;"
            f" set ssl:ca-file {cafile(member)}; set ssl:verify-certificate yes;"
            " set net:max-retries 1; set net:timeout 20;"
            f" open --env-password -u {MEMBER} -p {port} {host}; {puts};"
            f" get /l3.bak -o {tmp_path / 'back.bak'}"
        )
        proc = subprocess.run(
            ["lftp", "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "LFTP_PASSWORD": PASSWORD},
        )
        assert 0 == proc.returncode, proc.stderr
        assert files["/l3.bak"] == (tmp_path / "back.bak").read_bytes()
        assert_catalogued(member.instance, files)
        assert [] == member.instance.audit("upload.interrupted")


@pytest.fixture
def rclone_ftps(member: RunningServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    """rclone's remote ``intake:`` (ftp, explicit_tls) from the environment: no config
    file, the password obscured through stdin, the certificate pinned (SSL_CERT_FILE)."""
    need("rclone")
    assert member.ftps is not None
    host, port = member.ftps
    obscured = subprocess.run(
        ["rclone", "obscure", "-"], input=PASSWORD, capture_output=True, text=True, check=True
    ).stdout.strip()
    yield {
        **os.environ,
        "SSL_CERT_FILE": cafile(member),
        "RCLONE_CONFIG": str(tmp_path / "no-rclone.conf"),
        "RCLONE_CONFIG_INTAKE_TYPE": "ftp",
        "RCLONE_CONFIG_INTAKE_HOST": host,
        "RCLONE_CONFIG_INTAKE_PORT": str(port),
        "RCLONE_CONFIG_INTAKE_USER": MEMBER,
        "RCLONE_CONFIG_INTAKE_PASS": obscured,
        "RCLONE_CONFIG_INTAKE_EXPLICIT_TLS": "true",
    }


class TestRcloneFtps:
    def test_copy_a_folder_then_check_and_copy_back(
        self, member: RunningServer, rclone_ftps: dict[str, str], tmp_path: Path
    ) -> None:
        """``rclone copy`` of a folder and ``rclone check`` with rclone's defaults (parallel
        connections, its TLS session cache): no 522, nothing refused; every file
        catalogued, byte-exact when copied back."""
        local = tmp_path / "local"
        files = {
            "janvier.bak": os.urandom(180_000),
            "fevrier.bak": os.urandom(30_000),
            "paie/mars.bak": os.urandom(90_000),
            "paie/avril.bak": os.urandom(10),
        }
        for name, data in files.items():
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            (local / name).write_bytes(data)
        back = tmp_path / "back"
        for args in (["copy", str(local), "intake:/sauvegardes"],
                     ["check", str(local), "intake:/sauvegardes"],
                     ["copy", "intake:/sauvegardes", str(back)]):  # fmt: skip
            proc = subprocess.run(
                ["rclone", *args], env=rclone_ftps, capture_output=True, text=True, timeout=180
            )
            assert 0 == proc.returncode, proc.stderr
        for name, data in files.items():
            assert data == (back / name).read_bytes()
        assert_catalogued(member.instance, {f"/sauvegardes/{n}": d for n, d in files.items()})
        # rclone's parallel transfers each make the folder they write into: on a busy machine
        # two MKDs of one folder race, and the second is answered "exists" (rclone goes on).
        # That race is the only refusal allowed, for the copy's own folders.
        folders = {"/sauvegardes", "/sauvegardes/paie"}
        refused = [
            r
            for r in member.instance.audit("denied")
            if r.get("operation") != "exec"
            and not (
                (r.get("operation"), r.get("reason")) == ("mkdir", "folder or file exists")
                and r.get("path") in folders
            )
        ]
        assert [] == [(r.get("operation"), r.get("reason")) for r in refused]


BANNER = "Agence technique de l'Allier : dépôt des sauvegardes\\nAccès tracé et enregistré"


@pytest.fixture
def bannered(instance: TestInstance) -> Iterator[RunningServer]:
    """A server whose ``[server] banner`` is set in intake.toml (two lines)."""
    write_test_config(instance.root, f'[server]\nbanner = "{BANNER}"\n')
    with running(instance) as server:
        server.instance.add_account(MEMBER)
        yield server


class TestBanners:
    def test_the_ftps_welcome_is_the_configured_banner(self, bannered: RunningServer) -> None:
        """The 220 welcome is multi-line: every banner line, then the AUTH TLS hint."""
        assert bannered.ftps is not None
        with socket.create_connection(bannered.ftps, timeout=10) as sock:
            data = b""
            while not any(line.startswith(b"220 ") for line in data.split(b"\r\n")):
                chunk = sock.recv(4096)
                assert chunk
                data += chunk
        lines = data.decode().split("\r\n")
        assert "220-Agence technique de l'Allier : dépôt des sauvegardes" == lines[0]
        assert "220-Accès tracé et enregistré" == lines[1]
        assert lines[2].startswith("220 ") and "AUTH TLS" in lines[2]

    def test_the_ssh_banner_is_the_configured_banner(self, bannered: RunningServer) -> None:
        """paramiko's client receives the same text as the SSH pre-login banner."""
        transport = paramiko.Transport(bannered.sftp)
        try:
            transport.connect()
            transport.auth_password(MEMBER, PASSWORD)
            banner = transport.get_banner()
        finally:
            transport.close()
        assert banner is not None
        text = banner.decode() if isinstance(banner, bytes) else banner
        assert ["Agence technique de l'Allier : dépôt des sauvegardes",
                "Accès tracé et enregistré"] == text.splitlines()  # fmt: skip

    def test_the_default_banner_says_who_and_that_access_is_traced(
        self, member: RunningServer
    ) -> None:
        """Without ``[server] banner``: the French default (who runs it, access traced)."""
        assert member.ftps is not None
        ctx = ssl.create_default_context(cafile=cafile(member))
        ftp = ReusingFTP_TLS(context=ctx, timeout=30)
        welcome = ftp.connect(*member.ftps)
        ftp.close()
        assert "agence technique départementale" in welcome
        assert "tracées" in welcome
