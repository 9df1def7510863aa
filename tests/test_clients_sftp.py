"""Members' real SFTP clients with their default settings: upload, list, download, catalog.

PuTTY ``psftp`` (the SSH engine of WinSCP and FileZilla), OpenSSH ``sftp`` with
``put -p``, lftp in SFTP mode and rclone run as real processes; WinSCP's and FileZilla's
own sequences (Windows programs) are replayed with paramiko, request by request. Each
test uploads, lists, downloads and compares byte for byte, and checks the catalog entry.
Secrets never go on a command line: passwords come from a file (``psftp -pwfile``), an
``SSH_ASKPASS`` helper, or rclone's obscured form in the environment.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients import SftpClient
from tests.conftest import PASSWORD, RunningServer, TestInstance, wait_for

MEMBER = "mairie-clients"
DEFAULT_BANNER_WORDS = ("agence technique", "tracées")


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def catalog(instance: TestInstance) -> list[dict[str, Any]]:
    proc = instance.cli("catalog", "list", "--json", check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def catalogued(instance: TestInstance, path: str, data: bytes) -> dict[str, Any]:
    """The catalog entry at ``path``: received, with the size and SHA-256 of ``data``."""
    [entry] = [e for e in catalog(instance) if e["path"] == path and e["account"] == MEMBER]
    assert ("received", len(data), hashlib.sha256(data).hexdigest()) == (
        entry["state"],
        entry["size"],
        entry["sha256"],
    )
    return entry


def fingerprint(instance: TestInstance, kind: str = "ed25519") -> str:
    pub = instance.root / "keys" / f"ssh_host_{kind}_key.pub"
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True)
    return out.stdout.split()[1]  # SHA256:...


@pytest.fixture
def member(server: RunningServer) -> RunningServer:
    server.instance.add_account(MEMBER, key=True)
    return server


@pytest.fixture
def local(tmp_path: Path) -> Path:
    folder = tmp_path / "local"
    folder.mkdir()
    return folder


class TestPsftp:
    """PuTTY's psftp: the host key pinned by its SHA-256 fingerprint, no prompt."""

    def run(
        self, server: RunningServer, tmp_path: Path, script: str, *auth: str
    ) -> subprocess.CompletedProcess[str]:
        need("psftp")
        batch = tmp_path / "batch"
        batch.write_text(script)
        home = tmp_path / "home"  # psftp may write ~/.putty: never the real one
        home.mkdir(exist_ok=True)
        host, port = server.sftp
        inst = server.instance
        return subprocess.run(
            [
                "psftp",
                "-batch",
                "-P",
                str(port),
                "-l",
                MEMBER,
                "-hostkey",
                fingerprint(inst, "ed25519"),
                "-hostkey",
                fingerprint(inst, "rsa"),
                *auth,
                "-b",
                str(batch),
                host,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "HOME": str(home)},
        )

    def test_password_login_put_ls_get_and_the_banner(
        self, member: RunningServer, tmp_path: Path, local: Path
    ) -> None:
        """Password from a file (never argv): put, ls, get byte-exact, catalogued; the
        French pre-login banner is shown."""
        data = os.urandom(300_000)
        (local / "paie.bak").write_bytes(data)
        secret = tmp_path / "pw"
        secret.write_text(PASSWORD)
        secret.chmod(0o600)
        proc = self.run(
            member,
            tmp_path,
            "put local/paie.bak paie.bak\nls\nget paie.bak back.bak\n",
            "-pwfile",
            str(secret),
        )
        assert 0 == proc.returncode, proc.stderr
        assert "paie.bak" in proc.stdout
        assert data == (tmp_path / "back.bak").read_bytes()
        catalogued(member.instance, "/paie.bak", data)
        banner = " ".join(proc.stderr.split())
        for words in DEFAULT_BANNER_WORDS:
            assert words in banner

    def test_key_login_converted_with_puttygen(
        self, member: RunningServer, tmp_path: Path, local: Path
    ) -> None:
        """An OpenSSH key converted to .ppk (``puttygen KEY -O private -o KEY.ppk``) logs in."""
        need("puttygen")
        ppk = tmp_path / "member.ppk"
        key = member.instance.keys[MEMBER]
        subprocess.run(
            ["puttygen", str(key), "-O", "private", "-o", str(ppk)], check=True, timeout=60
        )
        data = os.urandom(50_000)
        (local / "k.bak").write_bytes(data)
        proc = self.run(
            member, tmp_path, "put local/k.bak k.bak\nget k.bak kb.bak\n", "-i", str(ppk)
        )
        assert 0 == proc.returncode, proc.stderr
        assert data == (tmp_path / "kb.bak").read_bytes()
        catalogued(member.instance, "/k.bak", data)
        [login] = [r for r in member.instance.audit("login.ok") if r["account"] == MEMBER]
        assert "publickey" == login["method"]

    def test_a_wrong_host_key_stops_before_login(
        self, member: RunningServer, tmp_path: Path
    ) -> None:
        """A pinned fingerprint that does not match: psftp refuses, nothing is sent."""
        need("psftp")
        host, port = member.sftp
        proc = subprocess.run(
            ["psftp", "-batch", "-P", str(port), "-l", MEMBER, "-hostkey",
             "SHA256:" + "A" * 43, "-b", "/dev/null", host],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path)},
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert 0 != proc.returncode
        assert [] == member.instance.audit("login.ok")


