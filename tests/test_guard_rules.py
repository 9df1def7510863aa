"""The guard's and the noise summary's rules on their own (no sockets): networks, the
startup budget, the per-account score and its window, the config syntax, the log bound."""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

import pytest

from intake.adapters.audit.writer import AuditLog, read_records
from intake.adapters.bans import BanStore
from intake.adapters.logs.noise import NoiseLog
from intake.core.clock import FixedClock
from intake.core.config import LimitsSection, parse
from intake.core.errors import ConfigError, NotFound, UsageError
from intake.services.access.guard import Cost, Guard, Refusal, Slot, Waiting, network_of

START = _dt.datetime(2026, 3, 2, 9, 0, tzinfo=_dt.UTC)


def guard(tmp_path: Path, **limits: object) -> tuple[Guard, FixedClock, Path]:
    clock = FixedClock(START)
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    return Guard(LimitsSection(**limits), clock, AuditLog(log_dir, clock)), clock, log_dir  # type: ignore[arg-type]


def events(log_dir: Path, name: str) -> list[dict[str, object]]:
    return [r for r in read_records(log_dir) if r["event"] == name]


class TestNetworks:
    def test_ipv4_ipv6_and_mapped_addresses_group_by_prefix(self) -> None:
        """/24 for IPv4, /64 for IPv6; an IPv4-mapped IPv6 address counts as IPv4."""
        assert "192.0.2.0/24" == network_of("192.0.2.77", 24, 64)
        assert "192.0.2.0/24" == network_of("::ffff:192.0.2.9", 24, 64)
        assert "2001:db8:1:2::/64" == network_of("2001:db8:1:2:aaaa::1", 24, 64)
        assert "10.0.0.0/8" == network_of("10.1.2.3", 8, 64)


class TestStartupBudget:
    def test_a_full_budget_evicts_the_heaviest_network_for_a_newcomer(self, tmp_path: Path) -> None:
        """At ``full`` a flooding network is refused, a first connection from another
        network evicts the flood's oldest slot, and a logged-in slot frees its place."""
        g, _, _ = guard(tmp_path, max_startups=(3, 100, 4), max_startups_per_network=3)
        evicted: list[int] = []
        flood = [g.admit("127.0.1.1", lambda n=n: evicted.append(n)) for n in range(3)]
        assert all(isinstance(s, Slot) for s in flood)
        assert isinstance(g.admit("127.0.1.2", lambda: None), Refusal)  # cap, cannot wait
        other = g.admit("127.0.2.1", lambda: None)
        assert isinstance(other, Slot)
        assert 4 == g.startups()
        member = g.admit("127.0.3.1", lambda: None)
        assert isinstance(member, Slot)
        assert [0] == evicted
        assert isinstance(flood[0], Slot) and flood[0].evicted
        member.logged_in()
        assert 3 == g.startups()
        for slot in (*flood, other, member):
            assert isinstance(slot, Slot)
            slot.release()
        assert 0 == g.startups()


class TestAccountScore:
    def test_attacked_once_per_window_delay_then_forgotten(self, tmp_path: Path) -> None:
        """Wrong passwords from many networks: one ``account.attacked``, a delay while the
        window holds them, none once it has passed; no address is banned."""
        g, clock, log_dir = guard(
            tmp_path, account_attack_failures=5, account_attack_delay=3, ban_window=60
        )
        for n in range(12):
            g.login_failed(f"198.51.{n}.7", "sftp", account="mairie-a")
        assert 3.0 == g.account_delay("mairie-a")
        assert 0.0 == g.account_delay("mairie-b")
        [alarm] = events(log_dir, "account.attacked")
        assert "mairie-a" == alarm["account"]
        assert [] == events(log_dir, "banned")
        clock.advance(_dt.timedelta(seconds=61))
        assert 0.0 == g.account_delay("mairie-a")


