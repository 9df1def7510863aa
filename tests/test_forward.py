"""Forwarding to the vendor: a REAL OpenSSH ``sshd`` on loopback plays the vendor.

The fixture starts ``/usr/sbin/sshd -D`` (tests/vendor_sshd.py) with its own config in a
root-owned folder under ``/run`` (OpenSSH refuses a chroot below the world-writable
``/tmp``): a generated host key, ``ChrootDirectory`` + ``ForceCommand internal-sftp``, root
logging in with a key.
What is checked is what the vendor and an auditor see: the files in the vendor's folder
(byte for byte), ``intake catalog show``, and the audit log.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.core.clock import FixedClock, parse_iso
from intake.services.sweeper.sweep import RunLock, Sweeper
from tests.clients import SftpClient
from tests.conftest import INTAKE, PASSWORD, ServeProcess, TestInstance
from tests.vendor_sshd import Vendor, keygen, running_vendor, usable

pytestmark = pytest.mark.skipif(not usable(), reason="needs root and OpenSSH sshd")


@pytest.fixture(scope="module")
def vendor() -> Iterator[Vendor]:
    with running_vendor() as v:
        yield v


@pytest.fixture
def forwarding(instance: TestInstance, vendor: Vendor) -> Iterator[TestInstance]:
    """An instance whose ``[vendor]`` is the test sshd, its host key pinned."""
    if vendor.proc is None:
        vendor.start()
    vendor.clear()
    (instance.root / "vendor_known_hosts").write_text(vendor.known_hosts_line())
    with instance.config_file.open("a") as conf:
        conf.write(vendor.config_section())
    instance.add_account("tech", role="technician")
    instance.add_account("mairie-a", role="member")
    yield instance
    if vendor.proc is None:
        vendor.start()


def deposit(instance: TestInstance, rel: str, data: bytes, member: str | None = None) -> int:
    """A file put on disk (outbox, or a member's area), catalogued by ``intake catalog scan``."""
    if member is None:
        path = instance.root / "data" / "outbox" / "tech" / rel
    else:
        path = instance.area(member) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    instance.cli("catalog", "scan", check=True)
    entries = json.loads(instance.cli("catalog", "list", "--json", check=True).stdout)
    wanted = f"/outbox/{rel}" if member is None else f"/{rel}"
    return int(next(e["id"] for e in entries if e["path"] == wanted))


def entry(instance: TestInstance, entry_id: int) -> dict[str, object]:
    shown = json.loads(instance.cli("catalog", "show", str(entry_id), "--json", check=True).stdout)
    return shown.get("entry", shown)  # type: ignore[no-any-return]


def sweep(instance: TestInstance, *args: str) -> subprocess.CompletedProcess[str]:
    return instance.cli("sweep", "--json", *args)


class TestForwarding:
    def test_uploaded_outbox_file_arrives_byte_identical(
        self, forwarding: TestInstance, vendor: Vendor
    ) -> None:
        """A technician's SFTP upload to /outbox/ is on the vendor after the sweep, byte for byte,
        then gone from intake with a certificate."""
        from intake.frontends.daemon.serve import Daemon

        data = os.urandom(3 * 1024 * 1024 + 17)
        inst = forwarding.open()
        daemon = Daemon(inst, workers=1)
        host, port = daemon.start()["sftp"]
        try:
            client = SftpClient(host, port, "tech", PASSWORD)
            client.mkdir("/outbox/2026")
            client.upload("/outbox/2026/erp-dump.bak", data)
            client.close()
        finally:
            daemon.stop()
            inst.close()
        done = sweep(forwarding)
        assert 0 == done.returncode, done.stderr
        assert {"2026/erp-dump.bak": data} == vendor.files()
        report = json.loads(done.stdout)
        assert (1, 1, 0) == (
            report["summary"]["forwarded"],
            report["summary"]["destroyed"],
            report["summary"]["failed"],
        )
        assert not (forwarding.root / "data/outbox/tech/2026/erp-dump.bak").exists()
        (forwarded,) = forwarding.audit("forwarded")
        assert "/upload/2026/erp-dump.bak" == forwarded["remote_path"]
        assert hashlib.sha256(data).hexdigest() == forwarded["sha256"]
        (certificate,) = forwarding.audit("destroyed")
        assert ("tech", "/outbox/2026/erp-dump.bak", len(data), "outbox", "verified") == (
            certificate["account"],
            certificate["path"],
            certificate["size"],
            certificate["policy"],
            certificate["integrity"],
        )

    def test_wrong_pinned_key_sends_nothing(
        self, forwarding: TestInstance, vendor: Vendor, tmp_path: Path
    ) -> None:
        """A vendor whose host key is not the pinned one gets nothing; the failure is audited."""
        other = keygen(tmp_path / "impostor")
        kind, blob = other.with_suffix(".pub").read_text().split()[:2]
        (forwarding.root / "vendor_known_hosts").write_text(
            f"[127.0.0.1]:{vendor.port} {kind} {blob}\n"
        )
        entry_id = deposit(forwarding, "x.bak", b"secret payload")
        done = sweep(forwarding)
        assert 1 == done.returncode
        assert {} == vendor.files()
        (failed,) = forwarding.audit("forward.failed")
        assert "host key changed" in str(failed["reason"])
        assert entry_id == failed["entry"]
        assert "received" == entry(forwarding, entry_id)["state"]
        assert (forwarding.root / "data/outbox/tech/x.bak").exists()
        assert "host key changed" in done.stderr

    def test_unpinned_vendor_is_not_contacted(
        self, forwarding: TestInstance, vendor: Vendor
    ) -> None:
        """A known_hosts file without the vendor's host: no connection, the failure audited."""
        (forwarding.root / "vendor_known_hosts").write_text(
            vendor.known_hosts_line().replace(f"]:{vendor.port}", f"]:{vendor.port + 1}")
        )
        deposit(forwarding, "x.bak", b"payload")
        log_before = (vendor.base / "sshd.log").read_text()
        assert 1 == sweep(forwarding).returncode
        (failed,) = forwarding.audit("forward.failed")
        assert "no host key pinned" in str(failed["reason"])
        assert {} == vendor.files()
        assert log_before == (vendor.base / "sshd.log").read_text()  # never connected

    def test_vendor_down_then_up(self, forwarding: TestInstance, vendor: Vendor) -> None:
        """Vendor down: an audited failure, the file waits (backoff); up: sent at a later sweep."""
        data = os.urandom(100_000)
        entry_id = deposit(forwarding, "later.bak", data)
        vendor.stop()
        down = sweep(forwarding)
        assert 1 == down.returncode
        assert "cannot reach the vendor" in json.loads(down.stdout)["failures"][0]["reason"]
        (failed,) = forwarding.audit("forward.failed")
        retry_at = parse_iso(str(failed["retry_at"]))  # 5 minutes on: [sweeper] retry_after
        vendor.start()
        soon = sweep(forwarding)  # within the backoff
        assert 0 == soon.returncode
        assert [entry_id] == [w["id"] for w in json.loads(soon.stdout)["waiting"]]
        assert {} == vendor.files()
        # The backoff is over at retry_at: the sweeper as serve's scheduler runs it then
        # (a real sweep reads the real clock; the service takes the clock it is given).
        inst = forwarding.open(FixedClock(retry_at))
        try:
            up = Sweeper(inst).run()
        finally:
            inst.close()
        assert up.ok, up.failures
        assert {"later.bak": data} == vendor.files()
        assert 1 == len(forwarding.audit("forward.failed"))
        assert "destroyed" == entry(forwarding, entry_id)["state"]

    def test_interrupted_forward_is_redone_cleanly(
        self, forwarding: TestInstance, vendor: Vendor
    ) -> None:
        """A sweep killed while sending leaves only a temporary name on the vendor; the next
        sweep replaces it and the vendor ends with the whole file, under its name, once."""
        data = os.urandom(96 * 1024 * 1024)
        deposit(forwarding, "big.bak", data)
        proc = subprocess.Popen(
            [*INTAKE, "--config", str(forwarding.config_file), "sweep"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        partial: list[Path] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in vendor.upload.iterdir() if p.stat().st_size > 1024 * 1024]
            if partial:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert partial, "the sweep finished before it could be interrupted"
        names = [p.name for p in vendor.upload.iterdir()]
        assert "big.bak" not in names  # never a partial file under the real name
        assert all(n.endswith(".intake-part") for n in names)
        done = sweep(forwarding)
        assert 0 == done.returncode, done.stderr
        assert ["big.bak"] == sorted(vendor.files())
        assert (
            hashlib.sha256(data).hexdigest()
            == hashlib.sha256((vendor.upload / "big.bak").read_bytes()).hexdigest()
        )

    def test_renamed_but_unrecorded_forward_is_not_sent_twice(
        self, forwarding: TestInstance, vendor: Vendor
    ) -> None:
        """If a run was cut after the rename, the vendor's identical copy is recognised."""
        data = b"already there\n"
        entry_id = deposit(forwarding, "dup.bak", data)
        (vendor.upload / "dup.bak").write_bytes(data)
        assert 0 == sweep(forwarding).returncode
        (forwarded,) = forwarding.audit("forwarded")
        assert (entry_id, True) == (forwarded["entry"], forwarded["resumed"])

    def test_other_file_on_the_vendor_is_never_overwritten(
        self, forwarding: TestInstance, vendor: Vendor
    ) -> None:
        """A different file with the same name at the vendor stays; ours goes under the
        entry's own name (``name.e<id>.bak``), and only then is it destroyed here."""
        entry_id = deposit(forwarding, "name.bak", b"ours")
        (vendor.upload / "name.bak").write_bytes(b"theirs, older")
        assert 0 == sweep(forwarding).returncode
        assert {"name.bak": b"theirs, older", f"name.e{entry_id}.bak": b"ours"} == vendor.files()
        (forwarded,) = forwarding.audit("forwarded")
        assert f"/upload/name.e{entry_id}.bak" == forwarded["remote_path"]
        assert "destroyed" == entry(forwarding, entry_id)["state"]

    def test_both_names_taken_fails_and_keeps_the_file(
        self, forwarding: TestInstance, vendor: Vendor
    ) -> None:
        """Other content under the name and under the entry's own name: nothing is
        overwritten, the forward fails (audited) and the file stays here."""
        entry_id = deposit(forwarding, "name.bak", b"ours")
        (vendor.upload / "name.bak").write_bytes(b"them")
        (vendor.upload / f"name.e{entry_id}.bak").write_bytes(b"them")
        assert 1 == sweep(forwarding).returncode
        assert {"name.bak": b"them", f"name.e{entry_id}.bak": b"them"} == vendor.files()
        (failed,) = forwarding.audit("forward.failed")
        assert "not overwritten" in str(failed["reason"])
        assert "received" == entry(forwarding, entry_id)["state"]
        assert (forwarding.root / "data/outbox/tech/name.bak").exists()

    def test_sha256_read_back(self, forwarding: TestInstance, vendor: Vendor) -> None:
        """With forward_verify = "sha256" the vendor's copy is read back before the rename."""
        with forwarding.config_file.open("a") as conf:
            conf.write('[sweeper]\nforward_verify = "sha256"\n')
        data = os.urandom(300_000)
        deposit(forwarding, "checked.bak", data)
        assert 0 == sweep(forwarding).returncode
        assert {"checked.bak": data} == vendor.files()
        assert "sha256" == forwarding.audit("forwarded")[0]["verify"]

    def test_forwarding_off_waits(self, instance: TestInstance) -> None:
        """With no [vendor] host, outbox files wait in the outbox and the sweep says so."""
        instance.add_account("tech", role="technician")
        entry_id = deposit(instance, "wait.bak", b"w")
        done = sweep(instance)
        assert 0 == done.returncode
        (waiting,) = json.loads(done.stdout)["waiting"]
        assert entry_id == waiting["id"]
        assert "forwarding is off" in waiting["reason"]
        assert (instance.root / "data/outbox/tech/wait.bak").exists()


class TestForwardCommand:
    def test_member_backup_sent_from_the_host(
        self, forwarding: TestInstance, vendor: Vendor
    ) -> None:
        """``intake forward ID`` sends a member's backup without a download; it stays here."""
        data = os.urandom(50_000)
        entry_id = deposit(forwarding, "db/2026-11-26.sql.gz", data, member="mairie-a")
        done = forwarding.cli("forward", str(entry_id))
        assert 0 == done.returncode, done.stderr
        assert "forwarded to /upload/mairie-a/db/2026-11-26.sql.gz" in done.stdout
        assert {"mairie-a/db/2026-11-26.sql.gz": data} == vendor.files()
        assert (forwarding.area("mairie-a") / "db/2026-11-26.sql.gz").exists()
        shown = entry(forwarding, entry_id)
        assert "forwarded" == shown["state"]
        assert shown["forwarded_at"]
        (record,) = forwarding.audit("forwarded")
        assert ("cli", entry_id) == (record["protocol"], record["entry"])
        again = forwarding.cli("forward", str(entry_id))
        assert 0 == again.returncode
        assert "already forwarded" in again.stdout

    def test_refused_while_a_sweep_runs(self, forwarding: TestInstance) -> None:
        """``intake forward`` never runs beside a sweep: one line, exit 1, nothing sent."""
        entry_id = deposit(forwarding, "x.sql", b"x", member="mairie-a")
        with RunLock(forwarding.root / "state"):
            done = forwarding.cli("forward", str(entry_id))
        assert 1 == done.returncode
        assert "another sweep or forward is running" in done.stderr
        assert "received" == entry(forwarding, entry_id)["state"]

    def test_unknown_entry_and_bad_id(self, forwarding: TestInstance) -> None:
        """An unknown entry is exit 1, a non-number exit 2, each one line on stderr."""
        missing = forwarding.cli("forward", "999")
        bad = forwarding.cli("forward", "abc")
        assert (1, 2) == (missing.returncode, bad.returncode)
        assert 1 == len(missing.stderr.strip().splitlines())

    def test_forwarding_off_is_a_usage_error(self, instance: TestInstance) -> None:
        """Without [vendor] host, ``intake forward`` says how to turn it on (exit 2)."""
        instance.add_account("mairie-a", role="member")
        entry_id = deposit(instance, "x.sql", b"x", member="mairie-a")
        done = instance.cli("forward", str(entry_id))
        assert 2 == done.returncode
        assert "forwarding is off" in done.stderr


class TestServeSweeper:
    def test_serve_forwards_by_itself(self, forwarding: TestInstance, vendor: Vendor) -> None:
        """With ``[sweeper] interval``, ``intake serve`` forwards a technician's upload and
        then destroys it, with no command run; SIGTERM still stops it cleanly."""
        with forwarding.config_file.open("a") as conf:
            conf.write('[sweeper]\ninterval = "1 second"\n')
        data = os.urandom(200_000)
        serve = ServeProcess(forwarding)
        try:
            client = SftpClient(*serve.addresses["sftp"], "tech", PASSWORD)
            client.upload("/outbox/auto.bak", data)
            client.close()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not forwarding.audit("destroyed"):
                time.sleep(0.1)
        finally:
            assert 0 == serve.signal(signal.SIGTERM)
        assert {"auto.bak": data} == vendor.files()
        assert not (forwarding.root / "data/outbox/tech/auto.bak").exists()
        (cert,) = forwarding.audit("destroyed")
        assert ("outbox", "sweeper") == (cert["policy"], cert["protocol"])


class TestCollisions:
    """Issue 11 item 10: two technicians' ``/outbox/x.zip`` of the same size."""

    @pytest.mark.parametrize("first", ["tech", "tech-b"])
    def test_same_name_same_size_both_arrive(
        self, forwarding: TestInstance, vendor: Vendor, first: str
    ) -> None:
        """Both files reach the vendor, each byte for byte under the remote path its
        ``forwarded`` record names, before either is destroyed here (either order)."""
        forwarding.add_account("tech-b", role="technician")
        contents = {"tech": os.urandom(4096), "tech-b": os.urandom(4096)}
        order = [first, "tech-b" if first == "tech" else "tech"]
        for tech in order:
            path = forwarding.root / "data" / "outbox" / tech / "x.zip"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(contents[tech])
            forwarding.cli("catalog", "scan", check=True)
        done = sweep(forwarding)
        assert 0 == done.returncode, done.stderr
        assert sorted(contents.values()) == sorted(vendor.files().values())
        records = forwarding.audit("forwarded")
        assert sorted(contents) == sorted(str(r["account"]) for r in records)
        for record in records:
            remote = Path(str(record["remote_path"])).relative_to("/upload")
            assert contents[str(record["account"])] == (vendor.upload / remote).read_bytes()
        assert 2 == len(forwarding.audit("destroyed"))

    def test_same_size_file_at_the_vendor_is_not_taken_for_ours(
        self, forwarding: TestInstance, vendor: Vendor
    ) -> None:
        """With ``forward_verify = "size"`` (the default) a same-size file already at the
        vendor is read back: other content is not ours, ours is sent under its own name."""
        ours, theirs = os.urandom(2048), os.urandom(2048)
        (vendor.upload / "x.zip").write_bytes(theirs)
        entry_id = deposit(forwarding, "x.zip", ours)
        done = sweep(forwarding)
        assert 0 == done.returncode, done.stderr
        assert {"x.zip": theirs, f"x.e{entry_id}.zip": ours} == vendor.files()
        (forwarded,) = forwarding.audit("forwarded")
        assert None is forwarded.get("resumed")