class TestWinscpDefaults:
    """WinSCP's default upload, replayed request by request with paramiko: files above
    100 KiB go to ``name.filepart``, are renamed, then get the local timestamp."""

    MTIME = 1_700_000_000  # 2023-11-14T22:13:20Z, the local file's date

    def winscp_upload(self, client: SftpClient, name: str, data: bytes) -> None:
        part = f"/{name}.filepart"
        with client.sftp.open(part, "wb") as remote:
            for offset in range(0, len(data), 32768):
                remote.write(data[offset : offset + 32768])
        client.sftp.rename(part, f"/{name}")
        client.sftp.utime(f"/{name}", (self.MTIME, self.MTIME))

    def test_filepart_rename_timestamp_then_list_and_download(self, member: RunningServer) -> None:
        """No error at any step; the file has the local date, the catalog keeps the
        arrival time; the listing shows it; the download is byte-exact."""
        data = os.urandom(400_000)
        client = SftpClient(*member.sftp, MEMBER, PASSWORD)
        try:
            self.winscp_upload(client, "compta.bak", data)
            [listed] = client.sftp.listdir_attr("/")
            assert ("compta.bak", self.MTIME, len(data)) == (
                listed.filename,
                listed.st_mtime,
                listed.st_size,
            )
            assert data == client.download("/compta.bak")
        finally:
            client.close()
        entry = catalogued(member.instance, "/compta.bak", data)
        assert not entry["received_at"].startswith("2023")
        assert member.instance.audit("attributes.changed")

    def test_an_interrupted_filepart_then_a_fresh_retry(self, member: RunningServer) -> None:
        """The connection drops mid-upload: the .filepart is gone (nothing to resume);
        WinSCP's retry finds no partial file, uploads from zero, ends with a whole file."""
        data = os.urandom(600_000)
        cut = SftpClient(*member.sftp, MEMBER, PASSWORD)
        remote = cut.sftp.open("/paie.bak.filepart", "wb")
        remote.write(data[:200_000])
        remote.flush()
        cut.transport.close()  # the network drops
        wait_for(lambda: member.instance.audit("upload.interrupted"), timeout=30)
        retry = SftpClient(*member.sftp, MEMBER, PASSWORD)
        try:
            # WinSCP's resume: stat the .filepart; it is not there, so start over.
            with pytest.raises(FileNotFoundError):
                retry.sftp.stat("/paie.bak.filepart")
            self.winscp_upload(retry, "paie.bak", data)
            assert ["paie.bak"] == retry.listdir("/")
            assert data == retry.download("/paie.bak")
        finally:
            retry.close()
        catalogued(member.instance, "/paie.bak", data)


class TestFilezillaSftpDefaults:
    def test_direct_upload_list_download(self, member: RunningServer) -> None:
        """FileZilla over SFTP (fzsftp, PuTTY's engine): direct upload to the final name,
        no timestamp by default; listing with attributes; byte-exact download."""
        data = os.urandom(250_000)
        client = SftpClient(*member.sftp, MEMBER, PASSWORD)
        try:
            client.sftp.putfo(io.BytesIO(data), "/direct.bak", confirm=True)
            assert ["direct.bak"] == [a.filename for a in client.sftp.listdir_attr("/")]
            assert data == client.download("/direct.bak")
        finally:
            client.close()
        catalogued(member.instance, "/direct.bak", data)


