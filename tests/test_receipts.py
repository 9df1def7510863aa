"""Receipts: a member's read-only ``/.receipts/``, over SFTP (paramiko, OpenSSH sftp) and FTPS
(ftplib with TLS session reuse, curl); each receipt verified offline."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature

from tests.clients import Client, Missing, Refused
from tests.conftest import RunningServer, TestInstance, connect
from tests.signed_documents import plain_verify
from tests.test_ftps import curl_command
from tests.test_sftp_openssh import sftp_batch

MEMBER = "mairie-cerilly"
DATA = b"pg_dump of 2 December" * 100


def public_pem(instance: TestInstance) -> bytes:
    """The audit public key as ``intake keys export-audit-public`` hands it out."""
    return instance.cli("keys", "export-audit-public", "-", check=True).stdout.encode()


@pytest.fixture(params=["sftp", "ftps"])
def member(request: pytest.FixtureRequest, server: RunningServer) -> Iterator[Client]:
    server.instance.add_account(MEMBER)
    client = connect(server, request.param, MEMBER)
    yield client
    client.close()


class TestReceipts:
    def test_receipt_after_upload_verifies_offline(
        self, server: RunningServer, member: Client, tmp_path: Path
    ) -> None:
        """After an upload, ``/.receipts/2026/base.zip.receipt.json`` states what was received;
        it verifies with plain cryptography and with ``intake audit verify-document``."""
        member.mkdir("/2026")
        member.upload("/2026/base.zip", DATA)
        assert ["2026"] == member.listdir("/.receipts")
        assert ["base.zip.receipt.json"] == member.listdir("/.receipts/2026")
        raw = member.download("/.receipts/2026/base.zip.receipt.json")
        doc = json.loads(raw)
        [upload] = server.instance.audit("upload.complete")
        assert {
            "format": "intake-signed-document/1",
            "kind": "receipt",
            "account": MEMBER,
            "path": "/2026/base.zip",
            "size": len(DATA),
            "sha256": hashlib.sha256(DATA).hexdigest(),
            "protocol": upload["protocol"],
        }.items() <= doc.items()
        [entry] = json.loads(server.instance.cli("catalog", "list", "--json", check=True).stdout)
        assert (entry["id"], entry["received_at"]) == (doc["entry"], doc["received_at"])
        pem = public_pem(server.instance)
        plain_verify(doc, pem)
        assert raw == member.download("/.receipts/2026/base.zip.receipt.json")  # same bytes
        (tmp_path / "audit.pub").write_bytes(pem)
        (tmp_path / "r.json").write_bytes(raw)
        check = server.instance.cli(
            "audit", "verify-document", str(tmp_path / "r.json"), "--public-key",
            str(tmp_path / "audit.pub"),
        )  # fmt: skip
        assert 0 == check.returncode, check.stderr
        assert "VALID receipt" in check.stdout and "/2026/base.zip" in check.stdout

    def test_tampered_receipt_fails(
        self, server: RunningServer, member: Client, tmp_path: Path
    ) -> None:
        """A receipt whose size was changed is refused by the CLI and by plain cryptography."""
        member.upload("/a.bak", DATA)
        doc = json.loads(member.download("/.receipts/a.bak.receipt.json"))
        doc["size"] += 1
        with pytest.raises(InvalidSignature):
            plain_verify(doc, public_pem(server.instance))
        (tmp_path / "audit.pub").write_bytes(public_pem(server.instance))
        (tmp_path / "r.json").write_text(json.dumps(doc))
        check = server.instance.cli(
            "audit", "verify-document", str(tmp_path / "r.json"), "--public-key",
            str(tmp_path / "audit.pub"),
        )  # fmt: skip
        assert 1 == check.returncode

    def test_edits_python_would_not_see_fail(
        self, server: RunningServer, member: Client, tmp_path: Path
    ) -> None:
        """Issue 15 finding 4: a downloaded receipt edited to ``"path": "/FORGED.zip",
        "path": "/2026/base.zip"`` (Python keeps the last value, a checker keeping the first
        shows the forged path), or given a second signature, or a member inside its
        signature: not valid."""
        member.mkdir("/2026")
        member.upload("/2026/base.zip", DATA)
        raw = member.download("/.receipts/2026/base.zip.receipt.json").decode()
        (tmp_path / "audit.pub").write_bytes(public_pem(server.instance))
        edits = [
            ('"path": "/2026/base.zip"', '"path": "/FORGED.zip", "path": "/2026/base.zip"'),
            ('"signature": {', '"signature": {"algorithm": "ed25519"}, "signature": {'),
            ('"algorithm": "ed25519"', '"algorithm": "ed25519", "note": "x"'),
        ]
        for old, new in edits:
            assert old in raw
            (tmp_path / "r.json").write_text(raw.replace(old, new, 1))
            check = server.instance.cli(
                "audit", "verify-document", str(tmp_path / "r.json"), "--public-key",
                str(tmp_path / "audit.pub"),
            )  # fmt: skip
            assert 1 == check.returncode, (new, check.stdout)
            assert "NOT VALID" in check.stderr

    def test_receipts_are_read_only_and_audited(
        self, server: RunningServer, member: Client
    ) -> None:
        """Upload, mkdir, rename, delete inside ``/.receipts/`` (or into it) are refused and
        audited ``denied``; the receipt is still there afterwards."""
        member.upload("/a.bak", DATA)
        receipt = "/.receipts/a.bak.receipt.json"
        attempts = [
            lambda: member.upload("/.receipts/forged.receipt.json", b"{}"),
            lambda: member.upload(receipt, b"{}"),
            lambda: member.mkdir("/.receipts/d"),
            lambda: member.delete(receipt),
            lambda: member.rename(receipt, "/.receipts/b.receipt.json"),
            lambda: member.rename(receipt, "/stolen.json"),
            lambda: member.rename("/a.bak", "/.receipts/a.bak"),
            lambda: member.rmdir("/.receipts"),
        ]
        for attempt in attempts:
            with pytest.raises(Refused):
                attempt()
        denied = server.instance.audit("denied")
        assert sum("/.receipts" in str(r.get("path")) for r in denied) >= len(attempts)
        assert {"upload", "mkdir", "delete", "rename", "rmdir"} <= {
            str(r["operation"]) for r in denied
        }
        assert ["a.bak.receipt.json"] == member.listdir("/.receipts")
        assert ["a.bak"] == member.listdir("/")  # not listed in /, never a file on disk
        assert not (server.instance.area(MEMBER) / ".receipts").exists()

    def test_never_catalogued(self, server: RunningServer, member: Client) -> None:
        """Reading receipts adds nothing to the catalog: one upload, one entry."""
        member.upload("/a.bak", DATA)
        member.download("/.receipts/a.bak.receipt.json")
        listed = json.loads(server.instance.cli("catalog", "list", "--json", check=True).stdout)
        assert ["/a.bak"] == [e["path"] for e in listed]

    def test_rename_moves_the_receipt(self, server: RunningServer, member: Client) -> None:
        """WinSCP's upload-then-rename: the receipt follows the file to its new name, same
        entry, same content facts, the new path."""
        member.upload("/paie.bak.filepart", DATA)
        before = json.loads(member.download("/.receipts/paie.bak.filepart.receipt.json"))
        member.rename("/paie.bak.filepart", "/paie.bak")
        assert ["paie.bak.receipt.json"] == member.listdir("/.receipts")
        after = json.loads(member.download("/.receipts/paie.bak.receipt.json"))
        assert "/paie.bak" == after["path"]
        same = ("entry", "size", "sha256", "received_at")
        assert [before[k] for k in same] == [after[k] for k in same]
        plain_verify(before, public_pem(server.instance))  # the older one stays valid
        with pytest.raises(Missing):
            member.download("/.receipts/paie.bak.filepart.receipt.json")


class TestIsolation:
    def test_member_never_sees_another_members_receipts(self, server: RunningServer) -> None:
        """Member B's ``/.receipts/`` holds only its own; A's paths do not exist for B."""
        inst = server.instance
        inst.add_account("mairie-a")
        inst.add_account("mairie-b")
        for protocol in ("sftp", "ftps"):
            a = connect(server, protocol, "mairie-a")
            b = connect(server, protocol, "mairie-b")
            try:
                a.upload(f"/secret-{protocol}.bak", DATA)
                b.upload(f"/mine-{protocol}.bak", b"b")
                assert [f"mine-{protocol}.bak.receipt.json"] == [
                    n for n in b.listdir("/.receipts") if protocol in n
                ]
                for path in (
                    f"/.receipts/secret-{protocol}.bak.receipt.json",
                    f"/.receipts/../../mairie-a/.receipts/secret-{protocol}.bak.receipt.json",
                ):
                    with pytest.raises((Missing, Refused)):
                        b.download(path)
            finally:
                a.close()
                b.close()

    def test_technician_and_auditor_have_none(self, server: RunningServer) -> None:
        """Receipts are the member's: a technician sees no ``.receipts`` in a member area."""
        inst = server.instance
        inst.add_account("mairie-a")
        inst.add_account("tech", role="technician")
        a = connect(server, "sftp", "mairie-a")
        a.upload("/a.bak", DATA)
        a.close()
        tech = connect(server, "sftp", "tech")
        try:
            assert ["a.bak"] == tech.listdir("/mairie-a")
            with pytest.raises(Missing):
                tech.listdir("/mairie-a/.receipts")
        finally:
            tech.close()


