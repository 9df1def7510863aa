"""Who may connect and try to log in: connection slots, the waiting room, blocks, scores.

Rules (shared by SFTP and FTPS, so a client cannot dodge a rule by switching protocol):
- ``admit`` decides in the accepting thread, before a thread is started for the
  connection: refused when its address or its network is blocked (unless it is in
  ``trusted_networks``), when the server has ``max_connections`` sessions, or the
  address ``max_connections_per_ip`` (connections waiting included).
- A "network" is the address's IPv4 /``ipv4_network_prefix`` or IPv6
  /``ipv6_network_prefix`` (OpenSSH's PerSourceNetBlockSize); an IPv4-mapped IPv6
  address counts as IPv4.
- Unauthenticated connections ("startups") are bounded apart, so a flood that never logs
  in cannot hold every slot (OpenSSH's MaxStartups ``start:rate:full``, with a per-network
  cap): a network holds at most ``max_startups_per_network`` of them; past ``start`` a
  new one from a network that already holds one, or one over its network's cap, waits
  (below); at ``full`` a network that holds none still gets in at once, by evicting the
  oldest unauthenticated connection of the network holding most. A member connecting
  from a network that holds no startup therefore always gets in at once. ``rate`` is
  read for OpenSSH's syntax and no longer used: nothing is dropped at random.
- The waiting room: a connection over those caps is accepted and held, without a
  thread and without a byte sent, for at most ``prelogin_wait`` seconds. A freed
  startup slot goes to the waiting connection of the network holding fewest startups
  (the oldest first). The room holds ``full`` connections; when it is full a newcomer
  takes the place of the oldest waiting connection of the network holding most of the
  room, if that network holds more than one more than the newcomer's; otherwise the
  newcomer is refused. Only a network holding more than its share is ever cut.
- Scores (OpenSSH's PerSourcePenalties, SFTPGo's defender): each failure adds points to
  its address and to its network, for ``ban_window`` seconds. A wrong password (or a
  login attempt that never succeeded) at an existing or disabled account costs
  ``Cost.AUTHFAIL`` (one failure), at an unknown account ``Cost.UNKNOWN_ACCOUNT`` (two),
  a connection that tried no password and no key ``Cost.NOAUTH`` (a tenth: a client
  checking a host key or certificate is not guessing), an eviction nothing (it is the
  flood's doing, never the evicted address's). ``max_login_failures`` failures of an
  address block it; ``max_network_failures`` failures of a network block the network
  only when they come from ``NETWORK_MIN_ADDRESSES`` or more of its addresses
  (carrier-grade NAT puts many customers behind a few addresses).
- A block lasts ``first_ban_time`` seconds the first time and doubles at each further
  block of the same source within ``bans.KEEP`` of the previous one, up to ``ban_time``.
  It is audited once as ``banned`` (``until``, ``failures``, ``blocks``) and kept in
  ``state/bans.db`` (``intake.adapters.bans``): a restart or a SIGHUP keeps it; ``lift``
  (``intake ban lift``, audited ``unbanned``) ends it, and a running ``serve`` sees the
  lift at its next connection (it asks the file whether it changed while it holds a
  block). Addresses in ``trusted_networks`` are never scored nor blocked.
- ``account_attack_failures`` wrong passwords at one account within ``ban_window``, from
  any addresses, mark it attacked: audited ``account.attacked`` once per window, and each
  password attempt at it waits ``account_attack_delay`` seconds before it is checked. The
  wait is bounded and per attempt: the right password still logs in, and no thread
  waits longer than that delay.
- Connections that end before any login attempt are scored one by one and audited per
  network (``prelogin.PreLoginDigest``); ``tick`` (the listeners, about every second)
  ends the waits that lasted too long and writes the digest's due summaries.
- At most ``max_concurrent_hashes`` password checks run at once: a burst of logins
  queues instead of exhausting CPU and memory.
- Bookkeeping is bounded: expired scores are pruned as they are met, and all of them once
  a table grows past ``PRUNE_AT`` entries.
"""

from __future__ import annotations

import datetime as _dt
import enum
import ipaddress
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

from intake.adapters.audit.writer import AuditLog
from intake.adapters.bans import KEEP, Ban, BanStore, BanStoreError
from intake.core.clock import Clock, isoformat
from intake.core.config import LimitsSection
from intake.core.errors import NotFound, UsageError
from intake.services.access.prelogin import PreLoginDigest

