"""What one logged-in member can cost the server (issue 11, items 1-4 and 8).

Each test plays the attacker through a real client (paramiko's SFTP packet layer driven by
hand, OpenSSH's sftp, ftplib over FTPS) against the real server, then checks the refusal,
the audit record, and that the server keeps serving another member.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest
from paramiko.sftp import CMD_DATA, CMD_EXTENDED_REPLY, CMD_HANDLE, SFTP_FAILURE, SFTP_OK

from intake.core import messages
from intake.core.config import load
from intake.core.errors import ConfigError
from intake.core.messages import Say
from intake.frontends.sftp.files import MAX_MESSAGE
from intake.services.files import MAX_READ
from tests.attacks import RawSftp
from tests.clients import Client, SftpClient
from tests.conftest import PASSWORD, RunningServer, TestInstance, connect, running, wait_for
from tests.test_sftp_openssh import ssh_options

MIB = 1024 * 1024


def configure(instance: TestInstance, limits: str = "") -> None:
    instance.config_file.write_text(
        '[sftp]\nlisten = "127.0.0.1:0"\nlogin_timeout = 10\n'
        '[ftps]\nlisten = "127.0.0.1:0"\n'
        f"[limits]\nmax_login_failures = 50\n{limits}\n"
    )


def members(instance: TestInstance) -> None:
    instance.add_account("mairie-a")
    instance.add_account("mairie-b")


def still_serving(server: RunningServer) -> None:
    """Another member logs in and uploads over both protocols."""
    for protocol in ("sftp", "ftps"):
        other = connect(server, protocol, "mairie-b")
        other.upload(f"/fine-{protocol}.bak", b"fine")
        other.close()


def upload_checked(client: Client, path: str, data: bytes) -> None:
    """Upload and let any refusal raise (paramiko's ``putfo`` ignores a failed CLOSE and
    pipelined WRITE errors; its ``confirm`` stat reports the missing file)."""
    if isinstance(client, SftpClient):
        client.sftp.putfo(io.BytesIO(data), path, confirm=True)
    else:
        client.upload(path, data)


def staging_is_empty(instance: TestInstance) -> bool:
    return not list((instance.root / "data" / ".staging").iterdir())


class TestOpenHandles:
    def test_a_session_cannot_hold_more_than_max_open_handles(self, instance: TestInstance) -> None:
        """200 pipelined OPENs: 8 handles, the rest refused naming the limit, one denied."""
        configure(instance, "max_open_handles = 8")
        members(instance)
        (instance.area("mairie-a")).mkdir(parents=True)
        (instance.area("mairie-a") / "file.bak").write_bytes(b"x" * 1000)
        with running(instance) as server:
            raw = RawSftp(*server.sftp, "mairie-a", PASSWORD)
            for _ in range(200):
                raw.open_read("/file.bak")
            replies = [raw.reply() for _ in range(200)]
            handles = [raw.handle(r) for r in replies if r.kind == CMD_HANDLE]
            refusals = [r.status() for r in replies if r.kind != CMD_HANDLE]
            assert 8 == len(handles)
            assert {SFTP_FAILURE} == {code for code, _ in refusals}
            assert messages.text(Say.TOO_MANY_FILES) == refusals[0][1]  # the member's words
            denied = [r for r in instance.audit("denied") if r["account"] == "mairie-a"]
            assert 1 == len(denied)
            assert "max_open_handles 8" in str(denied[0]["reason"])  # the limit, for the audit
            raw.send(11, "/")  # OPENDIR counts too
            assert SFTP_FAILURE == raw.reply().status()[0]
            raw.close_handle(handles[0])
            assert SFTP_OK == raw.reply().status()[0]
            raw.open_read("/file.bak")
            assert CMD_HANDLE == raw.reply().kind
            still_serving(server)
            raw.close()
        assert [] == instance.audit("download")  # opened, never read: no download

    def test_an_account_cannot_spread_its_open_files_over_sessions(
        self, instance: TestInstance
    ) -> None:
        """max_account_open_files bounds an account over all its sessions together."""
        configure(instance, "max_account_open_files = 5")
        members(instance)
        instance.area("mairie-a").mkdir(parents=True)
        (instance.area("mairie-a") / "file.bak").write_bytes(b"x")
        with running(instance) as server:
            first = RawSftp(*server.sftp, "mairie-a", PASSWORD)
            second = RawSftp(*server.sftp, "mairie-a", PASSWORD)
            for _ in range(4):
                first.open_read("/file.bak")
            assert all(first.reply().kind == CMD_HANDLE for _ in range(4))
            for _ in range(4):
                second.open_read("/file.bak")
            kinds = [second.reply().kind for _ in range(4)]
            assert 1 == kinds.count(CMD_HANDLE)
            first.close()
            wait_for(lambda: _reopens(second))
            still_serving(server)
            second.close()

    def test_a_download_is_recorded_once_and_only_when_read(self, server: RunningServer) -> None:
        """Open+close writes nothing; open+read+close writes one download record."""
        server.instance.add_account("mairie-a")
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        client.upload("/a.bak", b"a" * 5000)
        client.sftp.open("/a.bak", "rb").close()
        assert b"a" * 5000 == client.download("/a.bak")
        client.close()
        [record] = wait_for(lambda: server.instance.audit("download"))
        assert 5000 == record["bytes"]


def _reopens(raw: RawSftp) -> bool:
    raw.open_read("/file.bak")
    return raw.reply().kind == CMD_HANDLE


class TestReadLength:
    def test_a_huge_read_gets_at_most_openssh_s_maximum(self, server: RunningServer) -> None:
        """A 64 MiB READ is answered with MAX_READ (255 KiB) bytes, like OpenSSH's server."""
        inst = server.instance
        inst.add_account("mairie-a")
        inst.add_account("mairie-b")
        inst.area("mairie-a").mkdir(parents=True, exist_ok=True)
        (inst.area("mairie-a") / "big.bak").write_bytes(os.urandom(2 * MIB))
        raw = RawSftp(*server.sftp, "mairie-a", PASSWORD)
        raw.open_read("/big.bak")
        handle = raw.handle(raw.reply())
        raw.read(handle, 0, 64 * MIB)
        reply = raw.reply()
        assert CMD_DATA == reply.kind
        assert 261120 == MAX_READ == len(raw.data(reply))
        raw.close()
        still_serving(server)

    def test_the_limits_extension_tells_the_client(self, server: RunningServer) -> None:
        """limits@openssh.com answers max packet, read, write lengths and open handles."""
        server.instance.add_account("mairie-a")
        raw = RawSftp(*server.sftp, "mairie-a", PASSWORD)
        raw.extended("limits@openssh.com")
        reply = raw.reply()
        assert CMD_EXTENDED_REPLY == reply.kind
        limits = [reply.msg.get_int64() for _ in range(4)]
        assert [MAX_MESSAGE, MAX_READ, MAX_MESSAGE - 1024, 64] == limits
        raw.close()

    def test_openssh_sftp_sizes_its_requests_from_the_extension(
        self, server: RunningServer, tmp_path: Path
    ) -> None:
        """OpenSSH's sftp reads the limits (debug3 line) and its upload and download work."""
        server.instance.add_account("mairie-cerilly", key=True)
        local = tmp_path / "local.bak"
        local.write_bytes(os.urandom(3 * MIB))
        host, port = server.sftp
        batch = tmp_path / "batch"
        batch.write_text(f"put {local} /up.bak\nget /up.bak {tmp_path / 'back.bak'}\n")
        proc = subprocess.run(
            [
                "sftp",
                "-vvv",
                "-b",
                str(batch),
                "-P",
                str(port),
                *ssh_options(server, "mairie-cerilly"),
                f"mairie-cerilly@{host}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert 0 == proc.returncode, proc.stderr[-2000:]
        assert "261120 / 261120" in proc.stderr
        assert local.read_bytes() == (tmp_path / "back.bak").read_bytes()

    def test_an_oversized_sftp_message_ends_the_session(self, server: RunningServer) -> None:
        """A 1 MiB WRITE message (over 256 KiB) ends the session; nothing is kept."""
        inst = server.instance
        inst.add_account("mairie-a")
        inst.add_account("mairie-b")
        raw = RawSftp(*server.sftp, "mairie-a", PASSWORD)
        raw.open_write("/big-message.bak")
        handle = raw.handle(raw.reply())
        with pytest.raises((EOFError, OSError)):  # the server closes the SFTP channel,
            raw.write(handle, 0, b"w" * MIB)  # perhaps before the message is all sent
            raw.reply()
        wait_for(lambda: inst.audit("upload.interrupted"))
        assert not (inst.area("mairie-a") / "big-message.bak").exists()
        still_serving(server)


class TestPacketSize:
    def test_an_oversized_ssh_packet_after_login_ends_the_connection(
        self, server: RunningServer
    ) -> None:
        """A 4 MiB SSH_MSG_IGNORE after login is refused before its body is read."""
        inst = server.instance
        inst.add_account("mairie-a")
        inst.add_account("mairie-b")
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        with contextlib.suppress(EOFError, OSError):  # cut while it still sends
            client.transport.send_ignore(4 * MIB)
        wait_for(lambda: not client.transport.is_active(), timeout=20)
        client.close()
        still_serving(server)

    def test_packets_up_to_the_limit_pass(self, server: RunningServer) -> None:
        """An IGNORE of 200 KiB (under OpenSSH's 256 KiB) leaves the session working."""
        server.instance.add_account("mairie-a")
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        client.transport.send_ignore(200 * 1024)
        client.upload("/after.bak", b"ok")
        assert ["after.bak"] == client.listdir("/")
        client.close()


class TestUploadLimits:
    def test_a_write_far_past_the_end_is_refused(self, server: RunningServer) -> None:
        """1 byte at 8 GiB: refused naming the cause, nothing kept, denied + interrupted."""
        inst = server.instance
        inst.add_account("mairie-a")
        inst.add_account("mairie-b")
        raw = RawSftp(*server.sftp, "mairie-a", PASSWORD)
        raw.open_write("/sparse.bak")
        handle = raw.handle(raw.reply())
        raw.write(handle, 0, b"head")
        assert SFTP_OK == raw.reply().status()[0]
        raw.write(handle, 8 * 1024 * MIB, b"x")
        code, text = raw.reply().status()
        assert SFTP_FAILURE == code
        assert "sparse write refused" in text
        raw.close_handle(handle)
        assert SFTP_FAILURE == raw.reply().status()[0]
        raw.close()
        [denied] = [r for r in inst.audit("denied") if r.get("path") == "/sparse.bak"]
        assert "sparse" in str(denied["reason"])
        assert 1 == len(inst.audit("upload.interrupted"))
        assert [] == inst.audit("upload.complete")
        assert not (inst.area("mairie-a") / "sparse.bak").exists()
        assert staging_is_empty(inst)
        still_serving(server)

    def test_out_of_order_writes_within_the_window_are_received(
        self, server: RunningServer
    ) -> None:
        """Pipelined writes that arrive out of order (within a few MiB) make a whole file."""
        inst = server.instance
        inst.add_account("mairie-a")
        raw = RawSftp(*server.sftp, "mairie-a", PASSWORD)
        raw.open_write("/ooo.bak")
        handle = raw.handle(raw.reply())
        block = 32 * 1024
        for index in (3, 1, 0, 2):
            raw.write(handle, index * block, bytes([index]) * block)
            assert SFTP_OK == raw.reply().status()[0]
        raw.close_handle(handle)
        assert SFTP_OK == raw.reply().status()[0]
        raw.close()
        expected = b"".join(bytes([i]) * block for i in range(4))
        assert expected == (inst.area("mairie-a") / "ooo.bak").read_bytes()

    @pytest.mark.parametrize("protocol", ["sftp", "ftps"])
    def test_max_file_size(self, instance: TestInstance, protocol: str) -> None:
        """A file over max_file_size is refused while it arrives; nothing is kept."""
        configure(instance, 'max_file_size = "1 MiB"')
        members(instance)
        with running(instance) as server:
            client = connect(server, protocol, "mairie-a")
            client.upload("/small.bak", b"s" * MIB)
            with pytest.raises((OSError, ftplib.Error, EOFError)):
                upload_checked(client, "/big.bak", b"b" * (2 * MIB))
            client.close()
            records = [r for r in instance.audit("denied") if r.get("path") == "/big.bak"]
            assert records and "max_file_size" in str(records[0]["reason"])
            assert not (instance.area("mairie-a") / "big.bak").exists()
            assert (instance.area("mairie-a") / "small.bak").exists()
            wait_for(lambda: staging_is_empty(instance))
            still_serving(server)

    @pytest.mark.parametrize("protocol", ["sftp", "ftps"])
    def test_account_quota(self, instance: TestInstance, protocol: str) -> None:
        """The quota counts received files and bytes arriving; past it the upload is cut."""
        configure(instance, 'account_quota = "1 MiB"')
        members(instance)
        with running(instance) as server:
            client = connect(server, protocol, "mairie-a")
            client.upload("/first.bak", b"1" * (600 * 1024))
            with pytest.raises((OSError, ftplib.Error, EOFError)):
                upload_checked(client, "/second.bak", b"2" * (600 * 1024))
            client.close()
            records = [r for r in instance.audit("denied") if r.get("path") == "/second.bak"]
            assert records and "quota" in str(records[0]["reason"])
            assert not (instance.area("mairie-a") / "second.bak").exists()
            still_serving(server)  # mairie-b has its own quota


class TestSpecialFiles:
    def test_a_planted_fifo_is_refused_not_waited_on(self, server: RunningServer) -> None:
        """A FIFO in an area: OPEN answers at once (refused, audited), over both protocols."""
        inst = server.instance
        inst.add_account("mairie-a")
        inst.add_account("mairie-b")
        inst.area("mairie-a").mkdir(parents=True, exist_ok=True)
        os.mkfifo(inst.area("mairie-a") / "trap.bak")
        raw = RawSftp(*server.sftp, "mairie-a", PASSWORD)
        raw.client.sftp.sock.settimeout(10)
        raw.open_read("/trap.bak")
        reply = raw.reply()  # a timeout here is the bug: the thread is stuck in open()
        assert CMD_HANDLE != reply.kind
        raw.close()
        ftps = connect(server, "ftps", "mairie-a")
        answer: list[BaseException | bytes] = []

        def retrieve() -> None:
            try:
                answer.append(ftps.download("/trap.bak"))  # type: ignore[attr-defined]
            except Exception as exc:
                answer.append(exc)

        worker = threading.Thread(target=retrieve, daemon=True)
        worker.start()
        worker.join(15)
        assert answer and isinstance(answer[0], Exception)
        ftps.close()
        refusals = [r for r in inst.audit("denied") if r.get("path") == "/trap.bak"]
        assert {"sftp", "ftps"} <= {r.get("protocol") for r in refusals}
        assert all("regular" in str(r["reason"]) for r in refusals)
        still_serving(server)

    def test_the_cataloguer_refuses_a_fifo(self, instance: TestInstance) -> None:
        """catalog scan does not open a FIFO or a device: it audits it and finishes."""
        instance.add_account("mairie-a")
        instance.area("mairie-a").mkdir(parents=True)
        os.mkfifo(instance.area("mairie-a") / "trap.bak")
        (instance.area("mairie-a") / "real.bak").write_bytes(b"r")
        scan = instance.cli("catalog", "scan")
        assert 0 == scan.returncode, scan.stderr
        listed = instance.cli("catalog", "list", "--json").stdout
        assert "real.bak" in listed and "trap.bak" not in listed
        refusals = [r for r in instance.audit("denied") if r.get("path") == "/trap.bak"]
        assert 1 == len(refusals)


class TestAccountLimitOverFtps:
    def test_an_open_sftp_file_counts_against_ftps_downloads(self, instance: TestInstance) -> None:
        """max_account_open_files spans protocols: FTPS RETR is refused (the member reads
        "too many open files", the audit names the limit)."""
        configure(instance, "max_account_open_files = 1")
        members(instance)
        instance.area("mairie-a").mkdir(parents=True)
        (instance.area("mairie-a") / "file.bak").write_bytes(b"x")
        with running(instance) as server:
            raw = RawSftp(*server.sftp, "mairie-a", PASSWORD)
            raw.open_read("/file.bak")
            handle = raw.handle(raw.reply())
            ftps = connect(server, "ftps", "mairie-a")
            with pytest.raises(
                ftplib.error_perm, match=re.escape(messages.text(Say.TOO_MANY_FILES))
            ):
                ftps.ftp.retrbinary("RETR /file.bak", lambda _: None)  # type: ignore[attr-defined]
            denied = [r for r in instance.audit("denied") if r.get("account") == "mairie-a"]
            assert "max_account_open_files" in str(denied[-1]["reason"])
            raw.close_handle(handle)
            assert SFTP_OK == raw.reply().status()[0]
            assert b"x" == ftps.download("/file.bak")
            ftps.close()
            raw.close()


class TestLimitsConfig:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('max_file_size = "64 GiB"', 64 * 1024 * MIB),
            ("max_file_size = 1000", 1000),
            ('account_quota = "500 MiB"', 500 * MIB),
            ('account_quota = ""', 0),
        ],
    )
    def test_sizes(self, tmp_path: Path, text: str, expected: int) -> None:
        """Sizes are bytes or "N KiB|MiB|GiB|TiB"; an empty quota is off."""
        conf = tmp_path / "intake.toml"
        conf.write_text(f"[limits]\n{text}\n")
        limits = load(conf).limits
        assert expected == getattr(limits, text.split()[0])

    @pytest.mark.parametrize(
        "text", ['max_file_size = "lots"', 'max_file_size = ""', "max_open_handles = 0"]
    )
    def test_bad_sizes_name_the_key(self, tmp_path: Path, text: str) -> None:
        """A wrong value is a ConfigError naming limits.<key>."""
        conf = tmp_path / "intake.toml"
        conf.write_text(f"[limits]\n{text}\n")
        with pytest.raises(ConfigError, match=f"limits.{text.split()[0]}"):
            load(conf)