class TestConfig:
    def test_max_startups_syntax(self, tmp_path: Path) -> None:
        """``"start:rate:full"`` or ``"N"``; anything else names the key."""
        file = tmp_path / "intake.toml"
        cfg = parse('[limits]\nmax_startups = "5:50:20"\n', file)
        assert (5, 50, 20) == cfg.limits.max_startups
        assert (8, 100, 8) == parse('[limits]\nmax_startups = "8"\n', file).limits.max_startups
        for bad in ('"20:30:10"', '"1:0:5"', '"a:b:c"', "true"):
            with pytest.raises(ConfigError, match=r"limits\.max_startups"):
                parse(f"[limits]\nmax_startups = {bad}\n", file)
        with pytest.raises(ConfigError, match="ipv4_network_prefix"):
            parse("[limits]\nipv4_network_prefix = 33\n", file)


class TestNoiseLog:
    def test_a_flood_from_many_addresses_logs_a_bounded_number_of_lines(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """10 000 notes from 500 addresses over 3 intervals: at most ``max_sources`` first
        lines plus as many summaries and one overflow line per interval."""
        now = [0.0]
        noise = NoiseLog(logging.getLogger("test.noise"), 60, 20, clock=lambda: now[0])
        with caplog.at_level(logging.WARNING, logger="test.noise"):
            for i in range(10_000):
                now[0] = i * 0.018  # 180 s in all
                noise.note("sftp: refused", f"192.0.2.{i % 250}", "address banned")
            noise.close()
        assert len(caplog.records) <= 3 * (2 * 20 + 1) + 1
        assert any("more" in r.getMessage() for r in caplog.records)


def stored_guard(
    tmp_path: Path, clock: FixedClock, log_dir: Path, **limits: object
) -> tuple[Guard, BanStore]:
    store = BanStore(tmp_path / "bans.db")
    return Guard(LimitsSection(**limits), clock, AuditLog(log_dir, clock), store), store  # type: ignore[arg-type]


class TestScoring:
    def test_connections_that_tried_nothing_cost_a_tenth_of_a_failure(self, tmp_path: Path) -> None:
        """A client that refuses the host key or the certificate and retries: 10 such
        connections do not block it (they did: each was a failed login); 100 within the
        window do, as a flood from one address should be."""
        g, _, log_dir = guard(tmp_path, max_login_failures=10)
        for _ in range(10):
            g.ended_before_login("198.51.100.7", "sftp", "closed without trying", False)
        assert not g.banned("198.51.100.7")
        for _ in range(89):
            g.ended_before_login("198.51.100.7", "sftp", "closed without trying", False)
        assert not g.banned("198.51.100.7")
        g.ended_before_login("198.51.100.7", "sftp", "closed without trying", False)
        assert g.banned("198.51.100.7")
        [ban] = events(log_dir, "banned")
        assert ("198.51.100.7", 10.0, 1) == (ban["ip"], ban["failures"], ban["blocks"])

    def test_an_unknown_account_costs_more_than_a_wrong_password(self, tmp_path: Path) -> None:
        """With max_login_failures 4: three wrong passwords at an existing account leave
        the address free, a fourth blocks it; two tries at unknown accounts block."""
        g, _, _ = guard(tmp_path, max_login_failures=4)
        for _ in range(3):
            g.login_failed("198.51.100.1", "sftp", Cost.AUTHFAIL, account="mairie-a")
        assert not g.banned("198.51.100.1")
        g.login_failed("198.51.100.1", "sftp", Cost.AUTHFAIL, account="mairie-a")
        assert g.banned("198.51.100.1")
        g.login_failed("198.51.100.2", "ftps", Cost.UNKNOWN_ACCOUNT)
        assert not g.banned("198.51.100.2")
        g.login_failed("198.51.100.2", "ftps", Cost.UNKNOWN_ACCOUNT)
        assert g.banned("198.51.100.2")

    def test_an_eviction_is_never_charged(self, tmp_path: Path) -> None:
        """1000 evictions of one address's connections: audited, never blocked."""
        g, _, log_dir = guard(tmp_path, max_login_failures=1, max_network_failures=1)
        for _ in range(1000):
            g.ended_before_login("198.51.100.9", "sftp", "evicted", True)
        assert not g.banned("198.51.100.9")
        assert [] == events(log_dir, "banned")
        assert events(log_dir, "login.failed")

    def test_a_first_block_is_short_then_grows_up_to_ban_time(self, tmp_path: Path) -> None:
        """60 s, then 120, 240, 480, then 600 (ban_time) for a source that keeps failing."""
        g, clock, log_dir = guard(tmp_path, max_login_failures=1, first_ban_time=60, ban_time=600)
        lengths = []
        for _ in range(6):
            g.login_failed("198.51.100.3", "sftp", Cost.AUTHFAIL)
            ban = events(log_dir, "banned")[-1]
            lengths.append(ban["seconds"])
            clock.advance(_dt.timedelta(seconds=int(str(ban["seconds"])) - 1))
            assert g.banned("198.51.100.3")
            clock.advance(_dt.timedelta(seconds=1))
            assert not g.banned("198.51.100.3")
        assert [60, 120, 240, 480, 600, 600] == lengths

    def test_a_network_is_blocked_only_by_several_of_its_addresses(self, tmp_path: Path) -> None:
        """One address behind carrier-grade NAT failing a lot does not block its /24;
        failures from three of its addresses do."""
        g, _, log_dir = guard(tmp_path, max_login_failures=1000, max_network_failures=5)
        for _ in range(20):
            g.login_failed("203.0.113.5", "sftp", Cost.AUTHFAIL)
        assert not g.banned("203.0.113.77")
        g.login_failed("203.0.113.6", "sftp", Cost.AUTHFAIL)
        assert not g.banned("203.0.113.77")
        g.login_failed("203.0.113.7", "sftp", Cost.AUTHFAIL)
        assert g.banned("203.0.113.77")
        [ban] = events(log_dir, "banned")
        assert "203.0.113.0/24" == ban["ip"] == ban["network"]

    def test_trusted_networks_are_never_blocked(self, tmp_path: Path) -> None:
        """An address in trusted_networks fails at will and is still admitted, even when
        its network is blocked for others' failures."""
        g, _, _ = guard(
            tmp_path,
            max_login_failures=1,
            max_network_failures=3,
            trusted_networks=("192.0.2.0/28",),
        )
        for _ in range(50):
            g.login_failed("192.0.2.1", "ftps", Cost.UNKNOWN_ACCOUNT)
        assert not g.banned("192.0.2.1")
        for host in (100, 101, 102):
            for _ in range(10):
                g.login_failed(f"192.0.2.{host}", "ftps", Cost.AUTHFAIL)
        assert g.banned("192.0.2.200")
        assert not g.banned("192.0.2.1")
        assert isinstance(g.admit("192.0.2.1", lambda: None), Slot)


class TestStoredBans:
    def test_blocks_survive_a_new_guard_and_a_lift_is_seen_at_once(self, tmp_path: Path) -> None:
        """A block written by one guard (serve) is read by another (the CLI, a restart);
        a lift by the other is audited ``unbanned`` and the first admits the address at
        its next connection, its failures forgotten."""
        clock = FixedClock(START)
        log_dir = tmp_path / "log"
        log_dir.mkdir()
        serving, _ = stored_guard(tmp_path, clock, log_dir, max_login_failures=2)
        for _ in range(2):
            serving.login_failed("198.51.100.4", "sftp", Cost.AUTHFAIL)
        assert isinstance(serving.admit("198.51.100.4", lambda: None), Refusal)
        cli, _ = stored_guard(tmp_path, clock, log_dir, max_login_failures=2)
        [ban] = cli.bans()
        assert ("198.51.100.4", "address", 2.0) == (ban.key, ban.kind, ban.failures)
        with pytest.raises(NotFound):
            cli.lift("198.51.100.5")
        with pytest.raises(UsageError):
            cli.lift("not-an-address")
        cli.lift("198.51.100.4")
        [lifted] = events(log_dir, "unbanned")
        assert ("198.51.100.4", "cli") == (lifted["ip"], lifted["protocol"])
        assert isinstance(serving.admit("198.51.100.4", lambda: None), Slot)
        serving.login_failed("198.51.100.4", "sftp", Cost.AUTHFAIL)
        assert not serving.banned("198.51.100.4")  # its old failures went with the block
        assert [] == cli.bans()


class TestWaitingRoom:
    def test_over_the_caps_a_connection_waits_then_gets_the_freed_slot(
        self, tmp_path: Path
    ) -> None:
        """Over the per-network cap a connection waits; a login frees a slot for it; the
        slot goes first to the waiting network holding fewest startups."""
        g, _, _ = guard(tmp_path, max_startups=(2, 30, 4), max_startups_per_network=2)
        started: list[str] = []
        cut: list[str] = []

        def admit(ip: str) -> Slot | Refusal | Waiting:
            return g.admit(
                ip, lambda: None, lambda s: started.append(s.ip), lambda r: cut.append(ip)
            )

        first = [admit("127.0.1.1"), admit("127.0.1.2")]
        assert isinstance(admit("127.0.1.3"), Waiting)
        other = admit("127.0.2.1")
        assert isinstance(other, Slot)  # another network: at once
        assert isinstance(admit("127.0.2.2"), Waiting)
        assert 2 == g.waiting()
        other.logged_in()
        assert ["127.0.2.2"] == started  # network 2 holds none now, network 1 two
        for slot in first:
            assert isinstance(slot, Slot)
            slot.logged_in()
        assert ["127.0.2.2", "127.0.1.3"] == started
        assert [] == cut

    def test_a_full_room_cuts_only_the_network_holding_more_than_its_share(
        self, tmp_path: Path
    ) -> None:
        """The room (``full`` places) filled by one network: a newcomer from another
        network takes the place of the flood's oldest; the flood's own newcomer is
        refused; nobody waits longer than prelogin_wait."""
        g, _, _ = guard(
            tmp_path,
            max_startups=(1, 30, 3),
            max_startups_per_network=1,
            max_connections_per_ip=100,
            prelogin_wait=0,
        )
        cut: list[str] = []

        def admit(ip: str) -> Slot | Refusal | Waiting:
            return g.admit(ip, lambda: None, lambda s: None, lambda r, ip=ip: cut.append(ip))

        assert isinstance(admit("127.0.9.1"), Slot)
        flood = [admit(f"127.0.9.{n}") for n in range(2, 5)]
        assert all(isinstance(w, Waiting) for w in flood)
        assert isinstance(admit("127.0.9.99"), Refusal)  # its network fills the room
        assert isinstance(admit("127.0.3.1"), Slot)  # a network holding no startup
        assert isinstance(admit("127.0.3.2"), Waiting)  # displaces the flood's oldest
        assert ["127.0.9.2"] == cut
        g.tick()  # prelogin_wait 0: every wait is over
        assert 0 == g.waiting()
        assert {"127.0.9.3", "127.0.9.4", "127.0.3.2"} == set(cut[1:])


class TestPreLoginDigest:
    def test_a_rotating_flood_writes_one_record_per_network_and_minute(
        self, tmp_path: Path
    ) -> None:
        """2000 connections that tried nothing, from 2000 addresses of 4 networks, within
        a minute: one record per network at once, one summary per network once the minute
        is over (count and addresses); every connection was scored (the networks that got
        250 or more from 3+ addresses are blocked)."""
        g, clock, log_dir = guard(tmp_path, max_login_failures=10, max_network_failures=25)
        for n in range(2000):
            net, host = divmod(n, 500)
            g.ended_before_login(f"10.{net}.{host // 250}.{host % 250 + 1}", "sftp", "x", False)
        first = events(log_dir, "login.failed")
        assert 8 == len(first)  # 10.N.0.0/24 and 10.N.1.0/24 for N in 0..3
        assert all(1 == r["count"] for r in first)
        g.tick()
        assert 8 == len(events(log_dir, "login.failed"))  # the minute is not over
        clock.advance(_dt.timedelta(seconds=61))
        g.tick()
        summaries = events(log_dir, "login.failed")[8:]
        assert 8 == len(summaries)
        assert 2000 - 8 == sum(int(str(r["count"])) for r in summaries)
        assert all(len(r["addresses"]) <= 20 for r in summaries)  # type: ignore[arg-type]
        assert 249 == summaries[0]["address_count"]
        # 250 connections from 250 addresses of each /24: 25 failures, blocked.
        assert 8 == len(events(log_dir, "banned"))