log = logging.getLogger("intake.guard")
PRUNE_AT = 10_000
POINTS = 10  # points of one failure (a wrong password)
NETWORK_MIN_ADDRESSES = 3


class Cost(enum.IntEnum):
    """What one failure adds to its address's and network's scores, in points."""

    EVICTED = 0
    NOAUTH = 1
    AUTHFAIL = POINTS
    UNKNOWN_ACCOUNT = 2 * POINTS


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


def parse_source(text: str) -> str:
    """An address or a network as the guard names it (``UsageError`` if neither)."""
    text = text.strip()
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        address = ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"not an address or a network: {text!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


@dataclass(frozen=True)
class Refusal:
    """Why a connection is refused; ``until`` when it is blocked."""

    reason: str
    until: _dt.datetime | None = None

    def __str__(self) -> str:
        return self.reason


class Waiting:
    """``admit``'s answer for a connection put in the waiting room."""


class SlotKeeper(Protocol):
    """Who counts a slot: the ``Guard``, or a worker's channel to the supervisor's guard."""

    def slot_logged_in(self, slot: Slot) -> None: ...

    def slot_released(self, slot: Slot) -> None: ...


class Slot:
    """One admitted connection; the front-end says when it logged in, the listener releases it."""

    def __init__(
        self,
        keeper: SlotKeeper,
        ip: str,
        network: str,
        close: Callable[[], None],
        accepted: float | None = None,
    ) -> None:
        self.ip = ip
        self.network = network
        self.accepted = time.monotonic() if accepted is None else accepted
        self.authenticated = False
        self.evicted = False
        self._keeper = keeper
        self._close = close
        self.on_login: Callable[[], None] | None = None  # the listener's "session opened"

    def logged_in(self) -> None:
        """The connection is authenticated: it no longer counts as a startup."""
        first = not self.authenticated
        self._keeper.slot_logged_in(self)
        if first and self.on_login is not None:
            self.on_login()

    def release(self) -> None:
        self._keeper.slot_released(self)

    def evict(self) -> None:
        with suppress(OSError):
            self._close()

    def hand_over(self, close: Callable[[], None]) -> None:
        """The connection now lives in another process: evicting it calls ``close``."""
        self._close = close


class _Waiter:
    """A connection in the waiting room: its socket is held by the listener's closures."""

    __slots__ = ("close", "cut", "ip", "network", "owner", "since", "start")

    def __init__(
        self,
        ip: str,
        network: str,
        close: Callable[[], None],
        start: Callable[[Slot], None],
        cut: Callable[[Refusal], None],
        owner: object,
    ) -> None:
        self.ip = ip
        self.network = network
        self.close = close
        self.start = start
        self.cut = cut
        self.owner = owner
        self.since = time.monotonic()


class _Score:
    """Failures within a window (time, points, address), and whether it raised its alarm."""

    __slots__ = ("raised_until", "times")

    def __init__(self) -> None:
        self.times: deque[tuple[_dt.datetime, int, str]] = deque()
        self.raised_until: _dt.datetime | None = None

    def add(self, now: _dt.datetime, window: _dt.timedelta, points: int = 1, ip: str = "") -> int:
        self.times.append((now, points, ip))
        return self.points(now, window)

    def points(self, now: _dt.datetime, window: _dt.timedelta) -> int:
        while self.times and now - self.times[0][0] > window:
            self.times.popleft()
        return sum(p for _, p, _ in self.times)

    def count(self, now: _dt.datetime, window: _dt.timedelta) -> int:
        self.points(now, window)
        return len(self.times)

    def addresses(self) -> int:
        return len({ip for _, _, ip in self.times})


Start = tuple[_Waiter, Slot]


