"""No per-request scans (issue 17 item 4): a receipt is one index lookup, a folder of
receipts one range of it, and what an account's area holds is a running total the catalog
keeps, not a walk of the area at each upload.

Observable without a clock: the rows the catalog hands back for one request
(``Catalog.queries.rows_read``), SQLite's own query plans, and the running total against
the live entries it sums.
"""

from __future__ import annotations

import ftplib
import os
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from intake.adapters.catalog import queries
from intake.adapters.catalog.catalog import MIGRATIONS, Catalog, FileStat, Found
from intake.core.clock import UTC, FixedClock, SystemClock
from tests.conftest import (
    TestInstance,
    connect,
    running,
    write_test_config,
)
from tests.sweeping import AGES_AGO, PastClock
from tests.test_bounds import upload_checked

T0 = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
SHA = "a" * 64
MEMBER = "mairie-a"
MANY = 3000
KIB = 1024


def uploaded(catalog: Catalog, path: str, size: int = 5, account: str = MEMBER) -> int:
    """An upload recorded as the listener records it: receiving, then received."""
    disk = f"/data/members/{account}{path}"
    catalog.begin_receiving(account, "member", path, disk, "sftp")
    stat = FileStat(size, 1, 2, 3)
    return catalog.record_received(account, "member", path, disk, size, SHA, "sftp", stat).id


def live_total(catalog: Catalog, account: str, area: str = "member") -> int:
    return sum(e.size for e in catalog.live_entries() if (e.account, e.area) == (account, area))


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "catalog.db", FixedClock(T0))


class TestPlans:
    @pytest.mark.parametrize(
        ("sql", "args"),
        [
            (queries.RECEIPT_SQL, (MEMBER, "/2026/a.bak")),
            (queries.RECEIPTS_BELOW_SQL, (MEMBER, "/2026/", "/20260")),
            (queries.RECEIPTS_TIME_SQL, (MEMBER, "/2026/", "/20260")),
        ],
    )
    def test_receipt_queries_search_the_receipts_index(
        self, catalog: Catalog, tmp_path: Path, sql: str, args: tuple[str, ...]
    ) -> None:
        """SQLite's plan of every receipts query searches ``entries_receipts`` (no scan of
        the table, no temporary sort), with thousands of entries in the account."""
        for n in range(50):
            uploaded(catalog, f"/2026/f{n}.bak")
        with sqlite3.connect(tmp_path / "catalog.db") as db:
            db.execute("ANALYZE")
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
        assert any("SEARCH entries USING" in p and "INDEX entries_receipts" in p for p in plan), (
            plan
        )
        assert not any(p.startswith("SCAN") or "TEMP B-TREE" in p for p in plan), plan

    def test_usage_is_one_primary_key_lookup(self, catalog: Catalog, tmp_path: Path) -> None:
        """What an area holds is read from one row, whatever the number of entries."""
        with sqlite3.connect(tmp_path / "catalog.db") as db:
            plan = [
                r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {queries.USAGE_SQL}", ("m", "member"))
            ]
        assert ["SEARCH usage USING PRIMARY KEY (account=? AND area=?)"] == plan


class TestReceiptLookups:
    def test_the_latest_held_upload_at_a_path(self, catalog: Catalog) -> None:
        """A receipt is the latest held upload at its path; files found on disk, other
        accounts, outbox files and destroyed entries have none."""
        old = uploaded(catalog, "/a.bak")
        catalog.record_destroy_intent(old, "p")
        catalog.record_destroyed(old, T0, "p", True)
        assert catalog.receipt(MEMBER, "/a.bak") is None
        new = uploaded(catalog, "/a.bak")
        uploaded(catalog, "/a.bak", account="mairie-b")
        catalog.record_found(
            [
                Found(
                    MEMBER,
                    "member",
                    "/s.bak",
                    "/data/members/mairie-a/s.bak",
                    1,
                    SHA,
                    FileStat(1, 1, 1, 1),
                )
            ]
        )
        entry = catalog.receipt(MEMBER, "/a.bak")
        assert entry is not None and new == entry.id
        assert catalog.receipt(MEMBER, "/s.bak") is None
        assert catalog.receipt("mairie-c", "/a.bak") is None

    def test_a_folder_reads_only_its_own_entries(self, catalog: Catalog) -> None:
        """Listing one folder hands back that folder's held entries, nothing else."""
        for n in range(20):
            uploaded(catalog, f"/2025/f{n}.bak")
        for n in range(3):
            uploaded(catalog, f"/2026/f{n}.bak")
        uploaded(catalog, "/2026x.bak")  # beside the folder, not in it
        before = catalog.queries.rows_read
        below = catalog.receipts_below(MEMBER, "/2026")
        assert [f"/2026/f{n}.bak" for n in range(3)] == [e.path for e in below]
        assert 3 == catalog.queries.rows_read - before
        assert 24 == len(catalog.receipts_below(MEMBER, "/"))
        assert catalog.receipts_time(MEMBER, "/2027") is None


