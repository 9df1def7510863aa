"""Who may connect and try to log in: connection caps, failed-login bans, bounded hashing.

Rules (shared by SFTP and FTPS, so a client cannot dodge a ban by switching protocol):
- A connection is refused before any protocol work when its address is banned, when the
  server has ``max_connections`` sessions, or that address has ``max_connections_per_ip``.
- ``max_login_failures`` failed logins from one address within ``ban_window`` seconds ban
  it for ``ban_time`` seconds, audited once as ``banned``.
- At most ``max_concurrent_hashes`` password checks run at once: a burst of logins
  queues instead of exhausting CPU and memory.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager

from intake.adapters.audit import AuditLog
from intake.core.clock import Clock, isoformat
from intake.core.config import LimitsSection


class Guard:
    def __init__(self, limits: LimitsSection, clock: Clock, audit: AuditLog) -> None:
        self._limits = limits
        self._clock = clock
        self._audit = audit
        self._lock = threading.Lock()
        self._connections: dict[str, int] = defaultdict(int)
        self._failures: dict[str, deque[_dt.datetime]] = defaultdict(deque)
        self._banned_until: dict[str, _dt.datetime] = {}
        self._hashing = threading.BoundedSemaphore(limits.max_concurrent_hashes)

    def banned(self, ip: str) -> bool:
        with self._lock:
            return self._banned_locked(ip)

    def _banned_locked(self, ip: str) -> bool:
        until = self._banned_until.get(ip)
        if until is None:
            return False
        if self._clock.now() >= until:
            del self._banned_until[ip]
            return False
        return True

    def admit(self, ip: str) -> str | None:
        """Count a new connection from ``ip``; returns why it is refused, or None."""
        with self._lock:
            if self._banned_locked(ip):
                return "address banned"
            if sum(self._connections.values()) >= self._limits.max_connections:
                return "too many connections"
            if self._connections[ip] >= self._limits.max_connections_per_ip:
                return "too many connections from this address"
            self._connections[ip] += 1
            return None

    def release(self, ip: str) -> None:
        with self._lock:
            self._connections[ip] -= 1
            if self._connections[ip] <= 0:
                del self._connections[ip]

    def login_failed(self, ip: str, protocol: str) -> None:
        now = self._clock.now()
        window = _dt.timedelta(seconds=self._limits.ban_window)
        with self._lock:
            failures = self._failures[ip]
            failures.append(now)
            while failures and now - failures[0] > window:
                failures.popleft()
            if len(failures) < self._limits.max_login_failures or self._banned_locked(ip):
                return
            until = now + _dt.timedelta(seconds=self._limits.ban_time)
            self._banned_until[ip] = until
            failures.clear()
        self._audit.record(
            "banned",
            ip=ip,
            protocol=protocol,
            reason=f"{self._limits.max_login_failures} failed logins",
            until=isoformat(until),
        )

    @contextmanager
    def hashing(self) -> Iterator[None]:
        with self._hashing:
            yield
