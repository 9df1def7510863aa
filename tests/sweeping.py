"""What the sweep tests (tests/test_sweep.py, tests/test_certificates.py) set up alike.

Backups put on disk by hand and catalogued, and the states a sweep killed halfway leaves
behind, written straight into the catalog and the audit log as the killed run would have.
"""

from __future__ import annotations

from pathlib import Path

from intake.adapters.audit.writer import AuditLog
from intake.adapters.catalog.catalog import Catalog
from intake.adapters.catalog.model import Entry
from intake.core.clock import FixedClock, parse_iso
from tests.conftest import TestInstance

FAR = "2040-01-01T00:00:00Z"  # every member backup is due, long before this


def drop(instance: TestInstance, member: str, files: dict[str, bytes]) -> None:
    """Files put into a member's area by hand, then catalogued by ``intake catalog scan``."""
    for rel, data in files.items():
        path = instance.area(member) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    instance.cli("catalog", "scan", check=True)


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
