"""Host keys, the TLS certificate and public-key parsing: the one seam to ``cryptography``.

Rules:
- A key file is created with ``O_EXCL`` and mode 0600: never overwritten, never readable
  by others. ``ensure_*`` only creates what is missing.
- SSH fingerprints are ``SHA256:<base64 without padding>`` of the public key blob, exactly
  as ``ssh-keygen -lf`` prints them; the certificate fingerprint is colon-separated
  upper-case hex of the DER's SHA-256, as ``openssl x509 -fingerprint -sha256`` prints it.
- Authorized keys are OpenSSH one-line public keys: ed25519, ecdsa (nistp256/384/521) or
  rsa of at least 2048 bits (used with rsa-sha2 signatures only).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from intake.core.errors import StartupError, UsageError

HOST_KEY_FILES = {"ssh-ed25519": "ssh_host_ed25519_key", "ssh-rsa": "ssh_host_rsa_key"}
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"
ALLOWED_USER_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    }
)
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class Fingerprint:
    kind: str  # "ssh-ed25519", "ssh-rsa", "tls"
    bits: int
    fingerprint: str
    file: str


@dataclass(frozen=True)
class PublicKey:
    """One authorized key: its type, its wire blob, and its comment."""

    key_type: str
    blob: bytes
    comment: str

    @property
    def fingerprint(self) -> str:
        return ssh_fingerprint(self.blob)

    def openssh_line(self) -> str:
        text = f"{self.key_type} {base64.b64encode(self.blob).decode()}"
        return f"{text} {self.comment}" if self.comment else text


def ssh_fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data``, mode 0600; False if it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def ensure_host_keys(keys_dir: Path) -> list[Path]:
    """Create the ed25519 and rsa-3072 host keys that are missing; return the new files."""
    created = []
    for kind, filename in HOST_KEY_FILES.items():
        path = keys_dir / filename
        if path.exists():
            continue
        key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey = (
            ed25519.Ed25519PrivateKey.generate()
            if kind == "ssh-ed25519"
            else rsa.generate_private_key(public_exponent=65537, key_size=3072)
        )
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        if _write_new(path, private):
            _write_new(path.with_name(filename + ".pub"), public + b" intake-host-key\n")
            created.append(path)
    return created


def ensure_tls_certificate(keys_dir: Path, hostname: str, now: _dt.datetime) -> list[Path]:
    """Create a self-signed certificate for ``hostname`` if none is there (10 years)."""
    cert_path, key_path = keys_dir / TLS_CERT_FILE, keys_dir / TLS_KEY_FILE
    if cert_path.exists() or key_path.exists():
        return []
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname == "localhost":
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_new(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return [cert_path, key_path]


def host_key_fingerprints(keys_dir: Path) -> list[Fingerprint]:
    """Fingerprints of the host keys present, from their ``.pub`` files or private keys."""
    prints = []
    for kind, filename in HOST_KEY_FILES.items():
        path = keys_dir / filename
        if not path.exists():
            continue
        try:
            key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError, UnsupportedAlgorithm) as exc:
            raise StartupError(f"cannot read host key {path}: {exc}") from None
        blob = _public_blob(key.public_key())
        bits = key.key_size if isinstance(key, rsa.RSAPrivateKey) else 256
        prints.append(Fingerprint(kind, bits, ssh_fingerprint(blob), str(path)))
    return prints


def certificate_fingerprint(keys_dir: Path) -> Fingerprint | None:
    path = keys_dir / TLS_CERT_FILE
    if not path.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise StartupError(f"cannot read TLS certificate {path}: {exc}") from None
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    pairs = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    public = cert.public_key()
    bits = (
        public.key_size if isinstance(public, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) else 0
    )
    return Fingerprint("tls", bits, pairs, str(path))


def _public_blob(public: object) -> bytes:
    line = public.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return base64.b64decode(line.split()[1])


def parse_public_key(line: str) -> PublicKey:
    """Parse one OpenSSH public-key line; ``UsageError`` with a clear reason otherwise."""
    parts = line.strip().split(None, 2)
    if len(parts) < 2:
        raise UsageError("not an OpenSSH public key line (expected: TYPE BASE64 [COMMENT])")
    key_type, b64 = parts[0], parts[1]
    comment = parts[2] if len(parts) == 3 else ""
    if key_type not in ALLOWED_USER_KEY_TYPES:
        raise UsageError(f"unsupported key type {key_type!r} (use ed25519, ecdsa or rsa)")
    try:
        key = serialization.load_ssh_public_key(f"{key_type} {b64}".encode())
        blob = base64.b64decode(b64, validate=True)
    except (ValueError, TypeError):
        raise UsageError("the public key is malformed") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise UsageError(f"rsa key of {key.key_size} bits is too short (minimum {MIN_RSA_BITS})")
    if any(ord(c) < 32 for c in comment):
        comment = ""
    return PublicKey(key_type, blob, comment)


def read_public_keys(path: Path) -> list[PublicKey]:
    """All keys of an authorized_keys-style file (blank lines and comments skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UsageError(f"{path}: no public key in the file")
    return [parse_public_key(ln) for ln in lines]


@dataclass(frozen=True)
class TlsPair:
    """A certificate chain (leaf first) and its private key, read from PEM files."""

    chain: tuple[x509.Certificate, ...]
    key: object  # a cryptography private key
    fingerprint: str  # the leaf's SHA-256, colon-separated hex like openssl prints it


def read_tls_pair(cert_path: Path, key_path: Path) -> TlsPair:
    """Read both PEM files; ``StartupError`` naming them if either cannot be used.

    Whether the key matches the certificate is for the TLS library to say.
    """
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_path.read_bytes()))
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise StartupError(f"cannot use {cert_path} and {key_path}: {exc}") from None
    digest = chain[0].fingerprint(hashes.SHA256()).hex().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return TlsPair(chain, key, fingerprint)
