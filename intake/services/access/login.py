"""Logging in, for every front-end: check credentials, audit the outcome, feed the guard.

Rules:
- A failed attempt is audited as ``login.failed`` with the address and the real reason
  (unknown account, disabled, wrong password, no accepted key, timeout); the client
  learns nothing. Key probes that fail are not failures by themselves (clients offer
  every key of their agent). Each failure costs its address what the guard's ``Cost``
  says: a wrong password or a session that named an account and never logged in one
  failure, at an unknown account two.
- ``login.ok`` is written by ``succeeded`` once the protocol says the session is
  authenticated (a public-key probe without signature is not a login).
- Fail closed: a login whose ``login.ok`` cannot be written is refused (``succeeded``
  raises ``AuditUnavailable``; the front-end ends the session).
- Password checks run under the guard's hashing bound; a banned address is refused
  before any hash is computed. An account under a distributed attack (the guard's
  ``account_delay``) makes each attempt at it wait first, outside the hashing bound; a
  wrong password at an existing account counts toward its attack score.
- A connection that ends before any login attempt (no user name, no password, no key:
  a client that refused the host key or the certificate, a scanner) costs a tenth of a
  failure (OpenSSH's PerSourcePenalties ``noauth``), an eviction nothing; ``no_login``
  hands it to the guard, which audits such connections per network and minute
  (``prelogin.PreLoginDigest``).
"""

from __future__ import annotations

import logging
import time

from intake.adapters.accounts import AccountStore
from intake.adapters.audit.writer import AuditLog
from intake.core.errors import AuditUnavailable
from intake.core.model import Account
from intake.services.access.gate import Gate
from intake.services.access.guard import Cost

log = logging.getLogger("intake.login")


class Authenticator:
    def __init__(self, accounts: AccountStore, gate: Gate, audit: AuditLog) -> None:
        self._accounts = accounts
        self.gate = gate  # the guard, or a worker's channel to it
        self._audit = audit

    def _failed(
        self,
        name: str | None,
        ip: str,
        protocol: str,
        method: str,
        reason: str,
        cost: int,
        guessed: bool = False,
    ) -> None:
        try:
            self._audit.record(
                "login.failed", account=name, ip=ip, protocol=protocol, method=method, reason=reason
            )
        except AuditUnavailable as exc:  # refused anyway; the guard still counts it
            log.error("login.failed not recorded: %s", exc)
        self.gate.login_failed(ip, protocol, cost, account=name if guessed else None)

    @staticmethod
    def _cost(reason: str) -> int:
        return Cost.UNKNOWN_ACCOUNT if reason == "unknown account" else Cost.AUTHFAIL

    def _why_refused(self, name: str) -> str:
        known = self._accounts.get(name)
        if known is None:
            return "unknown account"
        if not known.enabled:
            return "account disabled"
        return ""

    def password(self, name: str, password: str, ip: str, protocol: str) -> Account | None:
        if self.gate.banned(ip):
            self._failed(name, ip, protocol, "password", "address banned", Cost.AUTHFAIL)
            return None
        delay = self.gate.account_delay(name)
        if delay:
            time.sleep(delay)  # bounded; this connection's own thread, no hashing slot held
        with self.gate.hashing():
            account = self._accounts.authenticate_password(name, password)
        if account is None:
            reason = self._why_refused(name) or "wrong password"
            guessed = reason in ("wrong password", "account disabled")
            self._failed(
                name, ip, protocol, "password", reason, self._cost(reason), guessed=guessed
            )
        return account

    def failed_session(
        self, name: str | None, ip: str, protocol: str, reason: str, attempted: bool = True
    ) -> None:
        """A connection named an account and ended without a login (timeout, no key
        accepted): one failure, two at an unknown account. ``attempted`` False (FTPS
        ``USER`` refused before TLS: no password was read) costs as ``no_login``."""
        if name is not None:
            reason = self._why_refused(name) or reason
        cost = self._cost(reason) if attempted else Cost.NOAUTH
        self._failed(name, ip, protocol, "session", reason, cost)

    def no_login(self, ip: str, protocol: str, reason: str, evicted: bool = False) -> None:
        """A connection ended before any login attempt: the guard scores it (a tenth of a
        failure; an eviction nothing) and audits it with its network's others."""
        self.gate.ended_before_login(ip, protocol, reason, evicted)

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
