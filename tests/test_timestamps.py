"""A client's "preserve timestamp": times are set, nothing else, and the catalog is not fooled.

WinSCP (on by default), FileZilla, rclone and ``sftp put -p`` set the file's times after
(or while) uploading it: SFTP SETSTAT by path, FSETSTAT on the open handle, FTPS
``MFMT`` and ``SITE UTIME``. The file's times change; the catalog's arrival time (the
retention clock) does not, and a rescan neither rehashes nor calls it altered.
Permission, owner and size changes stay refused.
"""

from __future__ import annotations

import ftplib
import io
import json
import os
import stat
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest

from tests.clients import FtpsClient, SftpClient
from tests.conftest import PASSWORD, RunningServer, TestInstance

Y2000 = 946684800  # 2000-01-01T00:00:00Z
Y2001 = 978307200  # 2001-01-01T00:00:00Z


def listed(instance: TestInstance) -> list[dict[str, Any]]:
    proc = instance.cli("catalog", "list", "--json", check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def entry(instance: TestInstance, path: str) -> dict[str, Any]:
    [found] = [e for e in listed(instance) if e["path"] == path]
    return found


def scan(instance: TestInstance) -> dict[str, Any]:
    proc = instance.cli("catalog", "scan", "--json", check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def time_changes(instance: TestInstance) -> list[dict[str, object]]:
    return instance.audit("attributes.changed")


@pytest.fixture
def sftp(server: RunningServer) -> Iterator[SftpClient]:
    server.instance.add_account("mairie-t")
    client = SftpClient(*server.sftp, "mairie-t", PASSWORD)
    yield client
    client.close()


class TestSftpSetstat:
    def test_winscp_sequence_filepart_rename_then_timestamp(
        self, server: RunningServer, sftp: SftpClient
    ) -> None:
        """WinSCP's default: upload name.filepart, rename, SETSTAT the times: all succeed,
        the file keeps its local date, the arrival time and state do not move."""
        data = os.urandom(300_000)
        sftp.sftp.putfo(io.BytesIO(data), "/paie.bak.filepart", confirm=False)
        sftp.sftp.rename("/paie.bak.filepart", "/paie.bak")
        before = entry(server.instance, "/paie.bak")
        sftp.sftp.utime("/paie.bak", (Y2001, Y2000))
        on_disk = (server.instance.area("mairie-t") / "paie.bak").stat()
        assert (Y2001, Y2000) == (int(on_disk.st_atime), int(on_disk.st_mtime))
        assert Y2000 == sftp.sftp.stat("/paie.bak").st_mtime
        after = entry(server.instance, "/paie.bak")
        assert before["received_at"] == after["received_at"]
        assert before["id"] == after["id"]
        assert data == sftp.download("/paie.bak")
        [change] = time_changes(server.instance)
        assert ("mairie-t", "/paie.bak", "sftp") == (
            change["account"],
            change["path"],
            change["protocol"],
        )
        assert "2000-01-01T00:00:00Z" == change["mtime"]

    def test_a_rescan_after_a_new_mtime_finds_nothing_altered_and_hashes_nothing(
        self, server: RunningServer, sftp: SftpClient
    ) -> None:
        """The cataloguer's baseline follows the times the server set: no rehash, no
        ``altered``, the entry stays ``received``."""
        sftp.upload("/compta.bak", b"compta" * 1000)
        sftp.sftp.utime("/compta.bak", (Y2000, Y2000))
        report = scan(server.instance)
        assert (0, 0) == (report["hashed"], report["altered"])
        assert "received" == entry(server.instance, "/compta.bak")["state"]
        assert [] == server.instance.audit("altered")

    def test_fsetstat_on_the_open_handle_applies_at_the_close(
        self, server: RunningServer, sftp: SftpClient
    ) -> None:
        """``sftp put -p`` sets the times on the handle before CLOSE: the received file has
        them, audited after ``upload.complete``."""
        with sftp.sftp.open("/rh.bak", "wb") as remote:
            remote.write(b"rh" * 5000)
            remote.utime((Y2000, Y2000))
        assert Y2000 == int((server.instance.area("mairie-t") / "rh.bak").stat().st_mtime)
        events = [
            r["event"]
            for r in server.instance.audit()
            if r["event"] in ("upload.complete", "attributes.changed")
        ]
        assert ["upload.complete", "attributes.changed"] == events
        report = scan(server.instance)
        assert (0, 0) == (report["hashed"], report["altered"])

    def test_times_with_permissions_set_the_times_and_ignore_the_permissions(
        self, server: RunningServer, sftp: SftpClient
    ) -> None:
        """A SETSTAT carrying both (``put -p``, WinSCP "set permissions"): times applied,
        the file stays read-only (0440), the audit record says what was ignored."""
        sftp.upload("/p.bak", b"p")
        attr = paramiko.SFTPAttributes()
        attr.st_mode = 0o100666
        attr.st_atime, attr.st_mtime = Y2000, Y2000
        attr._flags = attr.FLAG_PERMISSIONS | attr.FLAG_AMTIME  # type: ignore[attr-defined]
        sftp.sftp._request(paramiko.sftp.CMD_SETSTAT, "/p.bak", attr)  # type: ignore[attr-defined]
        st = (server.instance.area("mairie-t") / "p.bak").stat()
        assert (Y2000, 0o440) == (int(st.st_mtime), stat.S_IMODE(st.st_mode))
        [change] = time_changes(server.instance)
        assert "permissions" == change["ignored"]

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param(lambda s: s.chmod("/x.bak", 0o666), id="chmod"),
            pytest.param(lambda s: s.chown("/x.bak", 0, 0), id="chown"),
            pytest.param(lambda s: s.truncate("/x.bak", 0), id="truncate"),
        ],
    )
    def test_permission_owner_and_size_changes_stay_refused(
        self, server: RunningServer, sftp: SftpClient, change: Any
    ) -> None:
        """chmod, chown and truncate: permission denied with the member-facing text,
        audited ``denied``, the file untouched."""
        sftp.upload("/x.bak", b"keep me")
        with pytest.raises(PermissionError, match="seules la date"):
            change(sftp.sftp)
        st = (server.instance.area("mairie-t") / "x.bak").stat()
        assert (7, 0o440) == (st.st_size, stat.S_IMODE(st.st_mode))
        [denied] = server.instance.audit("denied")
        assert "setattr" == denied["operation"]
        assert [] == time_changes(server.instance)

    def test_a_technician_sets_times_in_the_outbox_but_not_in_a_member_area(
        self, server: RunningServer, sftp: SftpClient
    ) -> None:
        """The technician's own deposits may get their times; a member's backup may not."""
        sftp.upload("/m.bak", b"m")
        server.instance.add_account("tech-jean", role="technician")
        tech = SftpClient(*server.sftp, "tech-jean", PASSWORD)
        try:
            tech.upload("/outbox/v.bak", b"v")
            tech.sftp.utime("/outbox/v.bak", (Y2000, Y2000))
            with pytest.raises(PermissionError):
                tech.sftp.utime("/mairie-t/m.bak", (Y2000, Y2000))
        finally:
            tech.close()
        assert ["/outbox/v.bak"] == [r["path"] for r in time_changes(server.instance)]
        assert Y2000 != int((server.instance.area("mairie-t") / "m.bak").stat().st_mtime)


