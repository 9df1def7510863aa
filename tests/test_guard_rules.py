"""The guard's and the noise summary's rules on their own (no sockets): networks, the
startup budget, the per-account score and its window, the config syntax, the log bound."""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

import pytest

from intake.adapters.audit.writer import AuditLog, read_records
from intake.adapters.logs.noise import NoiseLog
from intake.core.clock import FixedClock
from intake.core.config import LimitsSection, parse
from intake.core.errors import ConfigError
from intake.services.access.guard import Guard, Slot, network_of

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
        assert isinstance(g.admit("127.0.1.2", lambda: None), str)  # per-network cap
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
