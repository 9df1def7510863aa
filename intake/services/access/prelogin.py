"""Connections that end before any login attempt, audited per network, not per connection.

A client that checks a host key or a certificate and leaves, a port scanner, a
connect-and-close flood: each such connection is scored by the guard, but the audit log
gets at most one ``login.failed`` record (``method`` ``none``) per network per
``INTERVAL``, so its growth under a flood is bounded by networks, not connections.

Rules:
- The first such connection of a network is written at once (``ip`` its address,
  ``count`` 1): one client's mistake is visible at once, as before.
- Those that follow within ``INTERVAL`` of the network's last record are counted, and
  written as one summary once ``INTERVAL`` has passed (``flush``, called by the
  listeners about every second, and at every stop): ``ip`` the address when there was
  one, else the network; ``network``; ``count``; ``addresses`` (the first
  ``MAX_ADDRESSES`` of them, ``address_count`` in all); ``reasons`` (reason -> count);
  ``protocols`` (protocol -> count); ``reason`` the same in words.
- Bounded: at most ``MAX_NETWORKS`` networks are tracked; past that, the oldest
  pending summary is written early (still at most one record per network per interval
  in the usual case, and the table never grows without bound).
- A record that cannot be written (the log is full) is dropped with one error line:
  nothing here refuses anything.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

from intake.adapters.audit.writer import AuditLog
from intake.core.clock import Clock
from intake.core.errors import AuditUnavailable

log = logging.getLogger("intake.login")
INTERVAL = _dt.timedelta(minutes=1)
MAX_ADDRESSES = 20
MAX_NETWORKS = 10_000


@dataclass
class _Pending:
    first: _dt.datetime
    addresses: dict[str, None] = field(default_factory=dict)  # ordered set
    address_count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    protocols: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(self.reasons.values())


class PreLoginDigest:
    """Counts connections that ended before a login, per network; writes the summaries."""

    def __init__(self, audit: AuditLog, clock: Clock) -> None:
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._written: dict[str, _dt.datetime] = {}  # network -> its last record
        self._pending: dict[str, _Pending] = {}

    def note(self, ip: str, network: str, protocol: str, reason: str) -> None:
        """One connection from ``ip`` ended before any login attempt."""
        now = self._clock.now()
        single: dict[str, object] | None = None
        due: list[tuple[str, _Pending]] = []
        with self._lock:
            last = self._written.get(network)
            if (last is None or now - last >= INTERVAL) and network not in self._pending:
                self._written[network] = now
                single = {"ip": ip, "network": network, "protocol": protocol, "reason": reason}
            else:
                pending = self._pending.get(network)
                if pending is None:
                    pending = self._pending[network] = _Pending(now)
                if ip not in pending.addresses:
                    pending.address_count += 1
                    if len(pending.addresses) < MAX_ADDRESSES:
                        pending.addresses[ip] = None
                pending.reasons[reason] += 1
                pending.protocols[protocol] += 1
            if len(self._written) > MAX_NETWORKS:
                due = self._prune_locked(now)
        if single is not None:
            self._write(count=1, addresses=[single["ip"]], **single)
        for network_, pending in due:
            self._write_summary(network_, pending)

    def _prune_locked(self, now: _dt.datetime) -> list[tuple[str, _Pending]]:
        for key in [k for k, t in self._written.items() if now - t >= INTERVAL]:
            if key not in self._pending:
                del self._written[key]
        due: list[tuple[str, _Pending]] = []
        while len(self._written) > MAX_NETWORKS and self._pending:
            oldest = min(self._pending, key=lambda k: self._pending[k].first)
            due.append((oldest, self._pending.pop(oldest)))
            self._written[oldest] = now
        while len(self._written) > MAX_NETWORKS:
            stale = min(
                (k for k in self._written if k not in self._pending),
                key=lambda k: self._written[k],
            )
            del self._written[stale]
        return due

    def flush(self, everything: bool = False) -> None:
        """Write the summaries that are due (all of them when ``everything``, at a stop)."""
        now = self._clock.now()
        with self._lock:
            for key in [k for k, t in self._written.items() if now - t >= INTERVAL]:
                if key not in self._pending:
                    del self._written[key]
            due = [
                (network, pending)
                for network, pending in self._pending.items()
                if everything or now - self._written.get(network, pending.first) >= INTERVAL
            ]
            for network, _ in due:
                del self._pending[network]
                self._written[network] = now
        for network, pending in due:
            self._write_summary(network, pending)

    def _write_summary(self, network: str, pending: _Pending) -> None:
        addresses = list(pending.addresses)
        words = "; ".join(f"{reason} x{n}" for reason, n in pending.reasons.most_common())
        self._write(
            ip=addresses[0] if pending.address_count == 1 else network,
            network=network,
            protocol=pending.protocols.most_common(1)[0][0],
            protocols=dict(pending.protocols),
            count=pending.count,
            addresses=addresses,
            address_count=pending.address_count,
            reasons=dict(pending.reasons),
            reason=f"{pending.count} connection(s) ended before a login: {words}",
        )

    def _write(self, **fields: object) -> None:
        try:
            self._audit.record("login.failed", account=None, method="none", **fields)
        except AuditUnavailable as exc:
            log.error("login.failed (before any login attempt) not recorded: %s", exc)
