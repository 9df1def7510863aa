"""Recording fates: the policy that governs an entry, its forwarding, its destruction.

The sweeper's writes (``intake.services.sweeper.sweep``): ``Fates``, the ``fates`` part of
``intake.adapters.catalog.catalog.Catalog``, made on its ``Store``.

Rules:
- Destruction is write-ahead: ``record_destroy_intent`` before the unlink (refused if the
  entry may not be destroyed), ``record_destroyed`` after. An entry with an intent and no
  outcome belongs to the sweeper (``pending_destroy_intents`` lists them for its recovery).
- Outcomes are idempotent, so a sweeper rerun after a crash finishes what was cut: a policy
  already set, or a state already reached, records nothing (no event) again.
- ``set_policies`` is ``set_policy`` for many entries in one transaction: all or none.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from intake.adapters import sqlite
from intake.adapters.catalog.model import (
    COLUMNS,
    LIVE_SQL,
    Entry,
    IllegalTransition,
)
from intake.adapters.catalog.store import Store
from intake.core.clock import isoformat
from intake.core.model import ArrivalState, can_move


class Fates:
    """What the sweeper decided and did, entry by entry."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def set_policy(self, entry_id: int, policy: str, expires: datetime | None = None) -> None:
        """The policy that governs this entry and when it ends (an event only on a change)."""
        self.set_policies([(entry_id, policy, expires)])

    def set_policies(self, assignments: Iterable[tuple[int, str, datetime | None]]) -> None:
        """``set_policy`` for each (entry id, policy, expires), in one transaction."""
        with self._store.write() as db:
            for entry_id, policy, expires in assignments:
                self._set_policy(db, entry_id, policy, expires)

    def _set_policy(
        self, db: sqlite.Connection, entry_id: int, policy: str, expires: datetime | None
    ) -> None:
        row = self._store.row(db, entry_id)
        when = isoformat(expires) if expires else None
        if row["policy"] == policy and row["expires_at"] == when:
            return
        db.execute(
            "UPDATE entries SET policy = ?, expires_at = ? WHERE id = ?", (policy, when, entry_id)
        )
        self._store.event(db, entry_id, "policy", policy=policy, expires_at=when)

    def unassigned(self) -> list[Entry]:
        """Live entries no policy has been set on yet (new, or matched by none so far)."""
        rows = self._store.read(
            f"SELECT {COLUMNS} FROM entries WHERE policy IS NULL"  # noqa: S608
            f" AND state IN {LIVE_SQL} ORDER BY id"
        )
        return [self._store.entry(r) for r in rows]

    def expiring(self, before: datetime) -> list[Entry]:
        """Live entries whose policy destroys them before ``before``, soonest first."""
        rows = self._store.read(
            f"SELECT {COLUMNS} FROM entries WHERE expires_at IS NOT NULL"  # noqa: S608
            f" AND expires_at < ? AND state IN {LIVE_SQL} ORDER BY expires_at, id",
            (isoformat(before),),
        )
        return [self._store.entry(r) for r in rows]

    def record_destroy_intent(self, entry_id: int, policy: str) -> None:
        """Write-ahead: the sweeper is about to destroy this file (before the unlink)."""
        with self._store.write() as db:
            row = self._store.row(db, entry_id)
            state = ArrivalState(row["state"])
            if not can_move(state, ArrivalState.DESTROYED):
                raise IllegalTransition(
                    f"catalog entry {entry_id}: {state.value} cannot be destroyed"
                )
            now = self._store.now()
            db.execute(
                "UPDATE entries SET destroy_intent = ?, destroy_intent_at = ? WHERE id = ?",
                (policy, now, entry_id),
            )
            self._store.event(db, entry_id, "destroy.intent", at=now, policy=policy)

    def record_destroyed(
        self, entry_id: int, at: datetime, policy: str, sha256_verified: bool
    ) -> None:
        """The file is gone by the sweeper's hand (idempotent)."""
        with self._store.write() as db:
            if self._store.move(
                db, entry_id, ArrivalState.DESTROYED, destroyed_at=isoformat(at), policy=policy
            ):
                self._store.event(
                    db,
                    entry_id,
                    "destroyed",
                    at=isoformat(at),
                    policy=policy,
                    sha256_verified=sha256_verified,
                )

    def record_forwarded(self, entry_id: int, at: datetime, remote_path: str) -> None:
        """The vendor holds the file (idempotent)."""
        with self._store.write() as db:
            if self._store.move(
                db,
                entry_id,
                ArrivalState.FORWARDED,
                forwarded_at=isoformat(at),
                remote_path=remote_path,
            ):
                self._store.event(
                    db, entry_id, "forwarded", at=isoformat(at), remote_path=remote_path
                )
