"""Signed documents: verifiable with the public key alone, by intake and by plain cryptography."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from intake.adapters.audit import signing
from intake.core.errors import UsageError


@pytest.fixture
def signer(tmp_path: Path) -> signing.Signer:
    (path,) = signing.ensure_audit_key(tmp_path)
    return signing.load_signer(path)


class TestAuditKey:
    def test_created_once_and_private(self, tmp_path: Path) -> None:
        """The key is 0600 and a second ensure never replaces it."""
        (path,) = signing.ensure_audit_key(tmp_path)
        before = path.read_bytes()
        assert 0o600 == stat.S_IMODE(os.stat(path).st_mode)
        assert [] == signing.ensure_audit_key(tmp_path)
        assert before == path.read_bytes()

    def test_public_pem_round_trip(self, signer: signing.Signer) -> None:
        """The exported PEM loads back to the same key id."""
        pem = signer.verifier.pem()
        assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
        assert signer.key_id == signing.verifier_from_pem(pem).key_id

    def test_not_a_key_is_a_usage_error(self, tmp_path: Path) -> None:
        """A garbage public key file gives one clear error."""
        bad = tmp_path / "bad.pub"
        bad.write_text("hello")
        with pytest.raises(UsageError):
            signing.load_verifier(bad)


class TestDocuments:
    def test_sign_then_verify(self, signer: signing.Signer) -> None:
        """A signed document verifies; its content is untouched."""
        doc = signing.sign_document({"kind": "receipt", "size": 3, "path": "/é x"}, signer)
        assert (True, "valid") == signing.verify_document(doc, signer.verifier)
        assert "/é x" == doc["path"]

    def test_any_change_fails(self, signer: signing.Signer) -> None:
        """Changing one value, or adding one, breaks the signature."""
        doc = signing.sign_document({"kind": "receipt", "size": 3}, signer)
        assert not signing.verify_document({**doc, "size": 4}, signer.verifier)[0]
        assert not signing.verify_document({**doc, "extra": 1}, signer.verifier)[0]

    def test_other_key_fails(self, signer: signing.Signer, tmp_path: Path) -> None:
        """A document signed by another key does not verify."""
        other_dir = tmp_path / "other"
        other_dir.mkdir()
        (path,) = signing.ensure_audit_key(other_dir)
        doc = signing.sign_document({"kind": "receipt"}, signing.load_signer(path))
        assert (False, "signed by another key") == signing.verify_document(doc, signer.verifier)

    def test_plain_cryptography_verifies(self, signer: signing.Signer) -> None:
        """The documented recipe, with nothing of intake: JCS body, Ed25519, base64."""
        doc = signing.sign_document({"kind": "receipt", "sha256": "ab", "n": None}, signer)
        public = serialization.load_pem_public_key(signer.verifier.pem())
        body = {k: v for k, v in doc.items() if k != "signature"}
        data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        sig = base64.b64decode(doc["signature"]["value"])
        public.verify(sig, data.encode())  # type: ignore[union-attr]
        with pytest.raises(InvalidSignature):
            public.verify(sig, data.replace("ab", "ac").encode())  # type: ignore[union-attr]

    def test_strict_parsing(self, signer: signing.Signer) -> None:
        """A duplicate member at any depth, a float, NaN: not a signed document's JSON."""
        doc = signing.sign_document({"kind": "receipt", "size": 3}, signer)
        text = json.dumps(doc)
        assert doc == signing.loads_strict(text)
        for bad in (
            text.replace('"size": 3', '"size": 4, "size": 3'),
            text.replace('"algorithm"', '"key_id": "x", "algorithm"'),
            text.replace('"size": 3', '"size": 3.0'),
            text.replace('"size": 3', '"size": NaN'),
        ):
            with pytest.raises(ValueError):
                signing.loads_strict(bad)
        with pytest.raises(signing.DocumentError, match="duplicate member 'size'"):
            signing.loads_strict(text.replace('"size": 3', '"size": 4, "size": 3'))

    def test_signature_member_is_exact(self, signer: signing.Signer) -> None:
        """The signature holds algorithm, key_id and value, nothing else."""
        doc = signing.sign_document({"kind": "receipt"}, signer)
        extra = {**doc, "signature": {**doc["signature"], "note": "x"}}
        assert (False, "unknown member in signature: note") == signing.verify_document(
            extra, signer.verifier
        )
        short = {**doc, "signature": {k: v for k, v in doc["signature"].items() if k != "key_id"}}
        assert not signing.verify_document(short, signer.verifier)[0]

    def test_text_that_is_not_unicode_never_raises(self, signer: signing.Signer) -> None:
        """A lone surrogate (valid JSON escape, not UTF-8) is refused, not a traceback."""
        doc = signing.sign_document({"kind": "receipt", "path": "/a"}, signer)
        doc["path"] = json.loads('"/\\ud800"')  # what a hostile file's JSON may hold
        assert not signing.verify_document(doc, signer.verifier)[0]
