"""The audit signing key and signed documents: Ed25519 through ``cryptography``.

One key signs everything a third party must be able to check without trusting the server:
the audit log's checkpoints, destruction certificates and upload receipts.

Rules:
- The private key is ``keys/audit_ed25519_key`` (PKCS#8 PEM), created with ``O_EXCL`` and
  mode 0600, never overwritten; ``ensure_audit_key`` only creates it when missing.
- The public key is exported as PEM SubjectPublicKeyInfo (what ``openssl pkey -pubout``
  writes). Its id is ``SHA256:<base64 without padding>`` of the 32 raw public-key bytes.
- A signed document is one JSON object. Its signature covers the document's canonical
  JSON **without** its ``signature`` member: RFC 8785 (JCS) for the values intake writes
  (strings, integers, booleans, null, arrays and objects; never floats), i.e. keys sorted,
  no whitespace, UTF-8. In Python: ``json.dumps(doc, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False).encode()``. The ``signature`` member is
  ``{"algorithm": "ed25519", "key_id": ..., "value": <base64 of the 64-byte signature>}``.
- A signed document is read strictly (``loads_strict``): a member twice in one object (at
  any depth: readers disagree on which one counts), a float, ``NaN`` or ``Infinity`` make
  it unreadable. ``signature`` holds exactly ``algorithm``, ``key_id`` and ``value``. Each
  kind of document states its own members (``check_members``); anything else is refused.
- Verification never raises on bad input: it answers ``False`` with a reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from intake.core.errors import StartupError, UsageError

AUDIT_KEY_FILE = "audit_ed25519_key"
ALGORITHM = "ed25519"


SIGNATURE_MEMBERS = frozenset({"algorithm", "key_id", "value"})


class DocumentError(ValueError):
    """Text that is not a signed document's JSON (a duplicate member, a float...)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DocumentError(f"duplicate member {key!r}")
            seen.add(key)
    return document


def _no_float(text: str) -> Any:
    raise DocumentError(f"a number that is not an integer: {text[:40]}")


_STRICT = json.JSONDecoder(
    object_pairs_hook=_object, parse_float=_no_float, parse_constant=_no_float
)


