"""Path tricks: every one stays inside the account's area, and is refused or clamped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.clients import Missing, Refused, SftpClient
from tests.conftest import PASSWORD, RunningServer


@pytest.fixture
def member(server: RunningServer) -> Iterator[SftpClient]:
    server.instance.add_account("mairie-a")
    server.instance.add_account("mairie-b")
    client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
    yield client
    client.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not for members")
    return folder


class TestTraversal:
    @pytest.mark.parametrize(
        "path",
        [
            "../mairie-b/x.bak",
            "/../../mairie-b/x.bak",
            "../../../etc/passwd",
            "/etc/passwd",
            "..//..//../data/members/mairie-b/x.bak",
        ],
    )
    def test_dot_dot_and_absolute_paths_stay_inside(
        self, server: RunningServer, member: SftpClient, path: str
    ) -> None:
        """``..`` is clamped at the area's root; absolute paths start at the area."""
        other = SftpClient(*server.sftp, "mairie-b", PASSWORD)
        other.upload("/x.bak", b"b's backup")
        other.close()
        with pytest.raises((Missing, Refused)):
            member.download(path)

    def test_upload_with_dot_dot_lands_inside(
        self, server: RunningServer, member: SftpClient
    ) -> None:
        member.upload("../../../escape.bak", b"inside")
        assert b"inside" == (server.instance.area("mairie-a") / "escape.bak").read_bytes()
        assert not (server.instance.root / "data" / "escape.bak").exists()

    def test_rename_out_of_the_area_is_clamped_inside(
        self, server: RunningServer, member: SftpClient
    ) -> None:
        """``../mairie-b/a.bak`` means ``/mairie-b/a.bak`` in the member's own area."""
        member.upload("/a.bak", b"a")
        with pytest.raises(Missing):
            member.rename("/a.bak", "../mairie-b/a.bak")
        member.mkdir("/mairie-b")
        member.rename("/a.bak", "../mairie-b/a.bak")
        assert not (server.instance.area("mairie-b") / "a.bak").exists()
        assert b"a" == (server.instance.area("mairie-a") / "mairie-b" / "a.bak").read_bytes()


class TestSymlinks:
    def test_planted_symlinks_are_invisible_and_unusable(
        self, server: RunningServer, member: SftpClient, outside: Path
    ) -> None:
        """A link planted in the area (to a folder or a file outside) is never followed."""
        area = server.instance.area("mairie-a")
        os.symlink(outside, area / "dir-link")
        os.symlink(outside / "secret.txt", area / "file-link")
        assert "dir-link" not in member.listdir("/")
        assert "file-link" not in member.listdir("/")
        with pytest.raises((Refused, Missing)):
            member.download("/file-link")
        with pytest.raises((Refused, Missing)):
            member.download("/dir-link/secret.txt")
        with pytest.raises((Refused, Missing)):
            member.upload("/dir-link/dropped.bak", b"x")
        with pytest.raises((Refused, Missing)):
            member.listdir("/dir-link")
        assert ["secret.txt"] == sorted(p.name for p in outside.iterdir())
        reasons = {r["reason"] for r in server.instance.audit("denied")}
        assert "symlink in path" in reasons

    def test_a_symlinked_area_is_refused(self, server: RunningServer, outside: Path) -> None:
        """Even the area itself replaced by a link leads nowhere."""
        server.instance.add_account("mairie-c")
        area = server.instance.area("mairie-c")
        area.mkdir(parents=True, exist_ok=True)
        area.rmdir()
        os.symlink(outside, area)
        client = SftpClient(*server.sftp, "mairie-c", PASSWORD)
        try:
            with pytest.raises((Refused, Missing)):
                client.listdir("/")
            with pytest.raises((Refused, Missing)):
                client.download("/secret.txt")
        finally:
            client.close()

    def test_clients_cannot_make_or_read_links(
        self, server: RunningServer, member: SftpClient
    ) -> None:
        member.upload("/a.bak", b"a")
        with pytest.raises(PermissionError):
            member.sftp.symlink("/etc/passwd", "/link")
        with pytest.raises(PermissionError):
            member.sftp.readlink("/a.bak")
        assert ["a.bak"] == member.listdir("/")
        operations = {r["operation"] for r in server.instance.audit("denied")}
        assert {"symlink", "readlink"} <= operations


class TestOddNames:
    @pytest.mark.parametrize("name", ["x" * 256, "new\nline.bak", "esc\x1b[31m.bak"])
    def test_unacceptable_names_are_refused(
        self, server: RunningServer, member: SftpClient, name: str
    ) -> None:
        with pytest.raises((Refused, OSError)):
            member.upload("/" + name, b"x")
        assert [] == member.listdir("/")
        assert server.instance.audit("denied")

    def test_a_path_too_long_is_refused(self, member: SftpClient) -> None:
        with pytest.raises((Refused, OSError)):
            member.upload("/" + "d/" * 2100 + "x.bak", b"x")

    @pytest.mark.parametrize(
        "name", ["Sauvegarde élections 2026.bak", "a\\b.bak", "-rf", ".hidden"]
    )
    def test_unusual_but_fine_names_work(
        self, server: RunningServer, member: SftpClient, name: str
    ) -> None:
        member.upload("/" + name, b"fine")
        assert b"fine" == (server.instance.area("mairie-a") / name).read_bytes()

    def test_audit_escapes_what_the_client_sent(
        self, server: RunningServer, member: SftpClient
    ) -> None:
        """A hostile name cannot forge an audit line: the log stays one JSON record a line."""
        with pytest.raises((Refused, OSError)):
            member.upload('/x.bak\n{"event": "login.ok", "account": "admin"}', b"x")
        lines = (server.instance.root / "log").glob("audit-*.jsonl")
        text = "".join(p.read_text() for p in lines)
        assert all(line.startswith('{"ts"') for line in text.splitlines())
        assert not any(r.get("account") == "admin" for r in server.instance.audit())


def test_paramiko_exceptions_do_not_kill_the_server(
    server: RunningServer, member: SftpClient
) -> None:
    """After all of the above, a fresh client is served normally."""
    with pytest.raises(IOError):
        member.sftp.open("/", "r").read()
    fresh = SftpClient(*server.sftp, "mairie-b", PASSWORD)
    fresh.upload("/ok.bak", b"ok")
    fresh.close()
    assert isinstance(member.sftp, paramiko.SFTPClient)
