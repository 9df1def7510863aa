"""Logging in, for every front-end: check credentials, audit the outcome, feed the guard.

Rules:
- A failed attempt is audited as ``login.failed`` with the address and the real reason
  (unknown account, disabled, wrong password, no accepted key, timeout); the client
  learns nothing. Key probes that fail are not failures by themselves (clients offer
  every key of their agent); a connection that ends without a login is one failure.
- ``login.ok`` is written by ``succeeded`` once the protocol says the session is
  authenticated (a public-key probe without signature is not a login).
- Fail closed: a login whose ``login.ok`` cannot be written is refused (``succeeded``
  raises ``AuditUnavailable``; the front-end ends the session).
- Password checks run under the guard's hashing bound; a banned address is refused
  before any hash is computed. An account under a distributed attack (the guard's
  ``account_delay``) makes each attempt at it wait first, outside the hashing bound; a
  wrong password at an existing account counts toward its attack score.
- A connection that never completes a login is one failure for its address and network,
  whatever it sent (OpenSSH's PerSourcePenalties ``noauth``): ``no_login`` audits it.
"""

from __future__ import annotations

import logging
import time

from intake.adapters.accounts import AccountStore
from intake.adapters.audit.writer import AuditLog
from intake.core.errors import AuditUnavailable
from intake.core.model import Account
from intake.services.access.guard import Guard

log = logging.getLogger("intake.login")


class Authenticator:
    def __init__(self, accounts: AccountStore, guard: Guard, audit: AuditLog) -> None:
        self._accounts = accounts
        self._guard = guard
        self._audit = audit

    def _failed(
        self,
        name: str | None,
        ip: str,
        protocol: str,
        method: str,
        reason: str,
        guessed: bool = False,
    ) -> None:
        try:
            self._audit.record(
                "login.failed", account=name, ip=ip, protocol=protocol, method=method, reason=reason
            )
        except AuditUnavailable as exc:  # refused anyway; the guard still counts it
            log.error("login.failed not recorded: %s", exc)
        self._guard.login_failed(ip, protocol, account=name if guessed else None)

    def _why_refused(self, name: str) -> str:
        known = self._accounts.get(name)
        if known is None:
            return "unknown account"
        if not known.enabled:
            return "account disabled"
        return ""

    def password(self, name: str, password: str, ip: str, protocol: str) -> Account | None:
        if self._guard.banned(ip):
            self._failed(name, ip, protocol, "password", "address banned")
            return None
        delay = self._guard.account_delay(name)
        if delay:
            time.sleep(delay)  # bounded; this connection's own thread, no hashing slot held
        with self._guard.hashing():
            account = self._accounts.authenticate_password(name, password)
        if account is None:
            reason = self._why_refused(name) or "wrong password"
            guessed = reason in ("wrong password", "account disabled")
            self._failed(name, ip, protocol, "password", reason, guessed=guessed)
        return account

    def failed_session(self, name: str | None, ip: str, protocol: str, reason: str) -> None:
        """A connection ended without a login (timeout, no key accepted): one failure."""
        if name is not None:
            reason = self._why_refused(name) or reason
        self._failed(name, ip, protocol, "session", reason)

    def no_login(self, name: str | None, ip: str, protocol: str, reason: str) -> None:
        """A connection ended before any login attempt was judged: one failure (noauth)."""
        self._failed(name, ip, protocol, "none", reason)

    def succeeded(self, account: Account, ip: str, protocol: str, method: str) -> None:
        """Record the login; ``AuditUnavailable`` means the front-end must refuse it."""
        self._audit.record(
            "login.ok",
            account=account.name,
            role=account.role.value,
            ip=ip,
            protocol=protocol,
            method=method,
        )
