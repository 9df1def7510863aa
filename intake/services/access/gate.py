"""What a session asks of the guard while it logs in: the one seam between them.

In one process the ``Guard`` answers itself; a worker process (``[server] workers``)
answers through its channel to the supervisor, which owns the one ``Guard`` of the
service, so blocks, scores and attack delays are the same whichever process serves a
connection. Only these five questions cross that seam.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Gate(Protocol):
    def banned(self, ip: str) -> bool:
        """The address or its network is blocked now."""
        ...

    def account_delay(self, account: str) -> float:
        """Seconds a password attempt at ``account`` waits first (it is under attack)."""
        ...

    def hashing(self) -> AbstractContextManager[None]:
        """Hold one of the ``max_concurrent_hashes`` slots while a password is checked."""
        ...

    def login_failed(
        self, ip: str, protocol: str, cost: int = ..., account: str | None = None
    ) -> None:
        """One failure from ``ip`` costing ``cost`` points (``guard.Cost``)."""
        ...

    def ended_before_login(self, ip: str, protocol: str, reason: str, evicted: bool) -> None:
        """A connection ended before any login attempt."""
        ...
