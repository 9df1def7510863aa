"""Destruction certificates: signed when the sweeper destroys, listed, exported, verified offline
by ``intake audit verify-document`` and by a few lines of plain ``cryptography``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from intake.adapters.audit import signing
from intake.adapters.catalog.catalog import Catalog
from intake.core.clock import FixedClock, parse_iso
from intake.core.config import load
from intake.services.documents import signed as documents
from tests.conftest import TestInstance
from tests.signed_documents import plain_verify
from tests.sweeping import AGES_AGO, FAR, destroyed_but_not_catalogued, drop, unlinked_under_intent


def public_key(instance: TestInstance, folder: Path) -> Path:
    """The audit public key, exported as an auditor gets it, outside the instance."""
    path = folder / "audit.pub"
    instance.cli("keys", "export-audit-public", str(path), check=True)
    return path


@pytest.fixture
def destroyed(instance: TestInstance) -> TestInstance:
    """Two members' backups received long ago, all destroyed by one sweep."""
    instance.add_account("mairie-a")
    instance.add_account("mairie-b")
    drop(instance, "mairie-a", {"2026/base.zip": b"backup of mairie-a"}, received=AGES_AGO)
    drop(instance, "mairie-b", {"paie.sql": b"payroll of mairie-b"}, received=AGES_AGO)
    done = instance.cli("sweep")
    assert 0 == done.returncode, done.stderr
    return instance


