"""Policy and expiry at arrival: each catalogued file shows its policy and destruction date."""

from __future__ import annotations

import datetime as dt
import json
import signal
from contextlib import closing

from intake.core.clock import UTC, parse_iso
from intake.core.durations import due_at, parse_duration
from intake.core.model import ArrivalState
from intake.core.policy import Match, Policy, Then, expires_at
from tests.clients import SftpClient
from tests.conftest import (
    PASSWORD,
    RunningServer,
    ServeProcess,
    TestInstance,
    connect,
    wait_for,
)

ARRIVED = dt.datetime(2026, 11, 30, 13, 0, tzinfo=UTC)


class _Entry:
    id = 1
    account = "mairie-a"
    area = "member"
    path = "/base.zip"
    size = 3
    received_at = ARRIVED
    state = ArrivalState.RECEIVED
    forwarded_at = None


def _listing(instance: TestInstance, *extra: str) -> list[dict[str, object]]:
    proc = instance.cli("catalog", "list", "--json", *extra, check=True)
    return list(json.loads(proc.stdout))


class TestExpiresAtRule:
    def test_destroy_policy_ends_after_its_period(self) -> None:
        """Three calendar months from arrival, end of month clamped (30 Nov -> 28 Feb)."""
        policy = Policy("p", "p.toml", Match(), Then.DESTROY, parse_duration("3 months"))
        assert dt.datetime(2027, 2, 28, 13, 0, tzinfo=UTC) == expires_at(_Entry(), policy, None)

    def test_forward_and_unmatched_have_no_date(self) -> None:
        """A file waiting for the vendor, or matched by no policy, has no end date."""
        forward = Policy("f", "f.toml", Match(), Then.FORWARD)
        assert expires_at(_Entry(), forward, None) is None
        assert expires_at(_Entry(), None, None) is None


class TestAtArrival:
    def test_upload_shows_policy_and_expiry_at_once(self, server: RunningServer) -> None:
        """Right after the close reply, the entry has its policy and its destruction date."""
        instance = server.instance
        instance.add_account("mairie-a")
        with closing(connect(server, "sftp", "mairie-a")) as client:
            client.upload("/base.zip", b"backup")
        (entry,) = _listing(instance)
        assert "member-backups" == entry["policy"]
        received = parse_iso(str(entry["received_at"]))
        expected = due_at(received, parse_duration("3 months"), None)
        assert expected == parse_iso(str(entry["expires_at"]))
        human = instance.cli("catalog", "list", check=True).stdout
        assert "EXPIRES (UTC)" in human
        assert f"{expected:%Y-%m-%d}" in human

    def test_outbox_file_waits_for_the_vendor(self, server: RunningServer) -> None:
        """A technician's outbox file is governed by the forward policy, without a date."""
        instance = server.instance
        instance.add_account("tech", role="technician")
        with closing(connect(server, "ftps", "tech")) as client:
            client.upload("/outbox/fix.zip", b"to the vendor")
        (entry,) = _listing(instance)
        assert "outbox" == entry["policy"]
        assert entry["expires_at"] is None

    def test_file_found_by_scan_gets_its_policy(self, instance: TestInstance) -> None:
        """A file dropped by hand and catalogued by ``catalog scan`` is dated too."""
        instance.add_account("mairie-a")
        instance.area("mairie-a").mkdir(parents=True, exist_ok=True)
        (instance.area("mairie-a") / "hand.zip").write_bytes(b"dropped")
        instance.cli("catalog", "scan", check=True)
        (entry,) = _listing(instance)
        assert "member-backups" == entry["policy"]
        assert entry["expires_at"] is not None


class TestReassessed:
    def test_sighup_applies_a_changed_policy(self, instance: TestInstance) -> None:
        """A new, higher-priority policy and SIGHUP re-date what is already catalogued."""
        instance.add_account("mairie-a")
        serve = ServeProcess(instance)
        try:
            client = SftpClient(*serve.addresses["sftp"], "mairie-a", PASSWORD)
            try:
                client.mkdir("/short")
                client.upload("/short/base.zip", b"backup")
            finally:
                client.close()
            (before,) = _listing(instance)
            assert "member-backups" == before["policy"]
            (instance.root / "policies" / "short.toml").write_text(
                'name = "short-lived"\npriority = 10\n[match]\npath = "short/**"\n'
                '[retention]\nkeep = "10 days"\nthen = "destroy"\n'
            )
            serve.proc.send_signal(signal.SIGHUP)
            (after,) = wait_for(
                lambda: [e for e in _listing(instance) if e["policy"] == "short-lived"]
            )
            received = parse_iso(str(after["received_at"]))
            assert received + dt.timedelta(days=10) == parse_iso(str(after["expires_at"]))
        finally:
            serve.kill()


class TestExpiringWithin:
    def test_lists_only_what_goes_soon(self, server: RunningServer) -> None:
        """Within 7 days nothing of a 3-month policy; within 100 days the backup."""
        instance = server.instance
        instance.add_account("mairie-a")
        with closing(connect(server, "sftp", "mairie-a")) as client:
            client.upload("/base.zip", b"backup")
        assert [] == _listing(instance, "--expiring-within", "7d")
        assert ["/base.zip"] == [e["path"] for e in _listing(instance, "--expiring-within", "100d")]
        assert (
            "nothing expires within 2w"
            in instance.cli("catalog", "list", "--expiring-within", "2w", check=True).stdout
        )

    def test_bad_duration_is_a_usage_error(self, instance: TestInstance) -> None:
        """A duration the command cannot read: one line, exit 2."""
        proc = instance.cli("catalog", "list", "--expiring-within", "soon")
        assert 2 == proc.returncode
        assert 1 == len(proc.stderr.strip().splitlines())
        assert "--expiring-within" in proc.stderr