class TestUsage:
    def test_the_running_total_follows_every_transition(self, catalog: Catalog) -> None:
        """Received, interrupted, renamed into another account, altered, vanished,
        destroyed, forwarded: the total is always the sum of the live entries' sizes."""

        def check() -> None:
            for account in (MEMBER, "mairie-b", "tech"):
                for area in ("member", "outbox"):
                    assert live_total(catalog, account, area) == catalog.usage(account, area)

        a = uploaded(catalog, "/a.bak", 100)
        b = uploaded(catalog, "/b.bak", 20)
        check()
        assert 120 == catalog.usage(MEMBER, "member")
        catalog.begin_receiving(MEMBER, "member", "/c.bak", "/data/members/mairie-a/c.bak", "ftps")
        catalog.record_interrupted("/data/members/mairie-a/c.bak", 7, "cut")
        check()
        uploaded(catalog, "/a.bak", 30)  # a second upload at the same name: its own entry
        check()
        catalog.record_moved(
            "/data/members/mairie-a/b.bak",
            "/data/members/mairie-b/b.bak",
            lambda disk: ("mairie-b", "member", "/b.bak"),
        )
        check()
        assert 20 == catalog.usage("mairie-b", "member")
        catalog.record_altered(a, "b" * 64)
        check()
        catalog.record_vanished(a, "/data/members/mairie-a/a.bak", "gone")
        check()
        catalog.record_destroy_intent(b, "p")
        check()  # intended is not destroyed: still held
        catalog.record_destroyed(b, T0, "p", True)
        check()
        assert 0 == catalog.usage("mairie-b", "member")
        disk = "/data/outbox/tech/v.bak"
        catalog.begin_receiving("tech", "outbox", "/outbox/v.bak", disk, "sftp")
        out = catalog.record_received(
            "tech", "outbox", "/outbox/v.bak", disk, 9, SHA, "sftp", None
        ).id
        catalog.record_forwarded(out, T0, "/in/v.bak")
        check()
        assert 9 == catalog.usage("tech", "outbox")
        catalog.record_found(
            [
                Found(
                    MEMBER,
                    "member",
                    f"/s{n}",
                    f"/data/members/mairie-a/s{n}",
                    n,
                    SHA,
                    FileStat(n, 1, n, 1),
                )
                for n in range(10)
            ]
        )
        check()
        assert 30 + 45 == catalog.usage(MEMBER, "member")

    def test_an_older_catalog_is_totalled_when_migrated(self, tmp_path: Path) -> None:
        """A catalog of schema 4 with entries gets its totals from them at the migration."""
        path = tmp_path / "catalog.db"
        db = Catalog(path, FixedClock(T0))
        uploaded(db, "/a.bak", 100)
        gone = uploaded(db, "/b.bak", 50)
        db.record_destroy_intent(gone, "p")
        db.record_destroyed(gone, T0, "p", True)
        db.close()
        with sqlite3.connect(path) as raw:  # back to schema 4, as a release before this one
            raw.execute("DROP TABLE usage")
            for name in ("usage_insert", "usage_update", "usage_delete"):
                raw.execute(f"DROP TRIGGER {name}")
            raw.execute("DROP INDEX entries_receipts")
            raw.execute("PRAGMA user_version = 4")
        assert 5 == len(MIGRATIONS)
        db = Catalog(path, FixedClock(T0))
        try:
            assert 100 == db.usage(MEMBER, "member")
            assert db.receipt(MEMBER, "/a.bak") is not None
        finally:
            db.close()


