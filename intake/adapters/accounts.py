"""The account store: SQLite in ``state/accounts.db`` (WAL, survives a crash mid-write).

Rules:
- Secrets never leave this module: callers get ``Account`` (name, role, enabled) and ask
  ``authenticate_password`` / ``authenticate_key`` for a yes or no.
- A disabled account never authenticates, whatever it presents.
- Every write is one transaction; a crash leaves either the old or the new state.
- A connection per call: the store is used from many server threads. Connections,
  transactions and the schema version go through ``intake.adapters.sqlite``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from intake.adapters import sqlite
from intake.adapters.keys import PublicKey
from intake.adapters.passwords import hash_password, verify_password
from intake.core.clock import Clock, isoformat
from intake.core.errors import Conflict, NotFound
from intake.core.model import Account, Role
from intake.core.paths import check_account_name

MIGRATIONS: tuple[str, ...] = (
    # 1: accounts and their public keys.
    """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('member', 'technician', 'auditor')),
    enabled INTEGER NOT NULL DEFAULT 1,
    password_hash TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS account_keys (
    account TEXT NOT NULL REFERENCES accounts(name),
    key_type TEXT NOT NULL,
    blob BLOB NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL,
    PRIMARY KEY (account, blob)
);
""",
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class AccountInfo:
    """What ``account list`` shows: never a hash."""

    account: Account
    has_password: bool
    key_fingerprints: tuple[str, ...]
    created_at: str
    updated_at: str


class AccountStore:
    def __init__(self, path: Path, clock: Clock) -> None:
        self._path = path
        self._clock = clock
        with sqlite.connect(path) as db:
            sqlite.migrate(db, path, MIGRATIONS)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite.Connection]:
        with sqlite.connect(self._path) as db, sqlite.transaction(db):
            yield db

    def _now(self) -> str:
        return isoformat(self._clock.now())

    def add(self, name: str, role: Role, password: str | None, keys: list[PublicKey]) -> Account:
        check_account_name(name)
        hashed = hash_password(password) if password is not None else None
        now = self._now()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"account {name!r} already exists")
            db.execute(
                "INSERT INTO accounts (name, role, enabled, password_hash, created_at,"
                " updated_at) VALUES (?, ?, 1, ?, ?, ?)",
                (name, role.value, hashed, now, now),
            )
            self._insert_keys(db, name, keys, now)
        return Account(name, role, True)

    @staticmethod
    def _insert_keys(db: sqlite.Connection, name: str, keys: list[PublicKey], now: str) -> None:
        for key in keys:
            db.execute(
                "INSERT OR IGNORE INTO account_keys (account, key_type, blob, comment, added_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, key.key_type, key.blob, key.comment, now),
            )

    def _require(self, db: sqlite.Connection, name: str) -> None:
        if not db.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
            raise NotFound(f"no account named {name!r}")

    def set_password(self, name: str, password: str) -> None:
        hashed = hash_password(password)
        with self._transaction() as db:
            self._require(db, name)
            db.execute(
                "UPDATE accounts SET password_hash = ?, updated_at = ? WHERE name = ?",
                (hashed, self._now(), name),
            )

    def add_keys(self, name: str, keys: list[PublicKey]) -> None:
        now = self._now()
        with self._transaction() as db:
            self._require(db, name)
            self._insert_keys(db, name, keys, now)
            db.execute("UPDATE accounts SET updated_at = ? WHERE name = ?", (now, name))

    def set_enabled(self, name: str, enabled: bool) -> None:
        with self._transaction() as db:
            self._require(db, name)
            db.execute(
                "UPDATE accounts SET enabled = ?, updated_at = ? WHERE name = ?",
                (int(enabled), self._now(), name),
            )

    def get(self, name: str) -> Account | None:
        with sqlite.connect(self._path) as db:
            row = db.execute(
                "SELECT name, role, enabled FROM accounts WHERE name = ?", (name,)
            ).fetchone()
        return Account(row[0], Role(row[1]), bool(row[2])) if row else None

    def infos(self) -> list[AccountInfo]:
        with sqlite.connect(self._path) as db:
            rows = db.execute(
                "SELECT name, role, enabled, password_hash IS NOT NULL, created_at, updated_at"
                " FROM accounts ORDER BY name"
            ).fetchall()
            keys: dict[str, list[str]] = {}
            for account, blob in db.execute("SELECT account, blob FROM account_keys"):
                keys.setdefault(account, []).append(PublicKey("", blob, "").fingerprint)
        return [
            AccountInfo(
                Account(name, Role(role), bool(enabled)),
                bool(has_pw),
                tuple(keys.get(name, [])),
                created,
                updated,
            )
            for name, role, enabled, has_pw, created, updated in rows
        ]

    def names(self, role: Role) -> list[str]:
        with sqlite.connect(self._path) as db:
            rows = db.execute(
                "SELECT name FROM accounts WHERE role = ? ORDER BY name", (role.value,)
            ).fetchall()
        return [row[0] for row in rows]

    def authenticate_password(self, name: str, password: str) -> Account | None:
        """The account if ``password`` is right and the account enabled; else None."""
        with sqlite.connect(self._path) as db:
            row = db.execute(
                "SELECT name, role, enabled, password_hash FROM accounts WHERE name = ?",
                (name,),
            ).fetchone()
        stored = row[3] if row else None
        ok = verify_password(password, stored)
        if not (ok and row and row[2]):
            return None
        return Account(row[0], Role(row[1]), True)

    def authenticate_key(self, name: str, blob: bytes) -> Account | None:
        """The account if ``blob`` is one of its keys and the account enabled; else None."""
        with sqlite.connect(self._path) as db:
            row = db.execute(
                "SELECT a.name, a.role FROM accounts a JOIN account_keys k ON k.account = a.name"
                " WHERE a.name = ? AND k.blob = ? AND a.enabled = 1",
                (name, blob),
            ).fetchone()
        return Account(row[0], Role(row[1]), True) if row else None

    def credential_token(self, name: str, method: str, key_blob: bytes | None = None) -> str | None:
        """A token that changes when the credential a session logged in with changes:
        a digest of the password hash, or of the key; None if there is none."""
        with sqlite.connect(self._path) as db:
            if method == "publickey":
                row = db.execute(
                    "SELECT blob FROM account_keys WHERE account = ? AND blob = ?",
                    (name, key_blob or b""),
                ).fetchone()
                value = bytes(row[0]) if row else None
            else:
                row = db.execute(
                    "SELECT password_hash FROM accounts WHERE name = ?", (name,)
                ).fetchone()
                value = row[0].encode() if row and row[0] else None
        return hashlib.sha256(value).hexdigest() if value is not None else None

    def invalid_login_reason(self, name: str, method: str, token: str | None) -> str | None:
        """Why a session of ``name`` logged in by ``method`` (with ``token``) no longer
        holds: the account is gone or disabled, or that credential changed; else None."""
        account = self.get(name)
        if account is None:
            return "account deleted"
        if not account.enabled:
            return "account disabled"
        if method == "publickey":
            # The token is the key's digest: the key must still be on the account.
            with sqlite.connect(self._path) as db:
                blobs = [
                    bytes(r[0])
                    for r in db.execute("SELECT blob FROM account_keys WHERE account = ?", (name,))
                ]
            if token not in {hashlib.sha256(b).hexdigest() for b in blobs}:
                return "key removed from the account"
            return None
        if token != self.credential_token(name, method):
            return "password changed"
        return None
