"""The catalog adapter: the arrival state machine, the sweeper's calls, migrations.

Table-driven where it can be, with a fixed clock (the catalog never reads the time itself).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from intake.adapters.catalog.catalog import (
    SCHEMA_VERSION,
    Catalog,
    FileStat,
    Found,
    IllegalTransition,
)
from intake.core.clock import UTC, FixedClock
from intake.core.errors import NotFound, UsageError
from intake.core.model import ALLOWED_TRANSITIONS, ArrivalState

T0 = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
SHA = "a" * 64
STAT = FileStat(size=5, mtime_ns=1, ino=2, ctime_ns=3)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def catalog(tmp_path: Path, clock: FixedClock) -> Catalog:
    return Catalog(tmp_path / "catalog.db", clock)


def received(catalog: Catalog, name: str = "a.bak", account: str = "m") -> int:
    disk = f"/data/members/{account}/{name}"
    catalog.begin_receiving(account, "member", f"/{name}", disk, "sftp")
    return catalog.record_received(account, "member", f"/{name}", disk, 5, SHA, "sftp", STAT).id


class TestUploads:
    def test_received_at_is_the_close_not_the_open(
        self, catalog: Catalog, clock: FixedClock
    ) -> None:
        """The server's clock at the close is the arrival time; the id stays the same."""
        entry_id = catalog.begin_receiving("m", "member", "/a.bak", "/d/members/m/a.bak", "sftp")
        clock.advance(timedelta(minutes=5))
        entry = catalog.record_received(
            "m", "member", "/a.bak", "/d/members/m/a.bak", 5, SHA, "sftp", STAT
        )
        assert (entry_id, T0 + timedelta(minutes=5)) == (entry.id, entry.received_at)
        assert ArrivalState.RECEIVED == entry.state
        assert ["receiving", "received"] == [h["event"] for h in catalog.history(entry_id)]

    def test_attempts_are_hidden_unless_asked(self, catalog: Catalog) -> None:
        """Receiving and interrupted uploads are not backups: listed only on request."""
        catalog.begin_receiving("m", "member", "/cut.bak", "/d/members/m/cut.bak", "sftp")
        catalog.record_interrupted("/d/members/m/cut.bak", 10, "connection lost")
        assert [] == catalog.entries()
        [attempt] = catalog.entries(include_attempts=True)
        assert ArrivalState.INTERRUPTED == attempt.state

    def test_found_file_already_receiving_is_not_catalogued_twice(self, catalog: Catalog) -> None:
        """A scan that meets a file being received leaves it to the upload."""
        disk = "/d/members/m/a.bak"
        catalog.begin_receiving("m", "member", "/a.bak", disk, "sftp")
        assert [None] == catalog.record_found([Found("m", "member", "/a.bak", disk, 5, SHA, STAT)])
        catalog.record_received("m", "member", "/a.bak", disk, 5, SHA, "sftp", STAT)
        assert [None] == catalog.record_found([Found("m", "member", "/a.bak", disk, 5, SHA, STAT)])
        assert 1 == len(catalog.entries())

    def test_move_keeps_the_entry(self, catalog: Catalog) -> None:
        """A rename updates the path of the one entry, whoever reports it first."""
        entry_id = received(catalog, "a.filepart")

        def locate(disk: str) -> tuple[str, str, str]:
            return "m", "member", "/" + disk.rsplit("/", 1)[1]

        old, new = "/data/members/m/a.filepart", "/data/members/m/a.bak"
        assert entry_id == catalog.record_moved(old, new, locate).id  # type: ignore[union-attr]
        assert catalog.record_moved(old, new, locate) is None  # the second report: no-op
        [entry] = catalog.entries()
        assert ("/a.bak", new) == (entry.path, entry.disk_path)


