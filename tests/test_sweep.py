"""``intake sweep`` end to end: what an operator and an auditor see.

Entries reach the catalog through real uploads (the in-process server) or through files
on disk and a catalogue scan; their ``received_at`` is the server's clock. A real sweep
reads the real clock, so a backup is made due by receiving it in the past (a server or a
scan on a clock set back: ``tests.sweeping``); ``--dry-run --now`` asks about any time.
Checked: the disk, ``intake catalog``, the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import time
from collections import Counter

from intake.adapters.catalog.catalog import Catalog
from intake.core.clock import SystemClock, isoformat, parse_iso
from intake.core.durations import add_months
from intake.services.sweeper.sweep import RunLock
from tests.clients import SftpClient
from tests.conftest import (
    INTAKE,
    PASSWORD,
    ServeProcess,
    TestInstance,
    running,
    wait_for,
)
from tests.sweeping import (
    AGES_AGO,
    FAR,
    PastClock,
    destroyed_but_not_catalogued,
    drop,
    unlinked_under_intent,
)


def catalog(instance: TestInstance) -> dict[str, dict[str, object]]:
    listed = json.loads(instance.cli("catalog", "list", "--json", check=True).stdout)
    return {f"{e['account']}:{e['path']}": e for e in listed}


def sweep(instance: TestInstance, *args: str) -> subprocess.CompletedProcess[str]:
    return instance.cli("sweep", *args)


class TestSweep:
    def test_expired_destroyed_unexpired_kept(self, instance: TestInstance) -> None:
        """Uploaded backups are destroyed from three months after arrival, and not before:
        one received 100 days ago (a server then) goes, one received today stays."""
        instance.add_account("mairie-a")
        with running(instance, PastClock(dt.datetime.now(dt.UTC) - dt.timedelta(days=100))) as then:
            client = SftpClient(*then.sftp, "mairie-a", PASSWORD)
            client.upload("/lundi.sql.gz", b"monday" * 1000)
            client.close()
        with running(instance) as today:
            client = SftpClient(*today.sftp, "mairie-a", PASSWORD)
            client.upload("/mardi.sql.gz", b"tuesday" * 1000)
            client.close()
        received = parse_iso(str(catalog(instance)["mairie-a:/lundi.sql.gz"]["received_at"]))
        due = add_months(received, 3)  # table-tested in test_durations.py
        just_before = isoformat(due - dt.timedelta(microseconds=1))
        kept = json.loads(sweep(instance, "--dry-run", "--json", "--now", just_before).stdout)
        assert 0 == kept["summary"]["planned"]["destroy"]
        at_due = json.loads(sweep(instance, "--dry-run", "--json", "--now", isoformat(due)).stdout)
        assert ["/lundi.sql.gz"] == [
            d["path"] for d in at_due["decisions"] if d["action"] == "destroy"
        ]
        before = dt.datetime.now(dt.UTC)
        done = sweep(instance)
        after = dt.datetime.now(dt.UTC)
        assert 0 == done.returncode, done.stderr
        assert not (instance.area("mairie-a") / "lundi.sql.gz").exists()
        assert (instance.area("mairie-a") / "mardi.sql.gz").exists()
        entry = catalog(instance)["mairie-a:/lundi.sql.gz"]
        assert ("destroyed", "member-backups") == (entry["state"], entry["policy"])
        assert before <= parse_iso(str(entry["destroyed_at"])) <= after
        assert "received" == catalog(instance)["mairie-a:/mardi.sql.gz"]["state"]
        assert "1 destroyed (5.9 KiB freed)" in done.stdout

    def test_certificate_for_the_auditor(self, instance: TestInstance) -> None:
        """Each destruction leaves one record: account, path, size, SHA-256, received,
        destroyed, policy, and whether the content still matched."""
        instance.add_account("mairie-a")
        data = b"backup of 26 November"
        drop(instance, "mairie-a", {"db.sql": data}, received=AGES_AGO)
        before = dt.datetime.now(dt.UTC)
        assert 0 == sweep(instance).returncode
        after = dt.datetime.now(dt.UTC)
        (cert,) = instance.audit("destroyed")
        received = catalog(instance)["mairie-a:/db.sql"]["received_at"]
        assert "2025-06-02T08:00:00.000000Z" == received
        assert before <= parse_iso(str(cert["destroyed_at"])) <= after
        assert {
            "account": "mairie-a",
            "path": "/db.sql",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "received_at": received,
            "policy": "member-backups",
            "integrity": "verified",
            "protocol": "sweeper",
        }.items() <= cert.items()
        shown = instance.cli("audit", "show", "--event", "destroyed")
        assert "mairie-a" in shown.stdout and "member-backups" in shown.stdout

    def test_dry_run_destroys_nothing(self, instance: TestInstance) -> None:
        """``--dry-run`` says what would go and which policy decides, and changes nothing."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"a.sql": b"a", "sub/b.sql": b"b"})
        before = catalog(instance)
        dry = sweep(instance, "--dry-run", "--now", FAR)
        assert 0 == dry.returncode
        assert "would destroy" in dry.stdout and "member-backups" in dry.stdout
        assert "would destroy 2 (2 B)" in dry.stdout
        assert before == catalog(instance)
        assert (instance.area("mairie-a") / "sub/b.sql").exists()
        assert [] == instance.audit("destroyed")
        doc = json.loads(sweep(instance, "--dry-run", "--now", FAR, "--json").stdout)
        assert [
            ("/a.sql", "destroy", "member-backups"),
            ("/sub/b.sql", "destroy", "member-backups"),
        ] == [(d["path"], d["action"], d["policy"]) for d in doc["decisions"]]
        assert 2 == doc["summary"]["planned"]["destroy"]

    def test_dry_run_says_a_waiting_forward_once(self, instance: TestInstance) -> None:
        """Forwarding off: the dry run lists the outbox file once, as ``waiting`` (with the
        reason), never also as ``would forward`` (issue 16 item 9)."""
        instance.add_account("tech", role="technician")
        path = instance.root / "data" / "outbox" / "tech" / "erp.bak"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"erp")
        instance.cli("catalog", "scan", check=True)
        dry = sweep(instance, "--dry-run")
        assert 0 == dry.returncode, dry.stderr
        lines = [line for line in dry.stdout.splitlines() if "/outbox/erp.bak" in line]
        assert 1 == len(lines), dry.stdout
        assert lines[0].lstrip().startswith("waiting") and "forwarding is off" in lines[0]
        assert "would forward 0," in dry.stdout and "1 waiting" in dry.stdout

    def test_unmatched_files_are_kept_and_reported(self, instance: TestInstance) -> None:
        """With no policy for member areas, nothing is destroyed; each file is reported."""
        (instance.root / "policies" / "member-backups.toml").unlink()
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"old.sql": b"old"}, received=AGES_AGO)
        done = sweep(instance, "--json")
        assert 0 == done.returncode
        doc = json.loads(done.stdout)
        assert [("/old.sql", "unmatched", None)] == [
            (d["path"], d["action"], d["policy"]) for d in doc["decisions"]
        ]
        assert (instance.area("mairie-a") / "old.sql").exists()
        human = sweep(instance)
        assert "kept, no policy" in human.stdout

    def test_invalid_policy_stops_everything(self, instance: TestInstance) -> None:
        """A bad policy file: exit 2, one line naming file and key, nothing destroyed."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"db.sql": b"x"}, received=AGES_AGO)
        bad = instance.root / "policies" / "typo.toml"
        bad.write_text('[match]\narea = "member"\n[retention]\nkeep = "0 days"\nthen = "destroy"\n')
        done = sweep(instance)
        assert 2 == done.returncode
        assert f"{bad}: retention.keep:" in done.stderr
        assert 1 == len(done.stderr.strip().splitlines())
        assert (instance.area("mairie-a") / "db.sql").exists()

    def test_altered_file_is_destroyed_and_said_so(self, instance: TestInstance) -> None:
        """A backup changed on disk is still destroyed; its certificate says ``altered``."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"db.sql": b"original"}, received=AGES_AGO)
        path = instance.area("mairie-a") / "db.sql"
        path.chmod(0o640)
        path.write_bytes(b"tampered")
        assert 0 == sweep(instance).returncode
        (cert,) = instance.audit("destroyed")
        assert (
            "altered",
            hashlib.sha256(b"original").hexdigest(),
            hashlib.sha256(b"tampered").hexdigest(),
        ) == (cert["integrity"], cert["sha256"], cert["actual_sha256"])
        assert not path.exists()

    def test_second_sweep_is_skipped_while_one_runs(self, instance: TestInstance) -> None:
        """serve's sweeper and the timer's never overlap: the second one skips, exit 0."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"db.sql": b"x"}, received=AGES_AGO)
        with RunLock(instance.root / "state"):
            done = sweep(instance)
        assert 0 == done.returncode
        assert "another sweep or forward is running" in done.stderr
        assert (instance.area("mairie-a") / "db.sql").exists()

    def test_bad_now_is_a_usage_error(self, instance: TestInstance) -> None:
        """``--now`` that is not ISO-8601: exit 2, one line."""
        done = sweep(instance, "--dry-run", "--now", "next tuesday")
        assert 2 == done.returncode
        assert "--now" in done.stderr

    def test_now_without_dry_run_is_refused(self, instance: TestInstance) -> None:
        """``sweep --now`` that would change anything: exit 2, one line saying why; nothing
        destroyed, no certificate, no audit record, no monthly report (issue 16 item 8)."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"db.sql": b"x"})
        records = len(instance.audit())
        for args in (("--now", FAR), ("--now", FAR, "--json"), ("--json", "--now", "2026-01-01")):
            done = sweep(instance, *args)
            assert 2 == done.returncode, done.stdout
            assert 1 == len(done.stderr.strip().splitlines())
            assert "--now is only for --dry-run" in done.stderr
            assert "" == done.stdout
        assert (instance.area("mairie-a") / "db.sql").exists()
        assert "received" == catalog(instance)["mairie-a:/db.sql"]["state"]
        assert records == len(instance.audit())
        assert [] == list((instance.root / "log" / "reports").iterdir())
        assert not (instance.root / "state" / "last-sweep.json").exists()