def loads_strict(data: bytes | str) -> Any:
    """JSON as a signed document must be: UTF-8, no member twice in an object, integers
    only. Raises ``ValueError`` (``DocumentError`` saying what, or a syntax error)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return _STRICT.decode(text)


def check_members(
    document: dict[str, Any], required: frozenset[str], optional: frozenset[str] = frozenset()
) -> str | None:
    """None if ``document`` holds every ``required`` member and nothing beyond ``optional``;
    otherwise the reason."""
    missing = sorted(required - document.keys())
    if missing:
        return f"missing member: {', '.join(missing)}"
    unknown = sorted(document.keys() - required - optional)
    if unknown:
        return f"unknown member: {', '.join(unknown)}"
    return None


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON for the values intake signs (no floats)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(raw_public: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(raw_public).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


@dataclass(frozen=True)
class Verifier:
    """An audit public key: checks signatures, names itself by its id."""

    public: ed25519.Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    def pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """The audit private key."""

    private: ed25519.Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.private.public_key())

    @property
    def key_id(self) -> str:
        return self.verifier.key_id

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def ensure_audit_key(keys_dir: Path) -> list[Path]:
    """Create the audit key if it is missing; return the new file (or nothing)."""
    path = keys_dir / AUDIT_KEY_FILE
    if path.exists():
        return []
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return []
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return [path]


def load_signer(path: Path) -> Signer:
    """The private key at ``path``; ``StartupError`` with one clear line otherwise."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise StartupError(f"cannot read audit key {path}: {exc.strerror}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise StartupError(f"cannot read audit key {path}: not a PEM private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise StartupError(f"audit key {path} is not an Ed25519 key")
    return Signer(key)


def load_verifier(path: Path) -> Verifier:
    """A public key file (PEM SubjectPublicKeyInfo); ``UsageError`` otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read public key {path}: {exc.strerror}") from None
    return verifier_from_pem(data, str(path))


def verifier_from_pem(data: bytes, source: str = "public key") -> Verifier:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise UsageError(f"{source}: not a PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"{source}: not an Ed25519 public key")
    return Verifier(key)


def verifier_from_raw(raw: bytes) -> Verifier:
    """A public key from its 32 raw bytes (as carried inside a rotation checkpoint)."""
    try:
        return Verifier(ed25519.Ed25519PublicKey.from_public_bytes(raw))
    except ValueError:
        raise UsageError("not a 32-byte Ed25519 public key") from None


def sign_document(document: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """``document`` with a ``signature`` member added (the input is left unchanged)."""
    body = {k: v for k, v in document.items() if k != "signature"}
    value = base64.b64encode(signer.sign(canonical_json(body))).decode()
    return {
        **body,
        "signature": {"algorithm": ALGORITHM, "key_id": signer.key_id, "value": value},
    }


def verify_document(document: Any, verifier: Verifier) -> tuple[bool, str]:
    """Check a signed document (read with ``loads_strict``) against ``verifier``:
    (valid, reason). Its own members are the caller's to check (``check_members``)."""
    if not isinstance(document, dict):
        return False, "not a JSON object"
    signature = document.get("signature")
    if not isinstance(signature, dict):
        return False, "no signature"
    unknown = sorted(signature.keys() - SIGNATURE_MEMBERS)
    if unknown:
        return False, f"unknown member in signature: {', '.join(unknown)}"
    if signature.get("algorithm") != ALGORITHM:
        return False, "unknown signature algorithm"
    if signature.get("key_id") != verifier.key_id:
        return False, "signed by another key"
    value = signature.get("value")
    try:
        raw = base64.b64decode(value if isinstance(value, str) else "", validate=True)
    except ValueError:
        return False, "signature is not base64"
    if len(raw) != 64:
        return False, "signature is not an Ed25519 signature"
    body = {k: v for k, v in document.items() if k != "signature"}
    try:
        data = canonical_json(body)
    except (UnicodeEncodeError, TypeError, ValueError):
        return False, "not a signed document's content (text that is not Unicode, or a float)"
    if not verifier.verify(raw, data):
        return False, "signature does not match the content"
    return True, "valid"


# -- rotation ------------------------------------------------------------------------------

RETIRED_PREFIX = f"{AUDIT_KEY_FILE}.retired-"
RETIRED_SUFFIX = ".pub"


def generate_signer() -> Signer:
    """A new audit key, in memory (``install_audit_key`` writes it)."""
    return Signer(ed25519.Ed25519PrivateKey.generate())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def install_audit_key(keys_dir: Path, new: Signer, stamp: str) -> Path:
    """Replace the audit key by ``new``; the old public key is kept as
    ``audit_ed25519_key.retired-<stamp>.pub`` (so old checkpoints still verify on the host;
    the old private key is not kept). Returns the retired file."""
    path = keys_dir / AUDIT_KEY_FILE
    old = load_signer(path)
    retired = keys_dir / f"{RETIRED_PREFIX}{stamp}{RETIRED_SUFFIX}"
    _write_new(retired, old.verifier.pem(), 0o644)
    tmp = keys_dir / f".{AUDIT_KEY_FILE}.new"
    tmp.unlink(missing_ok=True)
    pem = new.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_new(tmp, pem, 0o600)
    os.replace(tmp, path)
    dir_fd = os.open(keys_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return retired


def retired_verifiers(keys_dir: Path) -> list[Verifier]:
    """The public halves of the audit keys replaced by rotations, oldest first."""
    found = sorted(keys_dir.glob(f"{RETIRED_PREFIX}*{RETIRED_SUFFIX}"))
    return [load_verifier(p) for p in found]


def instance_verifiers(keys_dir: Path) -> list[Verifier]:
    """Every audit public key an instance trusts: retired ones, then the current one."""
    keys = retired_verifiers(keys_dir)
    path = keys_dir / AUDIT_KEY_FILE
    if path.exists():
        keys.append(load_signer(path).verifier)
    return keys