class TestStateMachine:
    @pytest.mark.parametrize(
        ("steps", "final"),
        [
            (["forwarded", "destroyed"], ArrivalState.DESTROYED),
            (["destroyed"], ArrivalState.DESTROYED),
            (["altered", "destroyed"], ArrivalState.DESTROYED),
            (["vanished"], ArrivalState.VANISHED),
            (["forwarded", "altered", "vanished"], ArrivalState.VANISHED),
        ],
    )
    def test_allowed_paths(self, catalog: Catalog, steps: list[str], final: ArrivalState) -> None:
        """Every path of the state machine the sweeper and cataloguer take."""
        entry_id = received(catalog)
        for step in steps:
            if step == "forwarded":
                catalog.record_forwarded(entry_id, T0, "/remote/a.bak")
            elif step == "destroyed":
                catalog.record_destroy_intent(entry_id, "p")
                catalog.record_destroyed(entry_id, T0, "p", sha256_verified=True)
            elif step == "altered":
                catalog.record_altered(entry_id, "b" * 64)
            elif step == "vanished":
                catalog.record_vanished(entry_id, "/data/members/m/a.bak", "gone")
        assert final == catalog.get(entry_id).state

    def test_refused_moves(self, catalog: Catalog) -> None:
        """A destroyed arrival cannot be forwarded, altered, or intended for destruction."""
        entry_id = received(catalog)
        catalog.record_destroy_intent(entry_id, "p")
        catalog.record_destroyed(entry_id, T0, "p", sha256_verified=True)
        with pytest.raises(IllegalTransition):
            catalog.record_forwarded(entry_id, T0, "/x")
        with pytest.raises(IllegalTransition):
            catalog.record_altered(entry_id, "b" * 64)
        with pytest.raises(IllegalTransition):
            catalog.record_destroy_intent(entry_id, "p")

    def test_every_terminal_state_is_terminal(self) -> None:
        """The one written state machine: destroyed, interrupted, vanished lead nowhere."""
        terminal = {s for s, targets in ALLOWED_TRANSITIONS.items() if not targets}
        assert {ArrivalState.DESTROYED, ArrivalState.INTERRUPTED, ArrivalState.VANISHED} == terminal

    def test_destroyed_twice_is_a_no_op(self, catalog: Catalog) -> None:
        """A sweeper rerun after a crash records the outcome again without failing."""
        entry_id = received(catalog)
        catalog.record_destroy_intent(entry_id, "p")
        assert [entry_id] == [e.id for e in catalog.pending_destroy_intents()]
        catalog.record_destroyed(entry_id, T0, "p", sha256_verified=False)
        catalog.record_destroyed(entry_id, T0 + timedelta(hours=1), "p", sha256_verified=False)
        entry = catalog.get(entry_id)
        assert (T0, "p") == (entry.destroyed_at, entry.policy)
        assert [] == catalog.pending_destroy_intents()
        events = [h["event"] for h in catalog.history(entry_id)]
        assert 1 == events.count("destroyed")

    def test_intent_protects_from_vanished(self, catalog: Catalog) -> None:
        """A file the sweeper intends to destroy is never reported vanished."""
        entry_id = received(catalog)
        catalog.record_destroy_intent(entry_id, "p")
        assert not catalog.record_vanished(entry_id, "/data/members/m/a.bak", "gone")
        assert ArrivalState.RECEIVED == catalog.get(entry_id).state


class TestReading:
    def test_entries_oldest_first_and_by_account(self, catalog: Catalog, clock: FixedClock) -> None:
        """``entries`` is the history, oldest first; ``live_entries`` what is on disk."""
        first = received(catalog, "1.bak", "a")
        clock.advance(timedelta(days=1))
        second = received(catalog, "2.bak", "b")
        catalog.record_vanished(second, "/data/members/b/2.bak", "gone")
        assert [first, second] == [e.id for e in catalog.entries()]
        assert [second] == [e.id for e in catalog.entries("b")]
        assert [first] == [e.id for e in catalog.live_entries()]
        catalog.set_policy(first, "member-backups")
        assert "member-backups" == catalog.get(first).policy

    def test_unknown_id(self, catalog: Catalog) -> None:
        """An unknown id is ``NotFound`` (exit 1 for the CLI)."""
        with pytest.raises(NotFound):
            catalog.get(999)
        with pytest.raises(NotFound):
            catalog.history(999)


class TestSchema:
    def test_created_with_wal_and_current_version(self, tmp_path: Path, clock: FixedClock) -> None:
        """A new catalog is in WAL mode at the latest schema version; reopening is harmless."""
        path = tmp_path / "catalog.db"
        Catalog(path, clock).close()
        Catalog(path, clock).close()
        db = sqlite3.connect(path)
        try:
            assert "wal" == db.execute("PRAGMA journal_mode").fetchone()[0]
            assert SCHEMA_VERSION == db.execute("PRAGMA user_version").fetchone()[0]
        finally:
            db.close()

    def test_newer_schema_is_refused(self, tmp_path: Path, clock: FixedClock) -> None:
        """A catalog written by a newer intake is not touched."""
        path = tmp_path / "catalog.db"
        Catalog(path, clock).close()
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
        with pytest.raises(UsageError):
            Catalog(path, clock)
