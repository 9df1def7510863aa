"""The cataloguer against the real server: every arrival recorded once, with its SHA-256.

Uploads go through real clients; files dropped, changed or removed by hand are real file
operations in the instance's ``data/``. What is checked is what an operator sees:
``intake catalog list|show|scan`` and the audit log. Waiting is a bounded poll, never a
speed assertion (speed lives in ``bench/catalog_scan.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from intake.adapters.catalog.catalog import Catalog, Entry
from intake.core.clock import UTC, SystemClock, parse_iso
from tests.clients import SftpClient
from tests.conftest import (
    PASSWORD,
    RunningServer,
    ServeProcess,
    TestInstance,
    connect,
    running,
    wait_for,
    write_test_config,
)

PROTOCOLS = ["sftp", "ftps"]


def catalog_of(instance: TestInstance) -> Catalog:
    return Catalog(instance.root / "state" / "catalog.db", SystemClock())


def listed(instance: TestInstance, *extra: str) -> list[dict[str, Any]]:
    """``intake catalog list --json``, as an operator's script reads it."""
    proc = instance.cli("catalog", "list", "--json", *extra, check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def entry_at(catalog: Catalog, account: str, path: str, state: str = "received") -> Entry | None:
    for entry in catalog.entries(account, include_attempts=True):
        if entry.path == path and entry.state.value == state:
            return entry
    return None


@pytest.fixture
def catalog(instance: TestInstance) -> Iterator[Catalog]:
    cat = catalog_of(instance)
    yield cat
    cat.close()


@pytest.fixture
def roomy_server(instance: TestInstance) -> Iterator[RunningServer]:
    """The real server, letting one address (the tests' loopback) stand for 40 members,
    each of whom would log in from its own network."""
    write_test_config(
        instance.root,
        'max_connections_per_ip = 40\nmax_startups_per_network = 40\nmax_startups = "40:50:100"\n',
    )
    with running(instance) as server:
        yield server


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestUploads:
    def test_upload_is_catalogued_with_size_and_sha256(
        self, server: RunningServer, catalog: Catalog, protocol: str
    ) -> None:
        """An upload appears in ``catalog list`` with its size, SHA-256 and server time."""
        server.instance.add_account("mairie-a")
        data = os.urandom(300_000)
        client = connect(server, protocol, "mairie-a")
        before = datetime.now(UTC)
        try:
            client.upload("/compta.bak", data)
        finally:
            client.close()
        after = datetime.now(UTC)
        wait_for(lambda: entry_at(catalog, "mairie-a", "/compta.bak"), timeout=10)
        [entry] = listed(server.instance)
        assert entry["account"] == "mairie-a"
        assert entry["path"] == "/compta.bak"
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["state"] == "received"
        assert before - timedelta(seconds=1) <= parse_iso(entry["received_at"]) <= after
        assert entry["received_at"].endswith("Z")
        assert (entry["destroyed_at"], entry["forwarded_at"]) == (None,) * 2
        assert "member-backups" == entry["policy"]  # set at arrival, with its end date
        assert entry["expires_at"] is not None
        assert isinstance(entry["id"], int)
        # Uploads are recorded, not audited a second time as "catalogued".
        assert [] == server.instance.audit("catalogued")

    def test_thirty_concurrent_uploads_give_thirty_right_entries(
        self, roomy_server: RunningServer, catalog: Catalog
    ) -> None:
        """30 members uploading at once: 30 entries, each with its own right hash."""
        server = roomy_server
        payloads = {f"m{i:02d}": os.urandom(20_000 + i * 997) for i in range(30)}
        for name in payloads:
            server.instance.add_account(name)

        def upload(name: str) -> None:
            client = SftpClient(*server.sftp, name, PASSWORD)
            try:
                client.upload(f"/{name}.bak", payloads[name])
            finally:
                client.close()

        with ThreadPoolExecutor(max_workers=30) as pool:
            list(pool.map(upload, payloads))
        wait_for(lambda: len(catalog.entries()) >= 30)
        time.sleep(0.5)  # let any late watchdog event try (and fail) to add a duplicate
        entries = listed(server.instance)
        assert 30 == len(entries)
        assert {
            (n, f"/{n}.bak", len(d), hashlib.sha256(d).hexdigest()) for n, d in payloads.items()
        } == {(e["account"], e["path"], e["size"], e["sha256"]) for e in entries}

    def test_filepart_then_rename_gives_one_entry_at_the_final_path(
        self, server: RunningServer, catalog: Catalog
    ) -> None:
        """WinSCP's temporary name then rename: one entry, at the final name, same id."""
        server.instance.add_account("mairie-w")
        client = SftpClient(*server.sftp, "mairie-w", PASSWORD)
        try:
            client.upload("/paie.bak.filepart", b"payload " * 1000)
            first = wait_for(lambda: entry_at(catalog, "mairie-w", "/paie.bak.filepart"))
            client.rename("/paie.bak.filepart", "/paie.bak")
        finally:
            client.close()
        wait_for(lambda: entry_at(catalog, "mairie-w", "/paie.bak"))
        time.sleep(0.5)  # the watchdog's view of the rename must not add a second entry
        [entry] = listed(server.instance)
        assert (first.id, "/paie.bak") == (entry["id"], entry["path"])
        assert hashlib.sha256(b"payload " * 1000).hexdigest() == entry["sha256"]
        shown = json.loads(
            server.instance.cli("catalog", "show", str(first.id), "--json", check=True).stdout
        )
        assert ["receiving", "received", "policy", "renamed"] == [
            h["event"] for h in shown["history"]
        ]

    def test_outbox_deposit_is_catalogued_under_the_technician(
        self, server: RunningServer, catalog: Catalog
    ) -> None:
        """A technician's deposit: its account, path starting with /outbox/."""
        server.instance.add_account("tech-jean", "technician")
        client = SftpClient(*server.sftp, "tech-jean", PASSWORD)
        try:
            client.upload("/outbox/pour-editeur.bak", b"to the vendor")
        finally:
            client.close()
        wait_for(lambda: catalog.entries("tech-jean"))
        [entry] = listed(server.instance, "--account", "tech-jean")
        assert ("tech-jean", "/outbox/pour-editeur.bak") == (entry["account"], entry["path"])

    def test_interrupted_upload_is_never_catalogued_as_received(
        self, server: RunningServer, catalog: Catalog
    ) -> None:
        """A connection cut mid-upload: no backup listed; its attempt says interrupted."""
        server.instance.add_account("mairie-i")
        client = SftpClient(*server.sftp, "mairie-i", PASSWORD)
        handle = client.sftp.open("/cut.bak", "wb")
        handle.write(b"x" * 100_000)
        client.transport.close()  # the client dies with the file open
        wait_for(lambda: entry_at(catalog, "mairie-i", "/cut.bak", "interrupted"))
        assert [] == listed(server.instance)
        [attempt] = listed(server.instance, "--all")
        assert ("/cut.bak", "interrupted", None) == (
            attempt["path"],
            attempt["state"],
            attempt["sha256"],
        )
        assert not (server.instance.area("mairie-i") / "cut.bak").exists()


class TestFilesOutsideUploads:
    def test_files_dropped_while_stopped_are_catalogued_at_start(
        self, instance: TestInstance, catalog: Catalog
    ) -> None:
        """An operator's drop and a restored folder, made while the server was off."""
        area = instance.area("mairie-d")
        (area / "2025").mkdir(parents=True)
        (area / "old.bak").write_bytes(b"dropped by hand")
        (area / "2025" / "dec.bak").write_bytes(b"restored")
        os.utime(area / "old.bak", (946684800, 946684800))  # mtime in 2000: not the arrival
        started = datetime.now(UTC)
        with running(instance):
            wait_for(lambda: len(catalog.entries()) >= 2)
        entries = {e["path"]: e for e in listed(instance)}
        assert {"/old.bak", "/2025/dec.bak"} == set(entries)
        old = entries["/old.bak"]
        assert hashlib.sha256(b"dropped by hand").hexdigest() == old["sha256"]
        assert parse_iso(old["received_at"]) >= started - timedelta(seconds=1)
        assert "scan" == old["source"]
        audited = {r["path"] for r in instance.audit("catalogued")}
        assert {"/old.bak", "/2025/dec.bak"} == audited

    def test_file_dropped_by_hand_is_catalogued_at_its_close(
        self, server: RunningServer, catalog: Catalog
    ) -> None:
        """A file written into an area (even a brand-new folder) behind the server's back."""
        area = server.instance.area("mairie-h")
        area.mkdir(parents=True)
        (area / "drop.bak").write_bytes(b"a" * 5000)
        (area / "new" / "deeper").mkdir(parents=True)
        (area / "new" / "deeper" / "fast.bak").write_bytes(b"written at once")
        wait_for(lambda: len(catalog.entries("mairie-h")) >= 2)
        entries = {e.path: e for e in catalog.entries("mairie-h")}
        assert {"/drop.bak", "/new/deeper/fast.bak"} == set(entries)
        assert hashlib.sha256(b"a" * 5000).hexdigest() == entries["/drop.bak"].sha256
        time.sleep(0.5)
        assert 2 == len(catalog.entries("mairie-h"))
        [record] = [r for r in server.instance.audit("catalogued") if r["path"] == "/drop.bak"]
        assert (record["account"], record["size"]) == ("mairie-h", 5000)

    def test_folder_moved_in_is_catalogued(
        self, server: RunningServer, catalog: Catalog, tmp_path: Path
    ) -> None:
        """A restored folder moved into an area (one rename, no close event per file)."""
        restore = tmp_path / "restore"
        (restore / "sub").mkdir(parents=True)
        for i in range(5):
            (restore / "sub" / f"r{i}.bak").write_bytes(b"r" * i)
        area = server.instance.area("mairie-r")
        area.mkdir(parents=True)
        shutil.move(str(restore), str(area / "restore"))
        wait_for(lambda: len(catalog.entries("mairie-r")) >= 5)
        time.sleep(0.5)
        assert {f"/restore/sub/r{i}.bak" for i in range(5)} == {
            e.path for e in catalog.entries("mairie-r")
        }

    def test_renames_by_hand_keep_the_entry(self, server: RunningServer, catalog: Catalog) -> None:
        """An operator renaming a file, then its folder: the same entries follow, no new one."""
        area = server.instance.area("mairie-n")
        (area / "a").mkdir(parents=True)
        (area / "a" / "one.bak").write_bytes(b"one")
        (area / "a" / "two.bak").write_bytes(b"two")
        wait_for(lambda: len(catalog.entries("mairie-n")) >= 2)
        ids = {e.path: e.id for e in catalog.entries("mairie-n")}
        (area / "a" / "one.bak").rename(area / "a" / "uno.bak")
        wait_for(lambda: entry_at(catalog, "mairie-n", "/a/uno.bak"))
        (area / "a").rename(area / "b")
        wait_for(lambda: entry_at(catalog, "mairie-n", "/b/two.bak"))
        time.sleep(0.5)
        assert {"/b/uno.bak": ids["/a/one.bak"], "/b/two.bak": ids["/a/two.bak"]} == {
            e.path: e.id for e in catalog.entries("mairie-n")
        }
        assert [] == server.instance.audit("vanished")

    def test_removed_file_becomes_vanished(self, server: RunningServer, catalog: Catalog) -> None:
        """A backup deleted behind the server's back is reported, not forgotten."""
        server.instance.add_account("mairie-v")
        client = SftpClient(*server.sftp, "mairie-v", PASSWORD)
        try:
            client.upload("/gone.bak", b"soon gone")
        finally:
            client.close()
        entry = wait_for(lambda: entry_at(catalog, "mairie-v", "/gone.bak"))
        (server.instance.area("mairie-v") / "gone.bak").unlink()
        wait_for(lambda: catalog.get(entry.id).state.value == "vanished")
        [listed_entry] = listed(server.instance)
        assert "vanished" == listed_entry["state"]
        [record] = server.instance.audit("vanished")
        assert ("mairie-v", "/gone.bak") == (record["account"], record["path"])

    def test_changed_file_becomes_altered(self, server: RunningServer, catalog: Catalog) -> None:
        """A backup whose content changed on disk no longer matches its SHA-256: altered."""
        server.instance.add_account("mairie-x")
        client = SftpClient(*server.sftp, "mairie-x", PASSWORD)
        try:
            client.upload("/x.bak", b"original content")
        finally:
            client.close()
        entry = wait_for(lambda: entry_at(catalog, "mairie-x", "/x.bak"))
        path = server.instance.area("mairie-x") / "x.bak"
        path.chmod(0o640)
        with path.open("ab") as handle:
            handle.write(b" tampered")
        wait_for(lambda: catalog.get(entry.id).state.value == "altered")
        [record] = server.instance.audit("altered")
        assert hashlib.sha256(b"original content tampered").hexdigest() == record["actual_sha256"]
        assert hashlib.sha256(b"original content").hexdigest() == record["sha256"]
        assert "altered" == listed(server.instance)[0]["state"]

    def test_queue_overflow_triggers_a_reconcile(
        self, server: RunningServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """watchdog only logs an inotify overflow: that warning makes the cataloguer rescan."""
        cataloguer = server.daemon.cataloguer
        assert cataloguer is not None
        wait_for(lambda: cataloguer.reports)
        done = len(cataloguer.reports)
        with caplog.at_level(logging.INFO, logger="intake.cataloguer"):
            logging.getLogger("watchdog.observers.inotify_c").warning(
                "Inotify queue overflowed; filesystem events were lost"
            )
            wait_for(lambda: len(cataloguer.reports) > done)
        assert any("inotify queue overflow" in r.getMessage() for r in caplog.records)
        assert done + 1 == len(cataloguer.reports)


class TestScan:
    def test_scan_catalogues_vanishes_and_hashes_only_what_changed(
        self, instance: TestInstance
    ) -> None:
        """``catalog scan`` with the server off: new files in, gone files out, no rehash."""
        area = instance.area("mairie-s")
        area.mkdir(parents=True)
        for i in range(20):
            (area / f"f{i}.bak").write_bytes(b"s" * i)
        first = json.loads(instance.cli("catalog", "scan", "--json", check=True).stdout)
        assert (20, 20, 20) == (first["files"], first["hashed"], first["catalogued"])
        again = json.loads(instance.cli("catalog", "scan", "--json", check=True).stdout)
        assert (20, 0, 0) == (again["files"], again["hashed"], again["catalogued"])
        (area / "f3.bak").unlink()
        (area / "f4.bak").chmod(0o640)
        (area / "f4.bak").write_bytes(b"changed")
        proc = instance.cli("catalog", "scan", check=True)
        assert "1 vanished, 1 altered" in proc.stdout
        states = {e["path"]: e["state"] for e in listed(instance)}
        assert ("vanished", "altered", "received") == (
            states["/f3.bak"],
            states["/f4.bak"],
            states["/f5.bak"],
        )
        assert 20 == len(states)

    def test_destroy_intent_is_not_vanished(self, instance: TestInstance) -> None:
        """A file the sweeper is destroying (intent written) never counts as vanished."""
        area = instance.area("mairie-p")
        area.mkdir(parents=True)
        (area / "old.bak").write_bytes(b"expired")
        instance.cli("catalog", "scan", check=True)
        catalog = catalog_of(instance)
        try:
            [entry] = catalog.entries()
            catalog.record_destroy_intent(entry.id, "member-backups")
            (area / "old.bak").unlink()
            instance.cli("catalog", "scan", check=True)
            assert [entry.id] == [e.id for e in catalog.pending_destroy_intents()]
            catalog.record_destroyed(entry.id, datetime.now(UTC), "member-backups", True)
        finally:
            catalog.close()
        [shown] = listed(instance)
        assert ("destroyed", "member-backups") == (shown["state"], shown["policy"])
        assert shown["destroyed_at"] is not None
        assert [] == instance.audit("vanished")


class TestCrash:
    def test_kill_9_mid_upload_then_restart_reconciles(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """``serve`` killed mid-upload: the catalog opens, the cut upload is interrupted,
        files dropped meanwhile are catalogued at the next start."""
        instance.add_account("mairie-k")
        client = SftpClient(*serve_process.addresses["sftp"], "mairie-k", PASSWORD)
        handle = client.sftp.open("/big.bak", "wb")
        handle.write(b"k" * 1_000_000)
        serve_process.kill()
        client.transport.close()
        assert [] == listed(instance)
        [attempt] = listed(instance, "--all")
        assert ("/big.bak", "receiving") == (attempt["path"], attempt["state"])
        (instance.area("mairie-k") / "meanwhile.bak").write_bytes(b"dropped while down")
        restarted = ServeProcess(instance)
        try:
            catalog = catalog_of(instance)
            try:
                wait_for(lambda: entry_at(catalog, "mairie-k", "/meanwhile.bak"))
            finally:
                catalog.close()
            assert 0 == restarted.signal(signal.SIGTERM)
        finally:
            restarted.kill()
        states = {e["path"]: e["state"] for e in listed(instance, "--all")}
        assert {"/big.bak": "interrupted", "/meanwhile.bak": "received"} == states
        assert not (instance.area("mairie-k") / "big.bak").exists()


class TestCommands:
    def test_show_unknown_id_and_bad_id(self, instance: TestInstance) -> None:
        """``catalog show 999``: one line, exit 1; ``catalog show abc``: exit 2."""
        missing = instance.cli("catalog", "show", "999")
        assert 1 == missing.returncode
        assert 1 == len(missing.stderr.strip().splitlines())
        assert "999" in missing.stderr
        assert 2 == instance.cli("catalog", "show", "abc").returncode
        assert 2 == instance.cli("catalog", "list", "--account", "Bad Name").returncode

    def test_human_output(self, instance: TestInstance) -> None:
        """Tables for people: human sizes, local and UTC times, history in ``show``."""
        area = instance.area("mairie-t")
        area.mkdir(parents=True)
        (area / "t.bak").write_bytes(b"t" * 1536)
        instance.cli("catalog", "scan", check=True)
        table = instance.cli("catalog", "list", check=True).stdout
        assert "1.5 KiB" in table
        assert "/t.bak" in table
        assert "RECEIVED (UTC)" in table
        [entry] = listed(instance)
        shown = instance.cli("catalog", "show", str(entry["id"]), check=True).stdout
        assert "1536 bytes" in shown
        assert "catalogued" in shown
        assert entry["sha256"] in shown
        assert (
            "no catalogued arrival"
            in instance.cli("catalog", "list", "--account", "nobody", check=True).stdout
        )