class Guard:
    def __init__(
        self,
        limits: LimitsSection,
        clock: Clock,
        audit: AuditLog,
        store: BanStore | None = None,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._audit = audit
        self._store = store
        self.digest = PreLoginDigest(audit, clock)
        self._lock = threading.Lock()
        self._connections: dict[str, int] = defaultdict(int)
        self._total = 0
        self._startups: dict[str, list[Slot]] = {}  # network -> its unauthenticated slots
        self._startup_count = 0
        self._waiting: list[_Waiter] = []
        self._scores: dict[str, _Score] = {}  # address or network -> failures
        self._account_scores: dict[str, _Score] = {}
        self._account_sources: dict[str, set[str]] = defaultdict(set)
        self._bans: dict[str, Ban] = {}  # current and recent blocks (for their length)
        self._trusted = [ipaddress.ip_network(n) for n in limits.trusted_networks]
        self._hashing = threading.BoundedSemaphore(limits.max_concurrent_hashes)
        self._load()

    @property
    def _window(self) -> _dt.timedelta:
        return _dt.timedelta(seconds=self._limits.ban_window)

    def network(self, ip: str) -> str:
        return network_of(ip, self._limits.ipv4_network_prefix, self._limits.ipv6_network_prefix)

    def trusted(self, ip: str) -> bool:
        """True for an address in ``trusted_networks``: never scored, never blocked."""
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self._trusted)

    # -- blocks ----------------------------------------------------------------------

    def _load(self) -> None:
        if self._store is None:
            return
        try:
            self._bans = {ban.key: ban for ban in self._store.all()}
            self._store.changed()  # the version to compare with from now on
        except BanStoreError as exc:
            log.error("%s; blocks are kept in memory only", exc)

    def _sync_locked(self, now: _dt.datetime) -> None:
        """While a block holds, take in another process's changes (a lift) first."""
        if self._store is None or not any(b.active(now) for b in self._bans.values()):
            return
        try:
            if not self._store.changed():
                return
            stored = {ban.key: ban for ban in self._store.all()}
        except BanStoreError as exc:
            log.error("%s; blocks are kept in memory only", exc)
            return
        for key in [k for k in self._bans if k not in stored]:
            del self._bans[key]
            self._scores.pop(key, None)
        self._bans.update(stored)

    def banned(self, ip: str) -> bool:
        with self._lock:
            now = self._clock.now()
            self._sync_locked(now)
            return self._block_locked(ip, self.network(ip), now) is not None

    def _block_locked(self, ip: str, network: str, now: _dt.datetime) -> Refusal | None:
        if self.trusted(ip):
            return None
        for key, reason in ((ip, "address banned"), (network, "network banned")):
            ban = self._bans.get(key)
            if ban is not None and ban.active(now):
                return Refusal(reason, ban.until)
        return None

    def bans(self) -> list[Ban]:
        """The blocks in force now, as the store has them (for ``intake ban list``)."""
        now = self._clock.now()
        if self._store is not None:
            rows = self._store.all()
        else:
            with self._lock:
                rows = list(self._bans.values())
        return [ban for ban in rows if ban.active(now)]

    def lift(self, text: str, protocol: str = "cli") -> Ban:
        """End the block of an address or network at once; audited ``unbanned``."""
        key = parse_source(text)
        now = self._clock.now()
        current = {ban.key: ban for ban in self.bans()}
        ban = current.get(key)
        if ban is None:
            raise NotFound(f"{key} is not blocked")
        # Fail closed: no record, no lift (``AuditUnavailable`` leaves the block).
        self._audit.record(
            "unbanned",
            ip=key,
            protocol=protocol,
            reason="block lifted by the operator",
            since=isoformat(ban.since),
            until=isoformat(ban.until),
            lifted=isoformat(now),
        )
        if self._store is not None:
            self._store.remove(key)
        with self._lock:
            self._bans.pop(key, None)
            self._scores.pop(key, None)
        return ban

    # -- connection slots ------------------------------------------------------------

    def admit(
        self,
        ip: str,
        close: Callable[[], None],
        start: Callable[[Slot], None] | None = None,
        cut: Callable[[Refusal], None] | None = None,
        owner: object = None,
    ) -> Slot | Refusal | Waiting:
        """A new connection from ``ip``: its ``Slot``, why it is refused, or ``Waiting``.

        ``close`` ends the connection (from another thread) if it is evicted later. With
        ``start`` and ``cut`` it may wait: the guard later calls ``start`` with its slot
        (from the thread that freed one) or ``cut`` with the reason it was not admitted.
        """
        network = self.network(ip)
        victim: Slot | None = None
        displaced: _Waiter | None = None
        now = self._clock.now()
        with self._lock:
            self._sync_locked(now)
            refusal = self._block_locked(ip, network, now)
            if refusal is not None:
                return refusal
            if self._total >= self._limits.max_connections:
                return Refusal("too many connections")
            if self._connections[ip] >= self._limits.max_connections_per_ip:
                return Refusal("too many connections from this address")
            decision = self._startup_decision_locked(network)
            if decision == "wait":
                if start is None or cut is None:
                    return Refusal("too many unauthenticated connections")
                room = self._limits.max_startups[2]
                if len(self._waiting) >= room:
                    displaced = self._displace_locked(network)
                    if displaced is None:
                        return Refusal("too many connections waiting from this network")
                self._waiting.append(_Waiter(ip, network, close, start, cut, owner))
                self._connections[ip] += 1
                result: Slot | Waiting = Waiting()
            else:
                if decision == "evict":
                    victim = self._evict_locked()
                result = self._open_slot_locked(ip, network, close)
        if victim is not None:
            victim.evict()
        if displaced is not None:
            self._cut(displaced, Refusal("too many connections waiting from this network"))
        return result

    def _startup_decision_locked(self, network: str) -> str:
        """``start``, ``evict`` (start, by evicting a flood's slot) or ``wait``."""
        held = len(self._startups.get(network, ()))
        if held >= self._limits.max_startups_per_network:
            return "wait"
        start, _rate, full = self._limits.max_startups
        if self._startup_count >= full:
            return "wait" if held else "evict"
        if self._startup_count >= start and held:
            return "wait"
        return "start"

    def _displace_locked(self, network: str) -> _Waiter | None:
        """The waiting room is full: the place of the network holding more than its share."""
        counts: dict[str, int] = defaultdict(int)
        for waiter in self._waiting:
            counts[waiter.network] += 1
        heaviest = max(counts, key=lambda n: counts[n])
        if counts[heaviest] <= counts.get(network, 0) + 1:
            return None
        oldest = next(w for w in self._waiting if w.network == heaviest)
        self._remove_waiter_locked(oldest)
        return oldest

    def _remove_waiter_locked(self, waiter: _Waiter) -> None:
        self._waiting.remove(waiter)
        self._connections[waiter.ip] -= 1
        if self._connections[waiter.ip] <= 0:
            del self._connections[waiter.ip]

    def _open_slot_locked(self, ip: str, network: str, close: Callable[[], None]) -> Slot:
        slot = Slot(self, ip, network, close)
        self._connections[ip] += 1
        self._total += 1
        self._startups.setdefault(network, []).append(slot)
        self._startup_count += 1
        return slot

    def _promote_locked(self) -> list[Start]:
        """Give freed startup slots to waiting connections: fewest startups held first."""
        started: list[Start] = []
        while self._waiting and self._total < self._limits.max_connections:
            ranked = sorted(
                self._waiting, key=lambda w: (len(self._startups.get(w.network, ())), w.since)
            )
            chosen = next(
                (w for w in ranked if self._startup_decision_locked(w.network) == "start"), None
            )
            if chosen is None:
                break
            self._waiting.remove(chosen)
            slot = Slot(self, chosen.ip, chosen.network, chosen.close)
            self._total += 1  # its address was counted while it waited
            self._startups.setdefault(chosen.network, []).append(slot)
            self._startup_count += 1
            started.append((chosen, slot))
        return started

    def _started(self, started: list[Start]) -> None:
        for waiter, slot in started:
            try:
                waiter.start(slot)
            except Exception:
                log.exception("a waiting connection from %s could not start", waiter.ip)
                slot.release()

    def _cut(self, waiter: _Waiter, refusal: Refusal) -> None:
        try:
            waiter.cut(refusal)
        except Exception:
            log.exception("a waiting connection from %s could not be closed", waiter.ip)

    def waiting(self) -> int:
        """Connections in the waiting room now (for tests and the operator's view)."""
        with self._lock:
            return len(self._waiting)

    def tick(self) -> None:
        """End the waits that lasted ``prelogin_wait``; write the digest's due summaries."""
        limit = time.monotonic() - self._limits.prelogin_wait
        with self._lock:
            expired = [w for w in self._waiting if w.since <= limit]
            for waiter in expired:
                self._remove_waiter_locked(waiter)
            started = self._promote_locked()
        self._started(started)
        for waiter in expired:
            self._cut(waiter, Refusal("no unauthenticated slot freed in time"))
        self.digest.flush()

    def stop_waiting(self, owner: object) -> None:
        """Close every connection ``owner`` (a listener that stops) left waiting."""
        with self._lock:
            mine = [w for w in self._waiting if w.owner is owner]
            for waiter in mine:
                self._remove_waiter_locked(waiter)
        for waiter in mine:
            self._cut(waiter, Refusal("server shutting down"))

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

    def slot_logged_in(self, slot: Slot) -> None:
        with self._lock:
            started: list[Start] = []
            if not slot.authenticated:
                slot.authenticated = True
                self._drop_startup_locked(slot)
                started = self._promote_locked()
        self._started(started)

    def slot_released(self, slot: Slot) -> None:
        with self._lock:
            self._drop_startup_locked(slot)
            self._total -= 1
            self._connections[slot.ip] -= 1
            if self._connections[slot.ip] <= 0:
                del self._connections[slot.ip]
            started = self._promote_locked()
        self._started(started)

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

    def ended_before_login(self, ip: str, protocol: str, reason: str, evicted: bool) -> None:
        """A connection ended before any login attempt: scored (unless evicted), digested."""
        self.digest.note(ip, self.network(ip), protocol, reason)
        if not evicted:
            self.login_failed(ip, protocol, Cost.NOAUTH)

    def login_failed(
        self, ip: str, protocol: str, cost: int = Cost.AUTHFAIL, account: str | None = None
    ) -> None:
        """One failure from ``ip`` costing ``cost`` points (``Cost``).

        ``account`` is given for a wrong password at an existing account: it counts toward
        that account's attack score as well.
        """
        now = self._clock.now()
        network = self.network(ip)
        bans: list[Ban] = []
        attacked: tuple[int, int] | None = None
        with self._lock:
            if cost and not self.trusted(ip):
                bans = self._score_failure_locked(ip, network, protocol, cost, now)
            if account is not None:
                attacked = self._account_failed_locked(account, ip, now)
        for ban in bans:
            self._record_ban(ban, network, now)
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

    def _score_failure_locked(
        self, ip: str, network: str, protocol: str, cost: int, now: _dt.datetime
    ) -> list[Ban]:
        rules = [(ip, "address", self._limits.max_login_failures, 1)]
        if network != ip:
            rules.append(
                (network, "network", self._limits.max_network_failures, NETWORK_MIN_ADDRESSES)
            )
        bans: list[Ban] = []
        for key, kind, limit, addresses in rules:
            score = self._score_locked(self._scores, key, now)
            points = score.add(now, self._window, cost, ip)
            current = self._bans.get(key)
            if points < limit * POINTS or score.addresses() < addresses:
                continue
            if current is not None and current.active(now):
                continue
            blocks = 1
            if current is not None and now - current.until < KEEP:
                blocks = current.blocks + 1
            first = min(self._limits.first_ban_time, self._limits.ban_time)
            seconds = min(self._limits.ban_time, first * 2 ** min(blocks - 1, 30))
            where = "this address" if kind == "address" else f"{score.addresses()} addresses"
            ban = Ban(
                key=key,
                kind=kind,
                reason=(
                    f"{points / POINTS:g} failures from {where} within "
                    f"{self._limits.ban_window} s (limit {limit})"
                ),
                protocol=protocol,
                since=now,
                until=now + _dt.timedelta(seconds=seconds),
                failures=points / POINTS,
                blocks=blocks,
            )
            self._bans[key] = ban
            score.times.clear()
            bans.append(ban)
        if len(self._bans) > PRUNE_AT:
            for stale in [k for k, b in self._bans.items() if now - b.until >= KEEP]:
                del self._bans[stale]
        return bans

    def _record_ban(self, ban: Ban, network: str, now: _dt.datetime) -> None:
        if self._store is not None:
            try:
                self._store.put(ban, now)
            except BanStoreError as exc:
                log.error("%s; this block is kept in memory only", exc)
        fields: dict[str, object] = {"ip": ban.key, "protocol": ban.protocol, "reason": ban.reason}
        if ban.kind == "network":
            fields["network"] = network
        seconds = round((ban.until - ban.since).total_seconds())
        self._audit.record(
            "banned",
            until=isoformat(ban.until),
            failures=ban.failures,
            blocks=ban.blocks,
            seconds=seconds,
            **fields,
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
