"""FTPS with real clients (ftplib, curl, lftp): TLS rules, data-channel protection, no
bounce, write-once rules, and what a cut upload leaves (audit, disk)."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.clients import FtpsClient, Refused, ReusingFTP_TLS, raw_reply, tls_client_context
from tests.conftest import PASSWORD, RunningServer, wait_for

MEMBER = "mairie-cerilly"


class ForeignSessionFTP_TLS(ftplib.FTP_TLS):
    """A client whose data connections offer a TLS session taken from another client."""

    foreign_session: ssl.SSLSession | None = None

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        wrapped = self.context.wrap_socket(  # type: ignore[attr-defined]
            conn, server_hostname=self.host, session=self.foreign_session
        )
        return wrapped, size


def ftps_address(server: RunningServer) -> tuple[str, int]:
    assert server.ftps is not None, "FTPS is not served"
    return server.ftps


def cafile(server: RunningServer) -> str:
    return str(server.instance.root / "keys" / "tls.crt")


@pytest.fixture
def member(server: RunningServer) -> str:
    server.instance.add_account(MEMBER)
    return MEMBER


@pytest.fixture
def client(server: RunningServer, member: str) -> FtpsClient:
    host, port = ftps_address(server)
    ftps = FtpsClient(host, port, member, PASSWORD, cafile=cafile(server))
    yield ftps  # type: ignore[misc]
    ftps.close()


def session_offered_to(
    server: RunningServer, owner: str, other: str
) -> tuple[ReusingFTP_TLS, ForeignSessionFTP_TLS]:
    """``owner``'s control connection, its TLS session established by one upload, and a
    second client logged in as ``other`` whose data connections offer that session."""
    host, port = ftps_address(server)
    ctx = tls_client_context(cafile(server))
    first = ReusingFTP_TLS(context=ctx, timeout=20)
    first.connect(host, port)
    first.login(owner, PASSWORD)
    first.prot_p()
    first.storbinary("STOR /a.bak", io.BytesIO(b"a"))  # the owner's session is established
    second = ForeignSessionFTP_TLS(context=ctx, timeout=20)
    second.foreign_session = first.sock.session
    second.connect(host, port)
    second.login(other, PASSWORD)
    second.prot_p()
    return first, second


def area_file(server: RunningServer, name: str) -> Path:
    return server.instance.area(MEMBER) / name


def curl_command(server: RunningServer, *args: str) -> list[str]:
    """curl over explicit FTPS as the member, checking the instance's certificate;
    ``URL`` in an argument stands for ``ftp://host:port``."""
    host, port = ftps_address(server)
    return [
        "curl",
        "--silent",
        "--show-error",
        "--ssl-reqd",
        "--cacert",
        cafile(server),
        "--user",
        f"{MEMBER}:{PASSWORD}",
        *[a.replace("URL", f"ftp://{host}:{port}") for a in args],
    ]


def curl(
    server: RunningServer, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        curl_command(server, *args), capture_output=True, text=True, timeout=timeout
    )


