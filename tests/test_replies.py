"""What a member reads from the server is in French (``[server] lang``), from one table.

FTPS replies are read as real clients print them: ``ftplib`` (every reply line of a whole
FileZilla-like session), curl ``-v`` and lftp; SFTP status texts through paramiko. The
reply codes are those clients decide on; only the texts change.
"""

from __future__ import annotations

import ftplib
import io
import os
import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from intake.core import messages
from intake.core.messages import Say
from tests.clients import ReusingFTP_TLS, tls_client_context
from tests.conftest import (
    PASSWORD,
    RunningServer,
    TestInstance,
    connect,
    running,
    write_test_config,
)

FRENCH = tuple(messages.TEXT.values())
ENGLISH_WORDS = ("Username ok", "Authentication failed", "Transfer complete", "Goodbye.",
                 "File status okay", "Service not available", "TLS required:",
                 "is the current directory", "Upload refused", "bytes")  # fmt: skip


def in_table(line: str) -> bool:
    """A reply line whose text is the table's (a kept quoted path or numbers around it)."""
    code, _, rest = line.partition(" ")
    if code in ("213", "215"):  # protocol data (sizes, dates, SYST)
        return True
    if rest.startswith('"'):  # 257 "path" <text>
        rest = rest[rest.index('"', 1) + 2 :]
    return any(rest.startswith(text) for text in FRENCH)


