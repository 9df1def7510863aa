"""Password hashing with scrypt (memory-hard, in the standard library).

Rules:
- A stored hash is ``$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt b64>$<hash b64>``; the
  parameters travel with the hash, so raising them later re-hashes nobody by force.
- Default cost: N=2^14, r=8, p=1 (16 MiB, about 50 ms on this project's 2-core machine).
  Callers bound how many hashes run at once (see ``intake.services.access.guard``).
- Comparison is constant-time; an unknown account is checked against a dummy hash so
  its answer takes as long as a known one's.
- A password is at most 1024 bytes (longer is refused before hashing: no free CPU burner).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

LOG2_N, R, P = 14, 8, 1
MAX_PASSWORD_BYTES = 1024
_MAXMEM = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=1 << log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def hash_password(password: str) -> str:
    secret = password.encode("utf-8")
    if not secret or len(secret) > MAX_PASSWORD_BYTES:
        raise ValueError("password must be 1 to 1024 bytes")
    salt = os.urandom(16)
    digest = _derive(secret, salt, LOG2_N, R, P)
    return f"$scrypt$ln={LOG2_N},r={R},p={P}${_b64(salt)}${_b64(digest)}"


_DUMMY = hash_password("intake-dummy-password")


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; ``None`` runs a dummy check, False."""
    secret = password.encode("utf-8", "surrogateescape")
    if len(secret) > MAX_PASSWORD_BYTES:
        return False
    target = stored or _DUMMY
    try:
        _, scheme, params, salt_text, hash_text = target.split("$")
        settings = dict(item.split("=") for item in params.split(","))
        log2_n, r, p = int(settings["ln"]), int(settings["r"]), int(settings["p"])
        expected = _unb64(hash_text)
        if scheme != "scrypt" or not (1 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        actual = _derive(secret, _unb64(salt_text), log2_n, r, p)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(expected, actual) and stored is not None
