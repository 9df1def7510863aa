"""Moving or restoring an instance folder: the catalog follows, nothing is catalogued again.

The catalog stores disk paths relative to the instance's ``data/``; a catalog written by an
older intake (absolute paths) is converted by a migration.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

from intake.adapters.catalog.catalog import MIGRATIONS, Catalog
from intake.core.clock import SystemClock
from tests.clients import SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance, running, wait_for
from tests.sweeping import AGES_AGO, PastClock


def listed(instance: TestInstance) -> list[dict[str, object]]:
    out = instance.cli("catalog", "list", "--all", "--json", check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


class TestMovedInstance:
    def test_moved_folder_keeps_its_catalog_and_sweeps(
        self, instance: TestInstance, tmp_path: Path
    ) -> None:
        """init, upload (long ago), stop, ``mv`` the folder, serve again: the same entry (id,
        arrival time), nothing catalogued or vanished, and the sweep destroys the moved file."""
        instance.add_account("mairie-a")
        with running(instance, PastClock(AGES_AGO)) as then:  # received long ago: due now
            client = SftpClient(*then.sftp, "mairie-a", PASSWORD)
            client.upload("/db.bak", b"backup" * 1000)
            client.close()
        before = listed(instance)
        assert 1 == len(before)

        moved_root = tmp_path / "restored"
        instance.root.rename(moved_root)
        moved = TestInstance(moved_root, moved_root / "intake.toml")
        again = ServeProcess(moved)
        try:
            wait_for(lambda: "reconciled" in again.log(), timeout=30)
        finally:
            assert 0 == again.signal(signal.SIGTERM)
        assert before == listed(moved)
        assert [] == moved.audit("catalogued")
        assert [] == moved.audit("vanished")

        done = moved.cli("sweep", "--json")
        assert 0 == done.returncode, done.stderr
        assert 1 == json.loads(done.stdout)["summary"]["destroyed"]
        assert not (moved.area("mairie-a") / "db.bak").exists()
        (certificate,) = moved.audit("destroyed")
        assert "/db.bak" == certificate["path"]
        assert "destroyed" == listed(moved)[0]["state"]

    def test_old_absolute_paths_are_converted(self, tmp_path: Path) -> None:
        """A catalog written with absolute disk paths (schema 3) reads, after the migration,
        as paths in the instance's data/ wherever the instance now is."""
        old_data = tmp_path / "old" / "data"
        state = tmp_path / "new" / "state"
        state.mkdir(parents=True)
        db = sqlite3.connect(state / "catalog.db")
        for script in MIGRATIONS[:3]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 3")
        rows = [
            ("mairie-a", "member", "/sub/db.bak", f"{old_data}/members/mairie-a/sub/db.bak"),
            ("tech", "outbox", "/outbox/x.zip", f"{old_data}/outbox/tech/x.zip"),
        ]
        for account, area, path, disk in rows:
            db.execute(
                "INSERT INTO entries (account, area, path, disk_path, size, sha256, received_at,"
                " state, source) VALUES (?, ?, ?, ?, 1, 'ab', '2026-01-01T00:00:00Z',"
                " 'received', 'upload')",
                (account, area, path, disk),
            )
        db.commit()
        db.close()
        catalog = Catalog(state / "catalog.db", SystemClock())
        try:
            new_data = (tmp_path / "new" / "data").resolve()
            assert [
                str(new_data / "members/mairie-a/sub/db.bak"),
                str(new_data / "outbox/tech/x.zip"),
            ] == [e.disk_path for e in catalog.entries()]
        finally:
            catalog.close()
        stored = sqlite3.connect(state / "catalog.db").execute("SELECT disk_path FROM entries")
        assert ["members/mairie-a/sub/db.bak", "outbox/tech/x.zip"] == [r[0] for r in stored]