class TestOpenSsh:
    def test_put_p_keeps_the_date_and_the_file_stays_read_only(
        self, member: RunningServer, tmp_path: Path, local: Path
    ) -> None:
        """``sftp`` ``put -p`` (FSETSTAT with times and permissions before the close): no
        error, the date is kept, the permissions are not (0440); ``get`` is byte-exact."""
        need("sftp")
        data = os.urandom(200_000)
        source = local / "p.bak"
        source.write_bytes(data)
        os.utime(source, (1_600_000_000, 1_600_000_000))
        host, port = member.sftp
        known = member.instance.known_hosts(host, port)
        proc = subprocess.run(
            ["sftp", "-b", "-", "-P", str(port), "-i", str(member.instance.keys[MEMBER]),
             "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
             "-o", "BatchMode=yes", f"{MEMBER}@{host}"],
            input=f"put -p {source} /p.bak\nls -l /\nget /p.bak {tmp_path / 'back.bak'}\n",
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert 0 == proc.returncode, proc.stderr
        assert data == (tmp_path / "back.bak").read_bytes()
        st = (member.instance.area(MEMBER) / "p.bak").stat()
        assert (1_600_000_000, 0o440) == (int(st.st_mtime), st.st_mode & 0o777)
        catalogued(member.instance, "/p.bak", data)
        [change] = member.instance.audit("attributes.changed")
        assert "permissions" == change["ignored"]

    def test_the_banner_is_shown_before_login(self, member: RunningServer, tmp_path: Path) -> None:
        """OpenSSH prints the configured pre-login banner (here the French default)."""
        need("sftp")
        host, port = member.sftp
        known = member.instance.known_hosts(host, port)
        proc = subprocess.run(
            ["sftp", "-b", "-", "-P", str(port), "-i", str(member.instance.keys[MEMBER]),
             "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes", f"{MEMBER}@{host}"],
            input="pwd\n",
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert 0 == proc.returncode, proc.stderr
        for words in DEFAULT_BANNER_WORDS:
            assert words in proc.stderr


class TestLftpSftp:
    def test_put_ls_get(self, member: RunningServer, tmp_path: Path, local: Path) -> None:
        """lftp in SFTP mode (it runs OpenSSH underneath): put, cls, get byte-exact."""
        need("lftp")
        data = os.urandom(180_000)
        (local / "l.bak").write_bytes(data)
        host, port = member.sftp
        known = member.instance.known_hosts(host, port)
        key = member.instance.keys[MEMBER]
        connect = (
            f"ssh -a -x -i {key} -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
            " -o BatchMode=yes"
        )
        script = (
            f"set sftp:connect-program '{connect}'; set net:max-retries 1;"
            f" open -u {MEMBER}, -p {port} sftp://{host};"
            f" put {local / 'l.bak'} -o /l.bak; cls -1 /; get /l.bak -o {tmp_path / 'lb.bak'}"
        )
        proc = subprocess.run(["lftp", "-c", script], capture_output=True, text=True, timeout=120)
        assert 0 == proc.returncode, proc.stderr
        assert "l.bak" in proc.stdout
        assert data == (tmp_path / "lb.bak").read_bytes()
        catalogued(member.instance, "/l.bak", data)


@pytest.fixture
def rclone_sftp(member: RunningServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    """rclone's remote ``intake:`` from the environment: no config file, password
    obscured through stdin, both host keys pinned in a known_hosts file."""
    need("rclone")
    host, port = member.sftp
    known = tmp_path / "rclone_known_hosts"
    known.write_text(
        "".join(
            f"[{host}]:{port} "
            + " ".join(
                (member.instance.root / "keys" / f"ssh_host_{k}_key.pub").read_text().split()[:2]
            )
            + "\n"
            for k in ("ed25519", "rsa")
        )
    )
    obscured = subprocess.run(
        ["rclone", "obscure", "-"], input=PASSWORD, capture_output=True, text=True, check=True
    ).stdout.strip()
    yield {
        **os.environ,
        "RCLONE_CONFIG": str(tmp_path / "no-rclone.conf"),
        "RCLONE_CONFIG_INTAKE_TYPE": "sftp",
        "RCLONE_CONFIG_INTAKE_HOST": host,
        "RCLONE_CONFIG_INTAKE_PORT": str(port),
        "RCLONE_CONFIG_INTAKE_USER": MEMBER,
        "RCLONE_CONFIG_INTAKE_PASS": obscured,
        "RCLONE_CONFIG_INTAKE_KNOWN_HOSTS_FILE": str(known),
    }


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "janvier.bak": os.urandom(150_000),
        "fevrier.bak": os.urandom(20_000),
        "paie/mars.bak": os.urandom(70_000),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


class TestRcloneSftp:
    def test_copy_a_folder_then_check(
        self, member: RunningServer, rclone_sftp: dict[str, str], tmp_path: Path, local: Path
    ) -> None:
        """``rclone copy`` of a folder with its defaults (it sets each file's mtime) and
        ``rclone check``: no error; every file catalogued, with rclone's dates on disk."""
        files = make_tree(local)
        for args in (["copy", str(local), "intake:/sauvegardes"],
                     ["check", str(local), "intake:/sauvegardes"]):  # fmt: skip
            proc = subprocess.run(
                ["rclone", *args], env=rclone_sftp, capture_output=True, text=True, timeout=180
            )
            assert 0 == proc.returncode, proc.stderr
        back = tmp_path / "back"
        proc = subprocess.run(
            ["rclone", "copy", "intake:/sauvegardes", str(back)],
            env=rclone_sftp,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert 0 == proc.returncode, proc.stderr
        area = member.instance.area(MEMBER) / "sauvegardes"
        for name, data in files.items():
            assert data == (back / name).read_bytes()
            assert int((local / name).stat().st_mtime) == int((area / name).stat().st_mtime)
            catalogued(member.instance, f"/sauvegardes/{name}", data)
        assert 3 == len(member.instance.audit("attributes.changed"))
