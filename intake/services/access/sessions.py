"""The logged-in sessions of both front-ends, so a reload can end those whose login is void.

Rules:
- A front-end registers a session once it is authenticated, with the credential it
  logged in with (``Credential``), and unregisters it when the connection ends.
- ``revalidate`` (run at SIGHUP) ends every session whose account is gone or disabled,
  whose password changed since it logged in by password, or whose key is no longer the
  account's: the front-end's ``end`` closes the connection with that reason, and the
  uploads it had open become ``upload.interrupted`` with it.
- The store is asked once per session, never with a lock held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from intake.adapters.accounts import AccountStore

log = logging.getLogger("intake.sessions")


@dataclass(frozen=True)
class Credential:
    """What a session logged in with: the account, the method, and its token in the store."""

    account: str
    method: str  # "password" | "publickey"
    token: str | None  # AccountStore.credential_token at login


@dataclass(eq=False)
class LiveSession:
    credential: Credential
    ip: str
    protocol: str
    end: Callable[[str], None] = field(repr=False)


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[LiveSession] = set()

    def register(self, session: LiveSession) -> None:
        with self._lock:
            self._live.add(session)

    def unregister(self, session: LiveSession) -> None:
        with self._lock:
            self._live.discard(session)

    def live(self) -> list[LiveSession]:
        with self._lock:
            return list(self._live)

    def revalidate(self, accounts: AccountStore) -> int:
        """End the sessions whose login no longer holds; returns how many were ended."""
        ended = 0
        for session in self.live():
            cred = session.credential
            reason = accounts.invalid_login_reason(cred.account, cred.method, cred.token)
            if reason is None:
                continue
            log.info(
                "ending the %s session of %s from %s: %s",
                session.protocol,
                cred.account,
                session.ip,
                reason,
            )
            try:
                session.end(reason)
            except Exception:
                log.exception("could not end a session of %s", cred.account)
                continue
            ended += 1
        return ended