class TestFtpsTimes:
    @pytest.fixture
    def ftps(self, server: RunningServer) -> Iterator[FtpsClient]:
        server.instance.add_account("mairie-f")
        assert server.ftps is not None
        cafile = str(server.instance.root / "keys" / "tls.crt")
        client = FtpsClient(*server.ftps, "mairie-f", PASSWORD, cafile=cafile)
        yield client
        client.close()

    def test_mfmt_and_both_site_utime_forms(self, server: RunningServer, ftps: FtpsClient) -> None:
        """MFMT (FileZilla), ``SITE UTIME time path`` and the five-argument form all set the
        mtime (UTC); the arrival time does not move; FEAT advertises MFMT."""
        for name in ("a.bak", "b c.bak", "d.bak"):
            ftps.upload(f"/{name}", name.encode())
        before = entry(server.instance, "/a.bak")["received_at"]
        assert "MFMT" in ftps.ftp.sendcmd("FEAT")
        assert ftps.ftp.sendcmd("MFMT 20000101000000 /a.bak").startswith("213")
        assert ftps.ftp.sendcmd("SITE UTIME 20000101000000 /b c.bak").startswith("200")
        reply = ftps.ftp.sendcmd("SITE UTIME /d.bak 20010101000000 20000101000000 20000101 UTC")
        assert reply.startswith("200")
        area = server.instance.area("mairie-f")
        for name in ("a.bak", "b c.bak", "d.bak"):
            assert Y2000 == int((area / name).stat().st_mtime)
        assert Y2001 == int((area / "d.bak").stat().st_atime)
        assert before == entry(server.instance, "/a.bak")["received_at"]
        assert 3 == len(time_changes(server.instance))
        assert 0 == scan(server.instance)["altered"]

    def test_a_bad_time_or_a_missing_file_is_refused_in_french(
        self, server: RunningServer, ftps: FtpsClient
    ) -> None:
        """A malformed time is 501; a missing file is 550 with the shared not-found text."""
        with pytest.raises(ftplib.error_perm, match="501"):
            ftps.ftp.sendcmd("MFMT 2000 /a.bak")
        with pytest.raises(ftplib.error_perm, match="550 Introuvable"):
            ftps.ftp.sendcmd("MFMT 20000101000000 /absent.bak")
