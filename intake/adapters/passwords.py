"""Password hashing with scrypt (memory-hard, in the standard library).

Rules:
- A stored hash is ``$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt b64>$<hash b64>``; the
  parameters travel with the hash, so raising them later re-hashes nobody by force.
- Default cost: N=2^14, r=8, p=1 (16 MiB, about 50 ms on this project's 2-core machine).
  Callers bound how many hashes run at once (see ``intake.services.access.guard``).
- Comparison is constant-time; an unknown account is checked against a dummy hash so
  its answer takes as long as a known one's.
- A password is at most 1024 bytes (longer is refused before hashing: no free CPU burner).
- Verified passwords are remembered for ``REMEMBER_SECONDS`` (SFTPGo's password caching):
  the same right password against the same stored hash is then accepted without a new
  scrypt, so a client that opens one connection per file (curl, a backup tool's
  reconnects) pays the hash once. Only successes are remembered, as an HMAC under a key
  drawn at start (never the password); a wrong password, an unknown account, a changed
  password (another stored hash) always cost a full scrypt. At most ``REMEMBERED``
  entries, the oldest dropped first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

LOG2_N, R, P = 14, 8, 1
MAX_PASSWORD_BYTES = 1024
_MAXMEM = 256 * 1024 * 1024
REMEMBER_SECONDS = 600.0
REMEMBERED = 4096


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


class Remembered:
    """Right passwords verified lately: keyed digests, each with its expiry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._key = os.urandom(32)
        self._clock = clock
        self._lock = threading.Lock()
        self._until: OrderedDict[bytes, float] = OrderedDict()

    def _digest(self, secret: bytes, stored: str) -> bytes:
        return hmac.new(self._key, stored.encode() + b"\0" + secret, hashlib.sha256).digest()

    def knows(self, secret: bytes, stored: str) -> bool:
        digest = self._digest(secret, stored)
        with self._lock:
            until = self._until.get(digest)
            if until is None:
                return False
            if until < self._clock():
                del self._until[digest]
                return False
            return True

    def remember(self, secret: bytes, stored: str) -> None:
        digest = self._digest(secret, stored)
        with self._lock:
            self._until.pop(digest, None)
            self._until[digest] = self._clock() + REMEMBER_SECONDS
            while len(self._until) > REMEMBERED:
                self._until.popitem(last=False)


REMEMBERED_PASSWORDS = Remembered()


def verify_password(
    password: str, stored: str | None, remembered: Remembered = REMEMBERED_PASSWORDS
) -> bool:
    """True when ``password`` matches ``stored``; ``None`` runs a dummy check, False."""
    secret = password.encode("utf-8", "surrogateescape")
    if len(secret) > MAX_PASSWORD_BYTES:
        return False
    if stored is not None and remembered.knows(secret, stored):
        return True
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
    if not (hmac.compare_digest(expected, actual) and stored is not None):
        return False
    remembered.remember(secret, stored)
    return True
