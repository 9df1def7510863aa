"""The catalog: every arrival and its fate, in SQLite at ``state/catalog.db``.

The entry point: ``Catalog`` and the values it hands out are imported from here. The work is
split by job (each module's docstring states its own rules):

    catalog_model      the schema (numbered migrations), Entry / Known / Found / FileStat,
                       the mapping from rows, the SQL fragments the others share
    catalog_queries    a connection per thread, the shared write steps, every read
    catalog_arrivals   uploads, and files found, renamed, changed or gone on disk
    catalog_fates      policies, forwarding, destruction (the sweeper's writes)
    catalog_certificates  the signed destruction certificates, one per destroyed entry

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
  the catalog at once. A connection per thread, WAL, ``synchronous=FULL``, and short
  ``BEGIN IMMEDIATE`` transactions that re-check what they depend on before writing (so two
  writers can never catalogue one file twice); ``intake.adapters.sqlite`` is the seam.
- Schema changes are numbered migrations (``MIGRATIONS``), applied in order, recorded in
  ``PRAGMA user_version``; a catalog from a newer intake is refused, never rewritten.
"""

from __future__ import annotations

from intake.adapters.catalog.arrivals import ArrivalRecords, Locate
from intake.adapters.catalog.certificates import CertificateRecords, StoredCertificate
from intake.adapters.catalog.fates import FateRecords
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


class Catalog(ArrivalRecords, FateRecords, CertificateRecords):
    """The catalog database; thread-safe (a connection per thread). See the module docstring."""