class TestTls:
    def test_plaintext_login_is_refused_before_the_password(
        self, server: RunningServer, member: str
    ) -> None:
        """USER without AUTH TLS gets a 530 saying TLS is required; the attempt is audited."""
        host, port = ftps_address(server)
        plain = ftplib.FTP()  # plaintext on purpose
        plain.connect(host, port, timeout=10)
        with pytest.raises(ftplib.error_perm, match=r"530.*TLS"):
            plain.sendcmd(f"USER {member}")
        with pytest.raises(ftplib.error_perm, match="530"):
            plain.sendcmd(f"PASS {PASSWORD}")
        plain.close()
        [failed] = server.instance.audit("login.failed")
        assert failed["protocol"] == "ftps"
        assert failed["account"] == member
        assert not server.instance.audit("login.ok")

    @pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
    def test_tls_1_1_is_refused(self, server: RunningServer, member: str) -> None:
        """A client limited to TLS 1.1 cannot complete the handshake."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ftps = ftplib.FTP_TLS(context=ctx, timeout=10)
        ftps.connect(*ftps_address(server))
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
            ftps.auth()  # the server answers with a protocol_version alert
        ftps.close()

    def test_certificate_is_the_one_keys_show_prints(
        self, server: RunningServer, member: str
    ) -> None:
        """The certificate presented is the instance's (its SHA-256 matches keys/tls.crt)."""
        host, port = ftps_address(server)
        with socket.create_connection((host, port), timeout=10) as sock:
            assert raw_reply(sock).startswith("220")
            sock.sendall(b"AUTH TLS\r\n")
            assert raw_reply(sock).startswith("234")
            ctx = tls_client_context(cafile(server))
            with ctx.wrap_socket(sock, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
                assert tls.version() == "TLSv1.2"
        pem = (server.instance.root / "keys" / "tls.crt").read_text()
        assert ssl.PEM_cert_to_DER_cert(pem) == der

    def test_clear_data_channel_is_refused(self, client: FtpsClient) -> None:
        """After PROT C (clear data), PASV and PORT are refused: data stays encrypted."""
        client.ftp.prot_c()
        with pytest.raises(ftplib.error_perm, match="550"):
            client.ftp.sendcmd("PASV")
        with pytest.raises(ftplib.error_perm, match="550"):
            client.ftp.sendcmd("PORT 127,0,0,1,200,10")

    def test_data_connection_must_resume_the_control_session(
        self, server: RunningServer, member: str
    ) -> None:
        """The stdlib client (no session reuse on data) is refused with 522; nothing lands."""
        host, port = ftps_address(server)
        ftps = FtpsClient(host, port, member, PASSWORD, cafile(server), reuse_session=False)
        try:
            with pytest.raises((ftplib.Error, ssl.SSLError, OSError)):
                ftps.upload("/no-reuse.bak", b"x" * 100_000)
        finally:
            ftps.ftp.close()
        assert not area_file(server, "no-reuse.bak").exists()
        wait_for(lambda: server.instance.audit("upload.interrupted"))
        refusals = [
            r for r in server.instance.audit("denied") if r.get("operation") == "data connection"
        ]
        assert refusals
        assert not server.instance.audit("upload.complete")

    def test_data_connection_cannot_resume_another_clients_session(
        self, server: RunningServer, member: str
    ) -> None:
        """B's data connection offering A's TLS session is refused: a data connection must
        resume a session of its own client (same account, same address)."""
        server.instance.add_account("other-member")
        first, second = session_offered_to(server, member, "other-member")
        with pytest.raises((ftplib.Error, ssl.SSLError, OSError)):
            second.storbinary("STOR /b.bak", io.BytesIO(b"b" * 100_000))
        first.close()
        second.close()
        assert not (server.instance.area("other-member") / "b.bak").exists()
        assert [
            r for r in server.instance.audit("denied") if r.get("operation") == "data connection"
        ]

    def test_a_data_connection_may_resume_the_same_clients_other_session(
        self, server: RunningServer, member: str
    ) -> None:
        """rclone shares one TLS session cache between its parallel control connections: a
        data connection offering the session of the same account's other live control
        connection (same address) is accepted; it proves the same secret."""
        first, second = session_offered_to(server, member, member)
        second.storbinary("STOR /b.bak", io.BytesIO(b"b" * 100_000))
        second.quit()
        first.quit()
        assert b"b" * 100_000 == area_file(server, "b.bak").read_bytes()


class TestNoBounce:
    def test_port_to_a_foreign_address_is_refused(self, client: FtpsClient) -> None:
        """PORT towards another host is refused (501) and audited."""
        with pytest.raises(ftplib.error_perm, match="501"):
            client.ftp.sendcmd("PORT 10,9,8,7,200,10")
        with pytest.raises(ftplib.error_perm, match="501"):
            client.ftp.sendcmd("EPRT |1|10.9.8.7|51210|")

    def test_port_refusal_is_audited(self, server: RunningServer, client: FtpsClient) -> None:
        """The bounce attempt is in the audit log with the target address."""
        with pytest.raises(ftplib.error_perm):
            client.ftp.sendcmd("PORT 10,9,8,7,200,10")
        [record] = [r for r in server.instance.audit("denied") if r.get("operation") == "port"]
        assert "10.9.8.7" in str(record["reason"])

    def test_passive_port_in_the_configured_range(self, client: FtpsClient) -> None:
        """PASV answers with a port from ``passive_ports`` (default 60000-60099)."""
        _host, port = ftplib.parse227(client.ftp.sendcmd("PASV"))
        assert 60000 <= port <= 60099


class TestRules:
    def test_dele_is_refused(self, server: RunningServer, client: FtpsClient) -> None:
        """DELE gets 550; the file stays; the attempt is audited."""
        client.upload("/keep.bak", b"keep")
        with pytest.raises(Refused):
            client.delete("/keep.bak")
        assert b"keep" == area_file(server, "keep.bak").read_bytes()
        assert [r for r in server.instance.audit("denied") if r.get("operation") == "delete"]

    def test_stor_onto_an_existing_name_is_refused(
        self, server: RunningServer, client: FtpsClient
    ) -> None:
        """STOR and APPE onto an existing file are refused; the first content stays."""
        client.upload("/keep.bak", b"original")
        with pytest.raises(Refused):
            client.upload("/keep.bak", b"replacement")
        with pytest.raises(Refused):
            client._call(client.ftp.storbinary, "APPE /keep.bak", io.BytesIO(b"x"))
        assert b"original" == area_file(server, "keep.bak").read_bytes()

    def test_resumed_upload_is_refused(self, server: RunningServer, client: FtpsClient) -> None:
        """REST then STOR is refused: a received file is always whole from byte 0."""
        client.ftp.voidcmd("TYPE I")
        client.ftp.sendcmd("REST 10")
        with pytest.raises(ftplib.error_perm, match="554"):
            client.ftp.sendcmd("STOR /resumed.bak")
        assert not area_file(server, "resumed.bak").exists()
        assert [r for r in server.instance.audit("denied") if r.get("operation") == "upload"]

    def test_cwd_out_of_the_area_is_refused(
        self, server: RunningServer, client: FtpsClient
    ) -> None:
        """CWD cannot leave the area: ``..`` is clamped at /, other areas are not there."""
        server.instance.add_account("other-commune")
        for path in ("/../other-commune", "../../members/other-commune", "/etc"):
            with pytest.raises(ftplib.error_perm, match="550"):
                client.ftp.cwd(path)
            assert "/" == client.ftp.pwd()
        client.ftp.cwd("/..")
        assert "/" == client.ftp.pwd()
        assert [] == client.listdir("/")

    def test_mfmt_sets_the_time_but_chmod_is_refused(
        self, server: RunningServer, client: FtpsClient
    ) -> None:
        """MFMT (FileZilla's "preserve timestamps") is applied; SITE CHMOD stays refused."""
        client.upload("/a.bak", b"a")
        reply = client.ftp.sendcmd("MFMT 20000101000000 /a.bak")
        assert reply.startswith("213 Modify=20000101000000")
        assert 946684800 == int(area_file(server, "a.bak").stat().st_mtime)
        with pytest.raises(ftplib.error_perm, match="550"):
            client.ftp.sendcmd("SITE CHMOD 777 /a.bak")
        assert [r for r in server.instance.audit("denied") if r.get("operation") == "setattr"]

    def test_empty_listings_and_files_many_times(self, client: FtpsClient) -> None:
        """Empty transfers end with a clean TLS close, not a cut (repeated: it was a race)."""
        client.upload("/empty.bak", b"")
        client.mkdir("/vide")
        for _ in range(25):
            assert [] == client.listdir("/vide")
            assert b"" == client.download("/empty.bak")

    def test_resumed_download_is_byte_exact(self, client: FtpsClient) -> None:
        """REST before RETR resumes a download at the offset."""
        data = os.urandom(200_000)
        client.upload("/big.bak", data)
        chunks: list[bytes] = []
        client.ftp.retrbinary("RETR /big.bak", chunks.append, rest=1000)
        assert data[1000:] == b"".join(chunks)


class TestCurl:
    def test_twenty_uploads_in_a_row_arrive_whole(
        self, server: RunningServer, member: str, tmp_path: Path
    ) -> None:
        """20 curl uploads, each checked byte for byte and by its audited sha256."""
        sizes = [0, 1, 1000, 65536, 65537, *[300_000 + 7919 * i for i in range(15)]]
        for i, size in enumerate(sizes):
            data = os.urandom(size)
            local = tmp_path / f"f{i}.bak"
            local.write_bytes(data)
            proc = curl(server, "-T", str(local), f"URL/f{i}.bak")
            assert proc.returncode == 0, proc.stderr
            assert data == area_file(server, f"f{i}.bak").read_bytes()
        complete = {r["path"]: r for r in server.instance.audit("upload.complete")}
        assert len(sizes) == len(complete)
        assert hashlib.sha256(b"").hexdigest() == complete["/f0.bak"]["sha256"]
        assert not server.instance.audit("upload.interrupted")

    def test_download_and_list(self, server: RunningServer, client: FtpsClient) -> None:
        """curl lists and downloads over TLS what ftplib uploaded."""
        data = os.urandom(100_000)
        client.upload("/d.bak", data)
        listing = curl(server, "--list-only", "URL/")
        assert listing.returncode == 0, listing.stderr
        assert ["d.bak"] == listing.stdout.split()
        got = subprocess.run(curl_command(server, "URL/d.bak"), capture_output=True, timeout=60)
        assert 0 == got.returncode
        assert data == got.stdout

    def test_killed_upload_is_interrupted(self, server: RunningServer, member: str) -> None:
        """A curl upload killed mid-transfer is ``upload.interrupted``, never received."""
        proc = subprocess.Popen(
            curl_command(server, "-T", "-", "URL/cut.bak"),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None
        for _ in range(40):
            proc.stdin.write(os.urandom(65536))
            proc.stdin.flush()
        # killed mid-transfer: once the server has written some of it to its staging file
        staging = server.instance.root / "data" / ".staging"
        wait_for(lambda: any(p.stat().st_size > 0 for p in staging.glob("*.part")))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdin.close()
        wait_for(lambda: server.instance.audit("upload.interrupted"))
        [record] = server.instance.audit("upload.interrupted")
        assert record["path"] == "/cut.bak"
        assert record["protocol"] == "ftps"
        assert not server.instance.audit("upload.complete")
        assert not area_file(server, "cut.bak").exists()
        assert [] == list(server.instance.root.glob("data/.staging/*.part"))


class TestLftp:
    def test_lftp_upload_list_download(
        self, server: RunningServer, member: str, tmp_path: Path
    ) -> None:
        """lftp with ssl-force and ssl-protect-data uploads (5 in a row) and downloads."""
        host, port = ftps_address(server)
        files = []
        for i in range(5):
            local = tmp_path / f"l{i}.bak"
            local.write_bytes(os.urandom(250_000 + i))
            files.append(local)
        puts = "; ".join(f"put {f} -o /{f.name}" for f in files)
        script = (
            "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-allow true;"
            f" set ssl:ca-file {cafile(server)}; set ssl:verify-certificate yes;"
            " set net:max-retries 1; set net:timeout 20;"
            f" open -u {MEMBER},'{PASSWORD}' -p {port} {host}; {puts};"
            f" get /l0.bak -o {tmp_path / 'back.bak'}; cls -1 /"
        )
        proc = subprocess.run(["lftp", "-c", script], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        for f in files:
            assert f.read_bytes() == area_file(server, f.name).read_bytes()
        assert files[0].read_bytes() == (tmp_path / "back.bak").read_bytes()
        assert sorted(f"/{f.name}" for f in files) == proc.stdout.split()
