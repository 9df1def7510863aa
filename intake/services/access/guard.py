"""Who may connect and try to log in: connection slots, bans, attacked accounts, bounded hashing.

Rules (shared by SFTP and FTPS, so a client cannot dodge a rule by switching protocol):
- ``admit`` decides in the accepting thread, before a thread is started for the
  connection: refused when its address or its network is banned, when the server has
  ``max_connections`` sessions, or the address ``max_connections_per_ip``.
- A "network" is the address's IPv4 /``ipv4_network_prefix`` or IPv6
  /``ipv6_network_prefix`` (OpenSSH's PerSourceNetBlockSize); an IPv4-mapped IPv6
  address counts as IPv4.
- Unauthenticated connections ("startups") are bounded apart, so a flood that never logs
  in cannot hold every slot (OpenSSH's MaxStartups ``start:rate:full``, with a per-network
  cap): a network holds at most ``max_startups_per_network`` of them; past ``start`` a
  new one from a network that already holds one is dropped with a probability rising
  from ``rate`` % to 100 % at ``full``; at ``full`` a network that holds none still gets
  in, by evicting the oldest unauthenticated connection of the network holding most. A
  member connecting from its own network therefore always gets a chance to log in.
- ``max_login_failures`` failures from one address, or ``max_network_failures`` from one
  network, within ``ban_window`` seconds ban it for ``ban_time`` seconds, audited once as
  ``banned``. A connection that ends without a login is one failure (OpenSSH's
  PerSourcePenalties ``noauth``): the front-ends report it through ``Authenticator``.
- ``account_attack_failures`` wrong passwords at one account within ``ban_window``, from
  any addresses, mark it attacked: audited ``account.attacked`` once per window, and each
  password attempt at it waits ``account_attack_delay`` seconds before it is checked. The
  wait is bounded and per attempt: the right password still logs in, and no thread
  waits longer than that delay.
- At most ``max_concurrent_hashes`` password checks run at once: a burst of logins
  queues instead of exhausting CPU and memory.
- Bookkeeping is bounded: expired scores are pruned as they are met, and all of them once
  a table grows past ``PRUNE_AT`` entries.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from intake.adapters.audit.writer import AuditLog
from intake.core.clock import Clock, isoformat
from intake.core.config import LimitsSection

PRUNE_AT = 10_000


def network_of(ip: str, v4_prefix: int, v6_prefix: int) -> str:
    """The network an address counts in, as text: ``192.0.2.0/24``, ``2001:db8::/64``."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = v4_prefix if address.version == 4 else v6_prefix
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class Slot:
    """One admitted connection; the front-end says when it logged in, the listener releases it."""

    def __init__(self, guard: Guard, ip: str, network: str, close: Callable[[], None]) -> None:
        self.ip = ip
        self.network = network
        self.accepted = time.monotonic()
        self.authenticated = False
        self.evicted = False
        self._guard = guard
        self._close = close
        self.on_login: Callable[[], None] | None = None  # the listener's "session opened"

    def logged_in(self) -> None:
        """The connection is authenticated: it no longer counts as a startup."""
        first = not self.authenticated
        self._guard._logged_in(self)
        if first and self.on_login is not None:
            self.on_login()

    def release(self) -> None:
        self._guard._release(self)

    def evict(self) -> None:
        with suppress(OSError):
            self._close()


class _Score:
    """Failure times within a window, and whether the window already raised its alarm."""

    __slots__ = ("raised_until", "times")

    def __init__(self) -> None:
        self.times: deque[_dt.datetime] = deque()
        self.raised_until: _dt.datetime | None = None

    def add(self, now: _dt.datetime, window: _dt.timedelta) -> int:
        self.times.append(now)
        return self.count(now, window)

    def count(self, now: _dt.datetime, window: _dt.timedelta) -> int:
        while self.times and now - self.times[0] > window:
            self.times.popleft()
        return len(self.times)


