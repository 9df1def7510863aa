"""What the sweep tests (tests/test_sweep.py, tests/test_certificates.py...) set up alike.

Backups put on disk by hand and catalogued, and the states a sweep killed halfway leaves
behind, written straight into the catalog and the audit log as the killed run would have.

Old arrivals: a real sweep always reads the real clock (``--now`` is for ``--dry-run``
only), so a test makes a backup old the way it happens in life, by receiving it in the
past: the cataloguer (``catalogue``) or the in-process server (``tests.conftest.running``)
is given a clock set back (``PastClock``), through the same ``Clock`` every part of intake
takes; the catalog then holds the ``received_at`` a server running then would have written.
Nothing in intake reads a test-only setting.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from intake.adapters.audit.writer import AuditLog
from intake.adapters.catalog.catalog import Catalog
from intake.adapters.catalog.model import Entry
from intake.core.clock import FixedClock, SystemClock, parse_iso
from intake.core.config import load
from intake.services.cataloguer.cataloguer import Cataloguer
from intake.services.instance import open_instance
from intake.services.retention import RetentionBook
from tests.conftest import TestInstance

FAR = "2040-01-01T00:00:00Z"  # every member backup is due, long before this (dry runs)
AGES_AGO = "2025-06-02T08:00:00Z"  # received then, every member backup is due today


class PastClock:
    """The wall clock set back to ``at``: it runs on from there, like a server that ran then."""

    def __init__(self, at: str | dt.datetime) -> None:
        start = parse_iso(at) if isinstance(at, str) else at
        self._behind = SystemClock().now() - start

    def now(self) -> dt.datetime:
        return SystemClock().now() - self._behind


def catalogue(instance: TestInstance, at: str | None = None) -> None:
    """``intake catalog scan``; with ``at``, the scan as it ran at that time (the files it
    catalogues are received then)."""
    if at is None:
        instance.cli("catalog", "scan", check=True)
        return
    inst = open_instance(load(instance.config_file), FixedClock(parse_iso(at)))
    try:
        retention = RetentionBook(inst.catalog, inst.config.policies_dir, inst.accounts)
        retention.reload()
        Cataloguer(
            inst.catalog, inst.storage, inst.audit, inst.clock, protocol="cli", retention=retention
        ).reconcile(None, "intake catalog scan")
    finally:
        inst.close()


def drop(
    instance: TestInstance, member: str, files: dict[str, bytes], received: str | None = None
) -> None:
    """Files put into a member's area by hand, then catalogued (``catalogue``): received
    now, or at ``received`` (e.g. ``AGES_AGO``, so that a real sweep destroys them)."""
    for rel, data in files.items():
        path = instance.area(member) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    catalogue(instance, received)


def unlinked_under_intent(db: Catalog) -> Entry:
    """A killed sweep's first steps on the one live entry: the intent recorded, the file
    unlinked; nothing more."""
    (e,) = db.live_entries()
    db.record_destroy_intent(e.id, "member-backups")
    Path(e.disk_path).unlink()
    return e


def destroyed_but_not_catalogued(instance: TestInstance) -> Entry:
    """A sweep killed after the ``destroyed`` record (destroyed 2039-06-01), before the
    catalog knew."""
    clock = FixedClock(parse_iso("2039-06-01T00:00:00Z"))
    db = Catalog(instance.root / "state" / "catalog.db", clock)
    audit = AuditLog(instance.root / "log", clock)
    try:
        e = unlinked_under_intent(db)
        audit.record(
            "destroyed",
            protocol="sweeper",
            entry=e.id,
            account=e.account,
            path=e.path,
            policy="member-backups",
            integrity="verified",
            destroyed_at="2039-06-01T00:00:00.000000Z",
        )
    finally:
        db.close()
        audit.close()
    return e
