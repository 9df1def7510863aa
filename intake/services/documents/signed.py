"""Signed documents a third party checks with the audit public key alone: certificates, receipts.

The signature itself (JCS canonical JSON without ``signature``, Ed25519, base64) is
``intake.adapters.audit.signing``; this module says what each kind of document holds.

Rules:
- Every document has ``format`` (``FORMAT``) and ``kind``: ``destruction-certificate`` or
  ``receipt``; ``instance`` (``[server] hostname``) names the server that signed it, and
  ``entry`` the catalog entry it is about. Times are ISO-8601 UTC strings, sizes integers,
  never floats. Optional facts are left out rather than written as ``null``.
- A destruction certificate is signed once, when the file is destroyed, and kept in the
  catalog as issued (``Catalog.store_certificate``): exporting it later hands out the same
  bytes.
- A receipt is built from the catalog each time it is read: Ed25519 is deterministic, so
  the same catalog entry always gives the same bytes. It states the file's current path;
  after a rename it is issued under the new name (same entry, size, SHA-256, received_at),
  and a receipt downloaded before stays valid for the name the file had then.
- ``render`` is the one way a document becomes bytes (a file, a download): pretty JSON,
  UTF-8, keys sorted, a final newline. Whitespace is not signed, so re-indenting keeps
  it valid.
- Checking is strict (``parse``, then ``check``): the bytes are read with
  ``signing.loads_strict`` (no member twice, no float), and a document holds exactly the
  members its kind states (``MEMBERS``), each of its type, besides a valid signature. So
  two readers can never see two different documents in one file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from intake.adapters.audit import signing
from intake.adapters.audit.signing import Signer, Verifier
from intake.adapters.catalog.catalog import Entry
from intake.core.clock import isoformat
from intake.core.config import Config

FORMAT = "intake-signed-document/1"
CERTIFICATE = "destruction-certificate"
RECEIPT = "receipt"
KINDS = {CERTIFICATE: "destruction certificate", RECEIPT: "receipt"}
_COMMON = frozenset({"format", "kind", "instance", "entry", "account", "path", "size", "sha256",
                     "received_at", "signature"})  # fmt: skip
# kind -> (required members, optional members: the facts ``_compact`` may leave out)
MEMBERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    RECEIPT: (_COMMON, frozenset({"protocol"})),
    CERTIFICATE: (
        _COMMON | {"area", "destroyed_at", "policy", "integrity", "method"},
        frozenset({"actual_sha256", "actual_size", "forwarded_at", "remote_path"}),
    ),
}
INTEGER_MEMBERS = frozenset({"entry", "size", "actual_size"})


def audit_signer(cfg: Config) -> Signer:
    """The instance's audit key (made now if an older instance has none)."""
    signing.ensure_audit_key(cfg.keys_dir)
    return signing.load_signer(cfg.keys_dir / signing.AUDIT_KEY_FILE)


def render(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def fingerprint(document: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the signed document's canonical JSON (signature included)."""
    return "sha256:" + hashlib.sha256(signing.canonical_json(document)).hexdigest()


def _compact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def certificate_body(
    cfg: Config,
    entry: Entry,
    destroyed_at: str,
    policy: str,
    integrity: str,
    actual_sha256: str | None = None,
    actual_size: int | None = None,
) -> dict[str, Any]:
    """What a destruction certificate states (unsigned)."""
    return _compact(
        {
            "format": FORMAT,
            "kind": CERTIFICATE,
            "instance": cfg.server.hostname,
            "entry": entry.id,
            "account": entry.account,
            "area": entry.area,
            "path": entry.path,
            "size": entry.size,
            "sha256": entry.sha256,
            "received_at": isoformat(entry.received_at),
            "destroyed_at": destroyed_at,
            "policy": policy,
            "integrity": integrity,
            "actual_sha256": actual_sha256,
            "actual_size": actual_size,
            "forwarded_at": isoformat(entry.forwarded_at) if entry.forwarded_at else None,
            "remote_path": entry.remote_path,
            "method": "unlink, then fsync of the folder",
        }
    )


def receipt_body(cfg: Config, entry: Entry) -> dict[str, Any]:
    """What a receipt states (unsigned)."""
    return _compact(
        {
            "format": FORMAT,
            "kind": RECEIPT,
            "instance": cfg.server.hostname,
            "entry": entry.id,
            "account": entry.account,
            "path": entry.path,
            "size": entry.size,
            "sha256": entry.sha256,
            "received_at": isoformat(entry.received_at),
            "protocol": entry.protocol,
        }
    )


def parse(data: bytes) -> tuple[Any, str]:
    """The document in ``data`` read strictly, or (None, why it cannot be one)."""
    try:
        return signing.loads_strict(data), "read"
    except signing.DocumentError as exc:
        return None, f"not a signed document ({exc})"
    except ValueError:  # not UTF-8, not JSON
        return None, "not a JSON document"


def _members(document: dict[str, Any]) -> str | None:
    """Why ``document`` does not hold exactly its kind's members, each of its type."""
    required, optional = MEMBERS[document["kind"]]
    reason = signing.check_members(document, required, optional)
    if reason is not None:
        return reason
    for name, value in document.items():
        if name == "signature":
            continue
        if name in INTEGER_MEMBERS:
            if type(value) is not int:
                return f"{name} is not an integer"
        elif not isinstance(value, str):
            return f"{name} is not a string"
    return None


def check(document: Any, verifier: Verifier) -> tuple[bool, str]:
    """Is ``document`` (read with ``parse``) one of ours, whole, exactly its kind's
    members, signed by ``verifier``? (valid, reason)."""
    valid, reason = signing.verify_document(document, verifier)
    if not valid:
        return False, reason
    if document.get("format") != FORMAT:
        return False, "not an intake signed document (unknown format)"
    if document.get("kind") not in KINDS:
        return False, "unknown kind of document"
    problem = _members(document)
    if problem is not None:
        return False, problem
    return True, "valid"


def describe(document: dict[str, Any]) -> str:
    """One line: what the document is and what it is about (values as stored)."""
    kind = KINDS.get(str(document.get("kind")), "document")
    size = document.get("size")
    sha = str(document.get("sha256", ""))
    what = (
        f"{kind} for entry {document.get('entry')}: account {document.get('account')},"
        f" {document.get('path')} ({size} bytes, sha256 {sha})"
    )
    if document.get("kind") == CERTIFICATE:
        return (
            f"{what}, received {document.get('received_at')},"
            f" destroyed {document.get('destroyed_at')} by policy {document.get('policy')},"
            f" integrity {document.get('integrity')}"
        )
    return f"{what}, received {document.get('received_at')} over {document.get('protocol')}"