def catalogue_many(instance: TestInstance, count: int) -> None:
    """``count`` files put in the member's area and catalogued in one batch (one
    transaction through ``Catalog.record_found``), before the server starts."""
    area = instance.area(MEMBER) / "bulk"
    area.mkdir(parents=True)
    found = []
    for n in range(count):
        path = area / f"f{n:05}.bak"
        path.write_bytes(b"x")
        st = os.lstat(path)
        found.append(
            Found(
                MEMBER, "member", f"/bulk/{path.name}", str(path), 1, SHA,
                FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns),
            )
        )  # fmt: skip
    db = Catalog(instance.root / "state" / "catalog.db", SystemClock())
    try:
        assert count == sum(e is not None for e in db.record_found(found))
    finally:
        db.close()


class TestReceiptsAtScale:
    @pytest.mark.parametrize("protocol", ["sftp", "ftps"])
    def test_a_receipt_stat_reads_one_entry(self, instance: TestInstance, protocol: str) -> None:
        """With 3 000 entries in the account, stat and download of one receipt and the
        listing of its folder read only that entry from the catalog, not the account."""
        instance.add_account(MEMBER)
        catalogue_many(instance, MANY)
        with running(instance) as server:
            client = connect(server, protocol, MEMBER)
            try:
                client.mkdir("/2026")
                client.upload("/2026/base.zip", b"backup")
                client.upload("/top.zip", b"top")
                catalog = server.daemon.instance.catalog
                before = catalog.queries.rows_read
                assert ["base.zip.receipt.json"] == client.listdir("/.receipts/2026")
                assert client.download("/.receipts/2026/base.zip.receipt.json")
                if protocol == "sftp":
                    assert client.sftp.stat("/.receipts/2026/base.zip.receipt.json").st_size
                    assert client.sftp.stat("/.receipts/2026").st_size is not None
                else:
                    assert client.ftp.size("/.receipts/2026/base.zip.receipt.json")
                read = catalog.queries.rows_read - before
                assert read <= 10, f"{read} catalog rows read for one folder of one receipt"
                assert len(catalog.entries(MEMBER)) > MANY
            finally:
                client.close()


class TestQuota:
    def test_the_quota_holds_across_protocols_and_after_a_destruction(
        self, instance: TestInstance
    ) -> None:
        """1 MiB: 600 KiB over SFTP, then 600 KiB over FTPS is refused (one total for both
        protocols, also while another upload still arrives); once the sweeper destroyed the
        first file, the same FTPS upload fits."""
        write_test_config(instance.root, 'account_quota = "1 MiB"\n')
        instance.add_account(MEMBER)
        # received long ago, so the real sweep below finds them due (--now is dry runs only)
        with running(instance, PastClock(AGES_AGO)) as server:
            sftp = connect(server, "sftp", MEMBER)
            ftps = connect(server, "ftps", MEMBER)
            try:
                sftp.upload("/first.bak", b"1" * (600 * KIB))
                with pytest.raises((OSError, ftplib.Error, EOFError)):
                    upload_checked(ftps, "/second.bak", b"2" * (600 * KIB))
                assert not (instance.area(MEMBER) / "second.bak").exists()
                # In flight: an open SFTP upload of 300 KiB counts against an FTPS one.
                with sftp.sftp.open("/arriving.bak", "wb") as arriving:
                    arriving.write(b"3" * (300 * KIB))
                    arriving.flush()
                    with pytest.raises((OSError, ftplib.Error, EOFError)):
                        upload_checked(ftps, "/third.bak", b"4" * (200 * KIB))
                refusals = [
                    r for r in instance.audit("denied")
                    if r.get("path") in ("/second.bak", "/third.bak")
                ]  # fmt: skip
                assert {"ftps"} == {r["protocol"] for r in refusals}
                assert all("quota" in str(r["reason"]) for r in refusals)
            finally:
                sftp.close()
                ftps.close()
            assert 0 == instance.cli("sweep").returncode
            assert not (instance.area(MEMBER) / "first.bak").exists()
            ftps = connect(server, "ftps", MEMBER)
            try:
                upload_checked(ftps, "/second.bak", b"2" * (600 * KIB))
            finally:
                ftps.close()
            assert (600 * KIB) == (instance.area(MEMBER) / "second.bak").stat().st_size