class Guard:
    def __init__(self, limits: LimitsSection, clock: Clock, audit: AuditLog) -> None:
        self._limits = limits
        self._clock = clock
        self._audit = audit
        self._lock = threading.Lock()
        self._connections: dict[str, int] = defaultdict(int)
        self._total = 0
        self._startups: dict[str, list[Slot]] = {}  # network -> its unauthenticated slots
        self._startup_count = 0
        self._scores: dict[str, _Score] = {}  # address or network -> failures
        self._account_scores: dict[str, _Score] = {}
        self._account_sources: dict[str, set[str]] = defaultdict(set)
        self._banned_until: dict[str, _dt.datetime] = {}
        self._hashing = threading.BoundedSemaphore(limits.max_concurrent_hashes)

    @property
    def _window(self) -> _dt.timedelta:
        return _dt.timedelta(seconds=self._limits.ban_window)

    def network(self, ip: str) -> str:
        return network_of(ip, self._limits.ipv4_network_prefix, self._limits.ipv6_network_prefix)

    # -- bans ------------------------------------------------------------------------

    def banned(self, ip: str) -> bool:
        with self._lock:
            return self._ban_reason_locked(ip, self.network(ip)) is not None

    def _ban_reason_locked(self, ip: str, network: str) -> str | None:
        now = self._clock.now()
        for key, reason in ((ip, "address banned"), (network, "network banned")):
            until = self._banned_until.get(key)
            if until is None:
                continue
            if now < until:
                return reason
            del self._banned_until[key]
        return None

    # -- connection slots ------------------------------------------------------------

    def admit(self, ip: str, close: Callable[[], None]) -> Slot | str:
        """A new connection from ``ip``: its ``Slot``, or why it is refused.

        ``close`` ends the connection (from another thread) if it is evicted later.
        """
        network = self.network(ip)
        victim: Slot | None = None
        with self._lock:
            refusal = self._ban_reason_locked(ip, network)
            if refusal is not None:
                return refusal
            if self._total >= self._limits.max_connections:
                return "too many connections"
            if self._connections[ip] >= self._limits.max_connections_per_ip:
                return "too many connections from this address"
            held = len(self._startups.get(network, ()))
            if held >= self._limits.max_startups_per_network:
                return "too many unauthenticated connections from this network"
            start, rate, full = self._limits.max_startups
            pending = self._startup_count
            if pending >= full:
                if held:
                    return "too many unauthenticated connections"
                victim = self._evict_locked()
            elif pending >= start and held:
                chance = rate + (100 - rate) * (pending - start) / max(1, full - start)
                if secrets.randbelow(10_000) < chance * 100:
                    return "too many unauthenticated connections (early drop)"
            slot = Slot(self, ip, network, close)
            self._connections[ip] += 1
            self._total += 1
            self._startups.setdefault(network, []).append(slot)
            self._startup_count += 1
        if victim is not None:
            victim.evict()
        return slot

    def _evict_locked(self) -> Slot | None:
        """The oldest unauthenticated slot of the network holding most, taken out of count."""
        if not self._startups:
            return None
        heaviest = max(self._startups.values(), key=len)
        victim = heaviest[0]
        victim.evicted = True
        self._drop_startup_locked(victim)
        return victim

    def _drop_startup_locked(self, slot: Slot) -> None:
        held = self._startups.get(slot.network)
        if held is None or slot not in held:
            return
        held.remove(slot)
        self._startup_count -= 1
        if not held:
            del self._startups[slot.network]

    def _logged_in(self, slot: Slot) -> None:
        with self._lock:
            if not slot.authenticated:
                slot.authenticated = True
                self._drop_startup_locked(slot)

    def _release(self, slot: Slot) -> None:
        with self._lock:
            self._drop_startup_locked(slot)
            self._total -= 1
            self._connections[slot.ip] -= 1
            if self._connections[slot.ip] <= 0:
                del self._connections[slot.ip]

    def startups(self) -> int:
        """Unauthenticated connections now (for tests and the operator's view)."""
        with self._lock:
            return self._startup_count

    # -- failures --------------------------------------------------------------------

    def _score_locked(self, table: dict[str, _Score], key: str, now: _dt.datetime) -> _Score:
        if len(table) > PRUNE_AT:
            for stale in [k for k, s in table.items() if not s.count(now, self._window)]:
                del table[stale]
        score = table.get(key)
        if score is None:
            score = table[key] = _Score()
        return score

    def login_failed(self, ip: str, protocol: str, account: str | None = None) -> None:
        """One failed login (or a connection that ended without one) from ``ip``.

        ``account`` is given for a wrong password at an existing account: it counts toward
        that account's attack score as well.
        """
        now = self._clock.now()
        network = self.network(ip)
        bans: list[tuple[str, str, _dt.datetime]] = []
        attacked: tuple[int, int] | None = None
        with self._lock:
            rules = [(ip, self._limits.max_login_failures, "failed logins")]
            if network != ip:
                rules.append(
                    (network, self._limits.max_network_failures, "failed logins from this network")
                )
            for key, limit, what in rules:
                score = self._score_locked(self._scores, key, now)
                if score.add(now, self._window) < limit or key in self._banned_until:
                    continue
                until = now + _dt.timedelta(seconds=self._limits.ban_time)
                self._banned_until[key] = until
                score.times.clear()
                bans.append((key, f"{limit} {what}", until))
            if account is not None:
                attacked = self._account_failed_locked(account, ip, now)
        for key, reason, until in bans:
            fields: dict[str, object] = {"ip": key, "protocol": protocol, "reason": reason}
            if key == network and key != ip:
                fields["network"] = network
            self._audit.record("banned", until=isoformat(until), **fields)
        if attacked is not None:
            failures, sources = attacked
            self._audit.record(
                "account.attacked",
                account=account,
                ip=ip,
                protocol=protocol,
                failures=failures,
                addresses=sources,
                reason=(
                    f"{failures} wrong passwords from {sources} address(es) within "
                    f"{self._limits.ban_window} s: each attempt now waits "
                    f"{self._limits.account_attack_delay} s"
                ),
            )

    def _account_failed_locked(
        self, account: str, ip: str, now: _dt.datetime
    ) -> tuple[int, int] | None:
        score = self._score_locked(self._account_scores, account, now)
        count = score.add(now, self._window)
        sources = self._account_sources[account]
        if not score.times or count == 1:
            sources.clear()
        if len(sources) < 1000:
            sources.add(ip)
        if len(self._account_sources) > PRUNE_AT:
            for name in [n for n in self._account_sources if n not in self._account_scores]:
                del self._account_sources[name]
        if count < self._limits.account_attack_failures:
            return None
        if score.raised_until is not None and now < score.raised_until:
            return None
        score.raised_until = now + self._window
        return count, len(sources)

    def account_delay(self, account: str) -> float:
        """Seconds a password attempt at ``account`` waits first (0 unless it is attacked)."""
        now = self._clock.now()
        with self._lock:
            score = self._account_scores.get(account)
            if (
                score is None
                or score.count(now, self._window) < self._limits.account_attack_failures
            ):
                return 0.0
        return float(self._limits.account_attack_delay)

    @contextmanager
    def hashing(self) -> Iterator[None]:
        with self._hashing:
            yield
