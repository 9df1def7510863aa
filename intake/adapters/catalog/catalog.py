"""The catalog: every arrival and its fate, in SQLite at ``state/catalog.db``.

The entry point: ``Catalog`` and the values it hands out are imported from here. ``Catalog`` is
one object composed of parts, each with its own module (whose docstring states its rules):

    model          the schema (numbered migrations), Entry / Known / Found / FileStat,
                   the mapping from rows, the SQL fragments the others share
    store          ``Store``: the pool as the parts borrow it, the few steps every recorded
                   transition shares (``row``, ``move``, ``event``), stored <-> disk paths
    queries        ``Queries``: every read shared by all (``catalog.queries``)
    arrivals       ``Arrivals``: uploads, and files found, renamed, changed or gone on disk
                   (``catalog.arrivals``)
    fates          ``Fates``: policies, forwarding, destruction, the sweeper's writes
                   (``catalog.fates``)
    certificates   ``Certificates``: the signed destruction certificates, one per destroyed
                   entry (``catalog.destruction_certificates``: ``catalog.certificates(...)``
                   has always listed them)

``Catalog`` opens the file (migrations), owns the connection pool (``close`` closes it), makes
one ``Store`` on it and hands that to each part. Its public methods are the parts' methods,
each an explicit one-line delegation, so callers keep writing ``catalog.record_received(...)``.

Rules:
- One row per arrival (``entries``) and an ordered history per row (``events``). Nothing is
  ever deleted: destroyed, vanished and interrupted arrivals stay, the catalog is a history.
- An arrival moves only along ``intake.core.model.ALLOWED_TRANSITIONS``; any other move is
  refused with ``IllegalTransition``. Moving to the state it is already in is a no-op, so a
  rerun after a crash (sweeper, reconcile) does not fail.
- ``received_at`` is the server's clock when the upload was closed (or when the cataloguer
  first saw a file that arrived outside an upload): never a file's mtime.
- Per entry a stat baseline (size, mtime_ns, inode, ctime_ns) tells a rescan whether the
  file may have changed; only then is it hashed again.
- Destruction is write-ahead: ``record_destroy_intent`` before the unlink,
  ``record_destroyed`` after. An entry with an intent and no outcome belongs to the sweeper:
  it is never ``vanished`` (``pending_destroy_intents`` lists them for crash recovery).
- Concurrency: server threads, the watchdog thread, a hashing worker and CLI processes use
  the catalog at once. Connections from a small pool the catalog owns (a thread holds
  one for the length of a call), WAL, ``synchronous=FULL``, and short
  ``BEGIN IMMEDIATE`` transactions that re-check what they depend on before writing (so two
  writers can never catalogue one file twice); ``intake.adapters.sqlite`` is the seam.
- Schema changes are numbered migrations (``MIGRATIONS``), applied in order, recorded in
  ``PRAGMA user_version``; a catalog from a newer intake is refused, never rewritten.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from intake.adapters import sqlite
from intake.adapters.catalog.arrivals import Arrivals, Locate
from intake.adapters.catalog.certificates import Certificates, StoredCertificate
from intake.adapters.catalog.fates import Fates
from intake.adapters.catalog.model import (
    ATTEMPT_STATES,
    LIVE_STATES,
    MIGRATIONS,
    SCHEMA_VERSION,
    Entry,
    FileStat,
    Found,
    IllegalTransition,
    Known,
)
from intake.adapters.catalog.queries import Queries
from intake.adapters.catalog.store import Store
from intake.core.clock import Clock

__all__ = [
    "ATTEMPT_STATES",
    "LIVE_STATES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Catalog",
    "Entry",
    "FileStat",
    "Found",
    "IllegalTransition",
    "Known",
    "Locate",
    "StoredCertificate",
]


class Catalog:
    """The catalog database; thread-safe (a pool of connections). See the module docstring."""

    def __init__(self, path: Path, clock: Clock, data_dir: Path | str | None = None) -> None:
        self._path = path
        # Disk paths are stored relative to data/ (by default the instance's, beside state/).
        root = os.path.realpath(data_dir if data_dir is not None else path.parent.parent / "data")
        self._pool = sqlite.Pool(path)
        with self._pool.connection() as db:
            sqlite.migrate(db, path, MIGRATIONS)
        store = Store(self._pool, clock, root)
        self.queries = Queries(store)
        self.arrivals = Arrivals(store)
        self.fates = Fates(store)
        self.destruction_certificates = Certificates(store)

    def close(self) -> None:
        """Close the pooled connections (call once no thread uses the catalog)."""
        self._pool.close()

    # The facade: each public method is its part's, documented there (one line each, so
    # callers outside the package keep calling ``catalog.<method>``).

    # -- reads: self.queries ---------------------------------------------------------

    def get(self, entry_id: int) -> Entry:
        return self.queries.get(entry_id)

    def entries(self, account: str | None = None, include_attempts: bool = False) -> list[Entry]:
        return self.queries.entries(account, include_attempts)

    def live_entries(self) -> list[Entry]:
        return self.queries.live_entries()

    def receipt(self, account: str, path: str) -> Entry | None:
        return self.queries.receipt(account, path)

    def receipts_below(self, account: str, folder: str) -> list[Entry]:
        return self.queries.receipts_below(account, folder)

    def receipts_time(self, account: str, folder: str) -> datetime | None:
        return self.queries.receipts_time(account, folder)

    def usage(self, account: str, area: str) -> int:
        return self.queries.usage(account, area)

    def at_path(self, disk_path: str) -> list[Entry]:
        return self.queries.at_path(disk_path)

    def known(self, under: str | None = None) -> list[Known]:
        return self.queries.known(under)

    def known_at(self, disk_path: str) -> list[Known]:
        return self.queries.known_at(disk_path)

    def history(self, entry_id: int) -> list[dict[str, Any]]:
        return self.queries.history(entry_id)

    def pending_destroy_intents(self) -> list[Entry]:
        return self.queries.pending_destroy_intents()

    def counts_by_state(self) -> dict[str, int]:
        return self.queries.counts_by_state()

    def forward_queue(self) -> tuple[int, datetime | None]:
        return self.queries.forward_queue()

    # -- arrivals, the cataloguer's writes: self.arrivals ------------------------------

    def begin_receiving(
        self, account: str, area: str, path: str, disk_path: str, protocol: str
    ) -> int:
        return self.arrivals.begin_receiving(account, area, path, disk_path, protocol)

    def record_received(
        self,
        account: str,
        area: str,
        path: str,
        disk_path: str,
        size: int,
        sha256: str,
        protocol: str,
        stat: FileStat | None,
    ) -> Entry:
        return self.arrivals.record_received(
            account, area, path, disk_path, size, sha256, protocol, stat
        )

    def record_interrupted(self, disk_path: str, size: int, reason: str) -> list[int]:
        return self.arrivals.record_interrupted(disk_path, size, reason)

    def receiving(self) -> list[Entry]:
        return self.arrivals.receiving()

    def interrupt_all_receiving(self, reason: str) -> list[int]:
        return self.arrivals.interrupt_all_receiving(reason)

    def record_found(self, found: Sequence[Found]) -> list[Entry | None]:
        return self.arrivals.record_found(found)

    def record_moved(
        self,
        old_disk_path: str,
        new_disk_path: str,
        locate: Locate,
        stat: FileStat | None = None,
    ) -> Entry | None:
        return self.arrivals.record_moved(old_disk_path, new_disk_path, locate, stat)

    def record_moved_tree(self, old_dir: str, new_dir: str, locate: Locate) -> int:
        return self.arrivals.record_moved_tree(old_dir, new_dir, locate)

    def record_times_set(self, disk_path: str, before: FileStat, after: FileStat) -> bool:
        return self.arrivals.record_times_set(disk_path, before, after)

    def update_baseline(self, entry_id: int, stat: FileStat, verified: bool = False) -> None:
        return self.arrivals.update_baseline(entry_id, stat, verified)

    def record_vanished(self, entry_id: int, disk_path: str, reason: str) -> bool:
        return self.arrivals.record_vanished(entry_id, disk_path, reason)

    def record_altered(
        self, entry_id: int, actual_sha256: str, stat: FileStat | None = None
    ) -> bool:
        return self.arrivals.record_altered(entry_id, actual_sha256, stat)

    # -- fates, the sweeper's writes: self.fates ----------------------------------------

    def set_policy(self, entry_id: int, policy: str, expires: datetime | None = None) -> None:
        return self.fates.set_policy(entry_id, policy, expires)

    def set_policies(self, assignments: Iterable[tuple[int, str, datetime | None]]) -> None:
        return self.fates.set_policies(assignments)

    def unassigned(self) -> list[Entry]:
        return self.fates.unassigned()

    def expiring(self, before: datetime) -> list[Entry]:
        return self.fates.expiring(before)

    def record_destroy_intent(self, entry_id: int, policy: str) -> None:
        return self.fates.record_destroy_intent(entry_id, policy)

    def record_destroyed(
        self, entry_id: int, at: datetime, policy: str, sha256_verified: bool
    ) -> None:
        return self.fates.record_destroyed(entry_id, at, policy, sha256_verified)

    def record_forwarded(self, entry_id: int, at: datetime, remote_path: str) -> None:
        return self.fates.record_forwarded(entry_id, at, remote_path)

    # -- destruction certificates: self.destruction_certificates ------------------------

    def store_certificate(
        self, entry_id: int, account: str, destroyed_at: str, document: str
    ) -> StoredCertificate:
        return self.destruction_certificates.store_certificate(
            entry_id, account, destroyed_at, document
        )

    def certificate(self, entry_id: int) -> StoredCertificate | None:
        return self.destruction_certificates.certificate(entry_id)

    def certificates(
        self, account: str | None = None, since: datetime | None = None
    ) -> list[StoredCertificate]:
        return self.destruction_certificates.certificates(account, since)