class TestOtherClients:
    def test_openssh_sftp_gets_a_receipt(self, server: RunningServer, tmp_path: Path) -> None:
        """OpenSSH ``sftp`` lists ``/.receipts`` and fetches a receipt that verifies."""
        server.instance.add_account(MEMBER, key=True)
        local = tmp_path / "data.bak"
        local.write_bytes(DATA)
        out = tmp_path / "receipt.json"
        done = sftp_batch(
            server,
            MEMBER,
            f"put {local} /data.bak\nls -1 /.receipts\nget /.receipts/data.bak.receipt.json {out}\n"
            "-put /etc/hostname /.receipts/x.receipt.json\n",
            tmp_path,
        )
        assert 0 == done.returncode, done.stderr
        assert "data.bak.receipt.json" in done.stdout
        doc = json.loads(out.read_text())
        assert ("/data.bak", hashlib.sha256(DATA).hexdigest()) == (doc["path"], doc["sha256"])
        plain_verify(doc, public_pem(server.instance))
        assert any(
            r.get("path") == "/.receipts/x.receipt.json" for r in server.instance.audit("denied")
        )

    def test_curl_lists_and_downloads_over_ftps(
        self, server: RunningServer, tmp_path: Path
    ) -> None:
        """curl (resuming the TLS session on data connections) lists and downloads receipts."""
        server.instance.add_account(MEMBER)
        client = connect(server, "ftps", MEMBER)
        client.upload("/d.bak", DATA)
        client.close()
        listing = subprocess.run(
            curl_command(server, "--list-only", "URL/.receipts/"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert 0 == listing.returncode, listing.stderr
        assert ["d.bak.receipt.json"] == listing.stdout.split()
        got = subprocess.run(
            curl_command(server, "URL/.receipts/d.bak.receipt.json"),
            capture_output=True,
            timeout=60,
        )
        assert 0 == got.returncode, got.stderr
        doc = json.loads(got.stdout)
        assert "receipt" == doc["kind"] and len(DATA) == doc["size"]
        plain_verify(doc, public_pem(server.instance))
        upload = subprocess.run(
            curl_command(server, "-T", "-", "URL/.receipts/forged.receipt.json"),
            input=b"{}",
            capture_output=True,
            timeout=60,
        )
        assert 0 != upload.returncode
        assert any(
            r.get("path") == "/.receipts/forged.receipt.json" and r.get("protocol") == "ftps"
            for r in server.instance.audit("denied")
        )


class TestKeyRotation:
    def test_receipts_follow_a_rotated_key(self, server: RunningServer) -> None:
        """After ``intake keys rotate-audit`` the running server signs receipts with the
        new key: they verify with the new public key, not with the old one."""
        inst = server.instance
        inst.add_account(MEMBER)
        client = connect(server, "sftp", MEMBER)
        try:
            client.upload("/a.bak", DATA)
            old_pem = public_pem(inst)
            plain_verify(json.loads(client.download("/.receipts/a.bak.receipt.json")), old_pem)
            assert 0 == inst.cli("keys", "rotate-audit").returncode
            new_pem = public_pem(inst)
            assert old_pem != new_pem
            doc = json.loads(client.download("/.receipts/a.bak.receipt.json"))
            plain_verify(doc, new_pem)
            with pytest.raises(InvalidSignature):
                plain_verify(doc, old_pem)
        finally:
            client.close()
