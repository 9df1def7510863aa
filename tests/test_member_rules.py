"""The member rules, one contract for every protocol (parametrized by ``protocol``).

Each refusal is checked twice: the client sees "permission denied", and the audit log
has a ``denied`` record saying what was tried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest

from tests.clients import Client, Missing, Refused
from tests.conftest import RunningServer, connect

PROTOCOLS = ["sftp", "ftps"]


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def member(server: RunningServer, protocol: str) -> Iterator[Client]:
    server.instance.add_account("mairie-cerilly")
    client = connect(server, protocol, "mairie-cerilly")
    yield client
    client.close()


def denied(server: RunningServer, operation: str) -> list[dict[str, object]]:
    return [r for r in server.instance.audit("denied") if r.get("operation") == operation]


class TestWhatAMemberMayDo:
    def test_upload_lands_whole_in_its_own_area(
        self, server: RunningServer, member: Client, protocol: str
    ) -> None:
        """An uploaded backup is in the member's area, byte for byte, audited with its hash."""
        data = bytes(range(256)) * 4096
        member.upload("/compta-2026.bak", data)
        assert data == (server.instance.area("mairie-cerilly") / "compta-2026.bak").read_bytes()
        [record] = server.instance.audit("upload.complete")
        assert record["path"] == "/compta-2026.bak"
        assert record["size"] == len(data)
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["protocol"] == protocol
        assert record["account"] == "mairie-cerilly"

    def test_list_and_download_what_it_sent(self, server: RunningServer, member: Client) -> None:
        """A member lists and downloads its own files; both are audited."""
        member.upload("/a.bak", b"first backup")
        assert ["a.bak"] == member.listdir("/")
        assert b"first backup" == member.download("/a.bak")
        assert server.instance.audit("list")
        [download] = server.instance.audit("download")
        assert download["path"] == "/a.bak"

    def test_make_folders_and_upload_into_them(self, server: RunningServer, member: Client) -> None:
        """Folders can be made, and files uploaded inside them."""
        member.mkdir("/2026")
        member.mkdir("/2026/novembre")
        member.upload("/2026/novembre/paie.bak", b"x" * 1000)
        assert ["paie.bak"] == member.listdir("/2026/novembre")
        made = [r["path"] for r in server.instance.audit("mkdir")]
        assert ["/2026", "/2026/novembre"] == made

    def test_rename_to_a_new_name(self, server: RunningServer, member: Client) -> None:
        """WinSCP uploads to a temporary name then renames it: allowed when the name is new."""
        member.upload("/paie.bak.filepart", b"payload")
        member.rename("/paie.bak.filepart", "/paie.bak")
        assert ["paie.bak"] == member.listdir("/")

    def test_empty_file_is_a_file(self, server: RunningServer, member: Client) -> None:
        """A zero-byte upload is received as a zero-byte file."""
        member.upload("/empty.bak", b"")
        assert b"" == member.download("/empty.bak")


class TestWhatAMemberMayNotDo:
    def test_delete_is_refused(self, server: RunningServer, member: Client) -> None:
        """A received backup cannot be deleted, and the attempt is audited."""
        member.upload("/keep.bak", b"keep me")
        with pytest.raises(Refused):
            member.delete("/keep.bak")
        assert b"keep me" == member.download("/keep.bak")
        [record] = denied(server, "delete")
        assert record["path"] == "/keep.bak"

    def test_overwrite_is_refused(self, server: RunningServer, member: Client) -> None:
        """Uploading onto an existing name is refused; the first content stays."""
        member.upload("/keep.bak", b"original")
        with pytest.raises(Refused):
            member.upload("/keep.bak", b"replacement")
        assert b"original" == member.download("/keep.bak")
        assert denied(server, "upload")

    def test_rename_onto_an_existing_name_is_refused(
        self, server: RunningServer, member: Client
    ) -> None:
        """A rename never replaces a file."""
        member.upload("/a.bak", b"a")
        member.upload("/b.bak", b"b")
        with pytest.raises(Refused):
            member.rename("/a.bak", "/b.bak")
        assert b"b" == member.download("/b.bak")
        assert b"a" == member.download("/a.bak")
        assert denied(server, "rename")

    def test_chmod_is_refused(self, server: RunningServer, member: Client) -> None:
        """Attribute changes are refused and audited."""
        member.upload("/a.bak", b"a")
        with pytest.raises(Refused):
            member.chmod("/a.bak", 0o777)
        assert denied(server, "setattr")

    def test_rmdir_is_refused(self, server: RunningServer, member: Client) -> None:
        """Folders cannot be removed either."""
        member.mkdir("/d")
        with pytest.raises(Refused):
            member.rmdir("/d")
        assert ["d"] == member.listdir("/")

    def test_cannot_see_another_member(
        self, server: RunningServer, member: Client, protocol: str
    ) -> None:
        """Another member's files are out of reach by every path."""
        server.instance.add_account("other-commune")
        other = connect(server, protocol, "other-commune")
        try:
            other.upload("/secret.bak", b"other's data")
        finally:
            other.close()
        assert [] == member.listdir("/")
        for path in (
            "/../other-commune/secret.bak",
            "/other-commune/secret.bak",
            "../../members/other-commune/secret.bak",
        ):
            with pytest.raises((Missing, Refused)):
                member.download(path)


@pytest.fixture
def clients(server: RunningServer, protocol: str) -> Callable[[str, str], Client]:
    opened: list[Client] = []

    def make(name: str, role: str) -> Client:
        server.instance.add_account(name, role)
        client = connect(server, protocol, name)
        opened.append(client)
        return client

    yield make  # type: ignore[misc]
    for client in opened:
        client.close()


class TestOtherRoles:
    def test_technician_reads_members_and_writes_only_the_outbox(
        self, server: RunningServer, clients: Callable[[str, str], Client]
    ) -> None:
        """A technician sees every member area read-only and deposits into /outbox/."""
        member = clients("mairie-a", "member")
        member.upload("/sauvegarde.bak", b"member data")
        tech = clients("tech-jean", "technician")
        assert {"mairie-a", "outbox"} <= set(tech.listdir("/"))
        assert b"member data" == tech.download("/mairie-a/sauvegarde.bak")
        with pytest.raises(Refused):
            tech.upload("/mairie-a/intrus.bak", b"no")
        with pytest.raises(Refused):
            tech.delete("/mairie-a/sauvegarde.bak")
        tech.upload("/outbox/pour-editeur.bak", b"to vendor")
        assert ["pour-editeur.bak"] == tech.listdir("/outbox")
        assert (
            server.instance.root / "data" / "outbox" / "tech-jean" / "pour-editeur.bak"
        ).exists()

    def test_auditor_reads_the_audit_log_only(
        self, server: RunningServer, clients: Callable[[str, str], Client]
    ) -> None:
        """An auditor sees /audit/ (the log files) and no backup."""
        member = clients("mairie-b", "member")
        member.upload("/b.bak", b"secret backup")
        auditor = clients("dpo", "auditor")
        assert ["audit"] == auditor.listdir("/")
        files = auditor.listdir("/audit")
        logs = [f for f in files if f.endswith(".jsonl")]
        assert logs and set(files) <= {*logs, "audit-head.json", "reports"}
        assert all(f.startswith("audit-") for f in logs)
        assert b"upload.complete" in auditor.download(f"/audit/{logs[-1]}")
        with pytest.raises((Missing, Refused)):
            auditor.download("/audit/.audit.lock")
        with pytest.raises((Missing, Refused)):
            auditor.download("/mairie-b/b.bak")
        with pytest.raises(Refused):
            auditor.upload("/audit/forged.jsonl", b"{}")