class TestCrash:
    def test_sigkill_halfway_then_rerun(self, instance: TestInstance) -> None:
        """A sweep killed with SIGKILL halfway through 200 expired files, then rerun: every
        file destroyed once, 200 certificates, one per entry."""
        instance.add_account("mairie-a")
        drop(
            instance,
            "mairie-a",
            {f"d{i // 50}/b{i:03}.sql": os.urandom(64) for i in range(200)},
            received=AGES_AGO,
        )
        files = sorted(instance.area("mairie-a").rglob("*.sql"))
        assert 200 == len(files)
        proc = subprocess.Popen(
            [*INTAKE, "--config", str(instance.config_file), "sweep"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        gone = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            gone = sum(not f.exists() for f in files)
            if gone >= 20:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        remaining = sum(f.exists() for f in files)
        assert 0 < remaining < 200, "the sweep was not caught halfway"

        rerun = sweep(instance)
        assert 0 == rerun.returncode, rerun.stderr
        assert not any(f.exists() for f in files)
        certificates = instance.audit("destroyed")
        assert 200 == len(certificates)
        assert {1} == set(Counter(c["entry"] for c in certificates).values())
        db = Catalog(instance.root / "state" / "catalog.db", SystemClock())
        try:
            entries = db.entries()
            assert {"destroyed"} == {e.state.value for e in entries}
            assert 200 == len(entries)
            for e in entries:
                assert 1 == sum(h["event"] == "destroyed" for h in db.history(e.id))
            assert [] == db.pending_destroy_intents()
        finally:
            db.close()

    def test_intent_left_with_file_gone_is_finished(self, instance: TestInstance) -> None:
        """Killed between the unlink and the record: the next sweep writes the certificate
        once and records the destruction."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"db.sql": b"x"})
        db = Catalog(instance.root / "state" / "catalog.db", SystemClock())
        try:
            unlinked_under_intent(db)  # the killed run got this far
        finally:
            db.close()
        dry = sweep(instance, "--dry-run")
        assert "would finish 1 destruction(s)" in dry.stdout
        assert [] == instance.audit("destroyed")
        done = sweep(instance)  # not due yet: only the half-done destruction is finished
        assert 0 == done.returncode, done.stderr
        assert "finished 1 destruction(s)" in done.stdout
        (cert,) = instance.audit("destroyed")
        assert ("member-backups", "verified") == (cert["policy"], cert["integrity"])
        assert "destroyed" == catalog(instance)["mairie-a:/db.sql"]["state"]
        assert 0 == sweep(instance).returncode
        assert 1 == len(instance.audit("destroyed"))

    def test_certificate_written_but_not_recorded(self, instance: TestInstance) -> None:
        """Killed between the certificate and the catalog record: no second certificate."""
        instance.add_account("mairie-a")
        drop(instance, "mairie-a", {"db.sql": b"x"}, received=AGES_AGO)
        destroyed_but_not_catalogued(instance)
        assert 0 == sweep(instance).returncode
        assert 1 == len(instance.audit("destroyed"))
        entry = catalog(instance)["mairie-a:/db.sql"]
        assert ("destroyed", "2039-06-01T00:00:00.000000Z") == (
            entry["state"],
            entry["destroyed_at"],
        )


class TestServe:
    def test_serve_sweeps_and_sighup_checks_policies(self, instance: TestInstance) -> None:
        """With ``[sweeper] interval``, serve sweeps at start; SIGHUP re-reads the policies
        and says at once what is wrong in one."""
        with instance.config_file.open("a") as conf:
            conf.write('[sweeper]\ninterval = "1 hour"\n')
        serve = ServeProcess(instance)
        bad = instance.root / "policies" / "typo.toml"
        try:
            wait_for(lambda: "sweeper: 0 destroyed" in serve.log())  # the start-up sweep
            bad.write_text('[match]\n[retention]\nkeep = "3 weeks"\nthen = "destroy"\n')
            serve.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: f"{bad}: retention.keep: unknown unit" in serve.log())
        finally:
            assert 0 == serve.signal(signal.SIGTERM)
        assert "sweeper: every 3600 s" in serve.log()