class TestCertificates:
    def test_listed_per_account(self, destroyed: TestInstance) -> None:
        """``audit certificates`` lists one per destroyed file; ``--account`` narrows it."""
        every = json.loads(destroyed.cli("audit", "certificates", "--json", check=True).stdout)
        assert {("mairie-a", "/2026/base.zip"), ("mairie-b", "/paie.sql")} == {
            (d["account"], d["path"]) for d in every
        }
        only_a = destroyed.cli("audit", "certificates", "--account", "mairie-a", "--json")
        assert ["mairie-a"] == [d["account"] for d in json.loads(only_a.stdout)]
        later = destroyed.cli("audit", "certificates", "--since", "2041-01-01", "--json")
        assert [] == json.loads(later.stdout)
        table = destroyed.cli("audit", "certificates", check=True).stdout
        assert "/2026/base.zip" in table and "verified" in table

    def test_exported_document_states_the_destruction(
        self, destroyed: TestInstance, tmp_path: Path
    ) -> None:
        """The exported certificate is self-contained and matches the audit record."""
        [record] = [r for r in destroyed.audit("destroyed") if r["account"] == "mairie-a"]
        out = tmp_path / "cert.json"
        done = destroyed.cli("audit", "certificate", str(record["entry"]), "--out", str(out))
        assert 0 == done.returncode, done.stderr
        doc = json.loads(out.read_text())
        data = b"backup of mairie-a"
        assert {
            "format": "intake-signed-document/1",
            "kind": "destruction-certificate",
            "instance": "localhost",
            "entry": record["entry"],
            "account": "mairie-a",
            "path": "/2026/base.zip",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "received_at": "2025-06-02T08:00:00.000000Z",
            "destroyed_at": record["destroyed_at"],
            "policy": "member-backups",
            "integrity": "verified",
        }.items() <= doc.items()
        signer = signing.load_signer(destroyed.root / "keys" / signing.AUDIT_KEY_FILE)
        age = dt.datetime.now(dt.UTC) - parse_iso(str(doc["destroyed_at"]))
        assert dt.timedelta(0) <= age < dt.timedelta(hours=1)  # the sweep's real clock
        assert signer.key_id == doc["signature"]["key_id"]
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert record["certificate"] == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def test_verified_offline_by_cli_and_plain_cryptography(
        self, destroyed: TestInstance, tmp_path: Path
    ) -> None:
        """With only the public key: the CLI says valid and what it certifies; plain
        ``cryptography`` accepts the signature."""
        key = public_key(destroyed, tmp_path)
        [entry] = [r["entry"] for r in destroyed.audit("destroyed") if r["account"] == "mairie-b"]
        out = tmp_path / "cert.json"
        destroyed.cli("audit", "certificate", str(entry), "--out", str(out), check=True)
        check = destroyed.cli("audit", "verify-document", str(out), "--public-key", str(key))
        assert 0 == check.returncode, check.stderr
        assert "VALID destruction certificate" in check.stdout
        assert "mairie-b" in check.stdout and "/paie.sql" in check.stdout
        plain_verify(json.loads(out.read_text()), key.read_bytes())

    def test_tampered_certificate_fails(self, destroyed: TestInstance, tmp_path: Path) -> None:
        """One changed value: the CLI exits 1 saying so, and plain cryptography refuses."""
        key = public_key(destroyed, tmp_path)
        [entry] = [r["entry"] for r in destroyed.audit("destroyed") if r["account"] == "mairie-a"]
        out = tmp_path / "cert.json"
        destroyed.cli("audit", "certificate", str(entry), "--out", str(out), check=True)
        doc = json.loads(out.read_text())
        doc["destroyed_at"] = "2039-01-01T00:00:00.000000Z"
        out.write_text(json.dumps(doc))
        check = destroyed.cli("audit", "verify-document", str(out), "--public-key", str(key))
        assert 1 == check.returncode
        assert "does not match" in check.stderr
        with pytest.raises(InvalidSignature):
            plain_verify(doc, key.read_bytes())

    def test_another_key_fails(self, destroyed: TestInstance, tmp_path: Path) -> None:
        """A certificate checked against another instance's key is not valid (exit 1)."""
        other = ed25519.Ed25519PrivateKey.generate().public_key()
        key = tmp_path / "other.pub"
        key.write_bytes(
            other.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        out = tmp_path / "cert.json"
        entry = str(destroyed.audit("destroyed")[0]["entry"])
        destroyed.cli("audit", "certificate", entry, "--out", str(out), check=True)
        check = destroyed.cli("audit", "verify-document", str(out), "--public-key", str(key))
        assert 1 == check.returncode
        assert "another key" in check.stderr

    def test_usage_errors(self, destroyed: TestInstance, tmp_path: Path) -> None:
        """Unknown id or unreadable file: exit 2, one line, no traceback."""
        unknown = destroyed.cli("audit", "certificate", "999", "--out", str(tmp_path / "x"))
        assert 2 == unknown.returncode
        assert "no destruction certificate for entry 999" in unknown.stderr
        assert not (tmp_path / "x").exists()
        missing = destroyed.cli(
            "audit", "verify-document", str(tmp_path / "nope.json"), "--public-key", "nope.pub"
        )
        assert 2 == missing.returncode
        assert "Traceback" not in missing.stderr
        key = public_key(destroyed, tmp_path)
        garbage = tmp_path / "garbage.json"
        garbage.write_text("not json {")
        bad = destroyed.cli("audit", "verify-document", str(garbage), "--public-key", str(key))
        assert 1 == bad.returncode and "not a JSON document" in bad.stderr

    @pytest.mark.parametrize(
        "edit",
        [
            ('"account": "mairie-a"', '"account": "mairie-x", "account": "mairie-a"'),
            ('"signature": {', '"signature": {"algorithm": "ed25519"}, "signature": {'),
            ('"algorithm": "ed25519"', '"algorithm": "ed25519", "note": "x"'),
        ],
        ids=["duplicate-member", "second-signature", "member-inside-signature"],
    )
    def test_edits_python_would_not_see_fail(
        self, destroyed: TestInstance, tmp_path: Path, edit: tuple[str, str]
    ) -> None:
        """Issue 15 finding 4: a certificate edited so that Python's json still reads the
        genuine document (it keeps the last of duplicate members; the signature check
        ignored extra members) is not valid: exit 1 saying why."""
        key = public_key(destroyed, tmp_path)
        [entry] = [r["entry"] for r in destroyed.audit("destroyed") if r["account"] == "mairie-a"]
        out = tmp_path / "cert.json"
        destroyed.cli("audit", "certificate", str(entry), "--out", str(out), check=True)
        text = out.read_text()
        assert edit[0] in text
        out.write_text(text.replace(edit[0], edit[1], 1))
        check = destroyed.cli("audit", "verify-document", str(out), "--public-key", str(key))
        assert 1 == check.returncode, check.stdout
        assert "NOT VALID" in check.stderr
        assert "VALID" not in check.stdout


class TestCrashSafety:
    def test_recovered_destruction_has_exactly_one_certificate(
        self, instance: TestInstance
    ) -> None:
        """Killed after the ``destroyed`` record, before the catalog knew: the rerun signs one
        certificate that agrees with that record, and a later sweep adds none."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"db.sql": b"x"}, received=AGES_AGO)  # due, were it live
        e = destroyed_but_not_catalogued(instance)
        assert 0 == instance.cli("sweep").returncode
        assert 0 == instance.cli("sweep").returncode
        [doc] = json.loads(instance.cli("audit", "certificates", "--json", check=True).stdout)
        assert ("2039-06-01T00:00:00.000000Z", e.id) == (doc["destroyed_at"], doc["entry"])
        assert 1 == len(instance.audit("destroyed"))

    def test_kept_certificate_is_reused(self, instance: TestInstance, tmp_path: Path) -> None:
        """Killed after the certificate was kept, before the audit record: the rerun writes
        the record from that same certificate (one certificate, one record, same bytes)."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"db.sql": b"y"})
        cfg = load(instance.config_file)
        db = Catalog(instance.root / "state" / "catalog.db", FixedClock(parse_iso(FAR)))
        try:
            e = unlinked_under_intent(db)
            body = documents.certificate_body(
                cfg, e, "2039-07-01T00:00:00.000000Z", "member-backups", "verified"
            )
            signed = signing.sign_document(body, documents.audit_signer(cfg))
            db.store_certificate(e.id, e.account, body["destroyed_at"], json.dumps(signed))
            again = db.store_certificate(e.id, e.account, "2040-01-01T00:00:00.000000Z", "{}")
        finally:
            db.close()
        assert signed == json.loads(again.document)  # a kept certificate is never replaced
        assert 0 == instance.cli("sweep").returncode
        [record] = instance.audit("destroyed")
        assert "2039-07-01T00:00:00.000000Z" == record["destroyed_at"]
        assert documents.fingerprint(signed) == record["certificate"]
        out = tmp_path / "c.json"
        instance.cli("audit", "certificate", str(e.id), "--out", str(out), check=True)
        assert signed == json.loads(out.read_text())
