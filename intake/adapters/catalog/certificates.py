"""Destruction certificates: the signed documents the sweeper issued, one per entry.

``Certificates``, a part of ``intake.adapters.catalog.catalog.Catalog`` made on its ``Store``
(the ``certificates`` table, migration 3).

Rules:
- A certificate is stored once, as the exact JSON text that was signed and handed out;
  ``store_certificate`` never replaces one (``INSERT OR IGNORE``) and returns the text
  that is kept, so a sweeper rerun after a crash hands out the same document again.
- Rows are never deleted or changed, like the rest of the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from intake.adapters.catalog.store import Store
from intake.core.clock import isoformat
from intake.core.errors import IntakeError


@dataclass(frozen=True)
class StoredCertificate:
    entry_id: int
    account: str
    destroyed_at: str  # ISO-8601 UTC, as in the document
    document: str  # the signed JSON text, exactly as issued


class Certificates:
    """The signed destruction certificates, by catalog entry id."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def store_certificate(
        self, entry_id: int, account: str, destroyed_at: str, document: str
    ) -> StoredCertificate:
        """Keep ``document`` for ``entry_id`` unless one is kept already; return the kept one."""
        with self._store.write() as db:
            self._store.row(db, entry_id)
            db.execute(
                "INSERT OR IGNORE INTO certificates (entry_id, account, destroyed_at, document)"
                " VALUES (?, ?, ?, ?)",
                (entry_id, account, destroyed_at, document),
            )
        kept = self.certificate(entry_id)
        if kept is None:
            raise IntakeError(f"the certificate of entry {entry_id} was not stored")
        return kept

    def certificate(self, entry_id: int) -> StoredCertificate | None:
        row = self._store.read_one(
            "SELECT entry_id, account, destroyed_at, document FROM certificates WHERE entry_id = ?",
            (entry_id,),
        )
        return None if row is None else StoredCertificate(*row)

    def certificates(
        self, account: str | None = None, since: datetime | None = None
    ) -> list[StoredCertificate]:
        """Certificates in destruction order, for one account and/or from ``since`` on."""
        where, args = [], []
        if account is not None:
            where.append("account = ?")
            args.append(account)
        if since is not None:
            where.append("destroyed_at >= ?")
            args.append(isoformat(since))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._store.read(
            "SELECT entry_id, account, destroyed_at, document FROM certificates"  # noqa: S608
            f" {clause} ORDER BY destroyed_at, entry_id",
            args,
        )
        return [StoredCertificate(*r) for r in rows]