class RecordingFTP(ReusingFTP_TLS):
    """ftplib that keeps every final reply line (what FileZilla's log pane shows)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lines: list[str] = []

    def getresp(self) -> str:
        try:
            resp = super().getresp()
        except ftplib.Error as exc:
            self.lines.append(str(exc).splitlines()[-1])
            raise
        self.lines.append(resp.splitlines()[-1])
        return resp


def cafile(server: RunningServer) -> str:
    return str(server.instance.root / "keys" / "tls.crt")


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


class TestFtpsRepliesInFrench:
    def test_a_whole_session_reads_french(self, server: RunningServer) -> None:
        """Plaintext USER, a wrong password, then a FileZilla-like session: every reply
        (welcome, 530, 331, 230, PBSZ/PROT, PASV, 150/226, 257, rename, refusals, 221)
        has its code and a text from the table; no pyftpdlib English is left."""
        server.instance.add_account("mairie-a")
        assert server.ftps is not None
        host, port = server.ftps
        plain = RecordingFTP(context=tls_client_context(cafile(server)))
        plain.connect(host, port, timeout=10)
        with pytest.raises(ftplib.error_perm):
            plain.sendcmd("USER mairie-a")  # before AUTH TLS
        plain.close()
        ftp = RecordingFTP(context=tls_client_context(cafile(server)))
        ftp.connect(host, port, timeout=10)
        ftp.auth()
        with pytest.raises(ftplib.error_perm):
            ftp.login("mairie-a", "wrong password")
        ftp.close()
        ftp2 = RecordingFTP(context=tls_client_context(cafile(server)))
        ftp2.connect(host, port, timeout=10)
        ftp2.login("mairie-a", PASSWORD)
        ftp2.prot_p()
        ftp2.voidcmd("TYPE I")
        ftp2.pwd()
        ftp2.mkd("/dossier")
        ftp2.storbinary("STOR /dossier/a.bak", io.BytesIO(b"a" * 5000))
        ftp2.rename("/dossier/a.bak", "/dossier/b.bak")
        ftp2.sendcmd("NOOP")
        for refused in ("DELE /dossier/b.bak", "SITE CHMOD 600 /dossier/b.bak", "SIZE /x"):
            with pytest.raises(ftplib.error_perm):
                ftp2.sendcmd(refused)
        ftp2.retrlines("MLSD /dossier", lambda _: None)
        ftp2.quit()
        lines = plain.lines + ftp.lines + ftp2.lines
        codes = [line[:3] for line in lines]
        assert {"530", "331", "230", "200", "257", "226", "250", "550", "221"} <= set(codes)
        assert [] == [line for line in lines if not in_table(line)]
        assert [] == [line for line in lines if any(w in line for w in ENGLISH_WORDS)]
        assert f"530 {messages.text(Say.TLS_REQUIRED)}." in plain.lines
        assert f"530 {messages.text(Say.LOGIN_FAILED)}." in ftp.lines

    def test_curl_shows_french_replies_and_limit_refusal(
        self, instance: TestInstance, tmp_path: Path
    ) -> None:
        """curl -v prints the French 331/230/226; an upload over the quota ends with the
        table's quota sentence, no English detail (the audit names the limit)."""
        need("curl")
        write_test_config(instance.root, 'account_quota = "1 MiB"\n')
        instance.add_account("mairie-a")
        big = tmp_path / "big.bak"
        big.write_bytes(os.urandom(2 * 1024 * 1024))
        netrc = tmp_path / "netrc"
        with running(instance) as server:
            assert server.ftps is not None
            host, port = server.ftps
            netrc.write_text(f'machine {host} login mairie-a password "{PASSWORD}"\n')
            proc = subprocess.run(
                ["curl", "-v", "--ssl-reqd", "--cacert", cafile(server), "--netrc-file",
                 str(netrc), "-T", str(big), f"ftp://{host}:{port}/big.bak"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert 0 != proc.returncode
        replies = [line[2:] for line in proc.stderr.splitlines() if line.startswith("< ")]
        assert f"331 {messages.text(Say.USER_OK)}." in replies
        assert f"230 {messages.text(Say.LOGGED_IN)}." in replies, "\n".join(replies)
        assert f"552 {messages.text(Say.QUOTA)}." in replies, proc.stderr[-3000:]
        assert [] == [r for r in replies if not in_table(r) and not r.startswith("220-")]
        records = [r for r in instance.audit("denied") if r.get("path") == "/big.bak"]
        assert "account quota" in str(records[0]["reason"])

    def test_lftp_prints_the_french_refusal(self, server: RunningServer, tmp_path: Path) -> None:
        """lftp with a wrong password prints the server's French 530 line."""
        need("lftp")
        server.instance.add_account("mairie-a")
        assert server.ftps is not None
        host, port = server.ftps
        script = (
            f"set ftp:ssl-force true; set ssl:ca-file {cafile(server)}; set net:max-retries 1;"
            f" open --env-password -u mairie-a -p {port} {host}; ls /"
        )
        proc = subprocess.run(
            ["lftp", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "LFTP_PASSWORD": "not the password"},
        )
        assert 0 != proc.returncode
        assert messages.text(Say.LOGIN_FAILED) in proc.stderr, proc.stderr

    def test_english_on_request(self, instance: TestInstance) -> None:
        """``[server] lang = "en"``: the same replies from the table's English, same codes."""
        with instance.config_file.open("a") as conf:
            conf.write('[server]\nlang = "en"\n')
        instance.add_account("mairie-a")
        with running(instance) as server:
            assert server.ftps is not None
            ftp = RecordingFTP(context=tls_client_context(cafile(server)))
            ftp.connect(*server.ftps, timeout=10)
            ftp.login("mairie-a", PASSWORD)
            with pytest.raises(ftplib.error_perm):
                ftp.sendcmd("DELE /nothing.bak")
            ftp.quit()
        assert f"331 {messages.ENGLISH[Say.USER_OK]}." in ftp.lines
        assert f"221 {messages.ENGLISH[Say.GOODBYE]}." in ftp.lines
        assert any(line.startswith("550 Refused") for line in ftp.lines)


class TestSftpStatusInFrench:
    def test_limit_and_plain_statuses(self, instance: TestInstance) -> None:
        """A file over max_file_size: the status text is the table's "too large", with
        no English detail; a refused delete reads the write-once sentence."""
        write_test_config(instance.root, 'max_file_size = "1 MiB"\n')
        instance.add_account("mairie-a")
        with running(instance) as server:
            client = connect(server, "sftp", "mairie-a")
            sftp: paramiko.SFTPClient = client.sftp  # type: ignore[attr-defined]
            with pytest.raises(OSError) as too_big, sftp.open("/big.bak", "wb") as handle:
                handle.write(b"b" * (2 * 1024 * 1024))
            with sftp.open("/small.bak", "wb") as handle:
                handle.write(b"s")
            with pytest.raises(OSError) as delete:
                sftp.remove("/small.bak")
            client.close()
        assert messages.text(Say.TOO_BIG) in str(too_big.value)
        assert "max_file_size" not in str(too_big.value)
        assert messages.text(Say.WRITE_ONCE) in str(delete.value)
