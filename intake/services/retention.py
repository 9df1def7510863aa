"""The retention book: which policy governs each catalogued file, and when it ends.

An entry gets its policy and its ``expires_at`` when it is catalogued, so the operator and
the technician see, right after an upload, the date the backup will be destroyed. The
sweeper still decides from the policies it reads at each run; this book only records,
ahead of time, what that decision will be.

Rules:
- ``assign_new`` sets the policy of live entries that have none yet (new arrivals, and
  files no policy matched so far); ``reassess`` recomputes every live entry (at ``serve``
  start, on SIGHUP, and at every sweep), so a policy change moves dates forward or back.
- The policies are read from ``policies/`` by ``reload``; an invalid file keeps the book
  on the policies it had (a ``ConfigError`` for the caller to report); the sweeper refuses
  to act on such a folder anyway.
- ``expires_at`` is ``intake.core.policy.expires_at``: the end of a destroy policy's
  period counted from the server's arrival time; ``None`` for a file that waits to be
  forwarded or that no policy matches.
- Thread-safe: the cataloguer's threads and the signal handler's reload may meet here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from intake.adapters.catalog.catalog import Catalog, Entry
from intake.adapters.holidays_fr import working_calendar
from intake.core import policy as policy_mod
from intake.core.errors import UsageError
from intake.core.model import Role
from intake.core.policy import Policy


def load_policies(folder: Path) -> list[Policy]:
    """Every ``*.toml`` in ``folder`` (hidden files skipped), in the order they are tried."""
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.glob("*.toml") if not p.name.startswith("."))
    texts = []
    for path in files:
        try:
            texts.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read the policy ({exc})") from None
    return policy_mod.parse_policies(texts)


class RoleSource(Protocol):
    """What the book needs of the account store: the accounts of each role."""

    def names(self, role: Role) -> list[str]: ...


class RetentionBook:
    """Sets each live entry's policy and end date in the catalog."""

    def __init__(self, catalog: Catalog, policies_dir: Path, accounts: RoleSource) -> None:
        self._catalog = catalog
        self._dir = policies_dir
        self._accounts = accounts
        self._working = working_calendar()
        self._lock = threading.Lock()
        self._policies: list[Policy] = []

    def reload(self) -> None:
        """Read the policies again (``ConfigError``/``UsageError`` keep the old ones)."""
        policies = load_policies(self._dir)
        with self._lock:
            self._policies = policies

    def assign_new(self) -> int:
        """Set the policy of live entries that have none; the number of entries set."""
        return self._assign(self._catalog.unassigned())

    def reassess(self) -> int:
        """Recompute every live entry's policy and end date; the number that changed."""
        return self._assign(self._catalog.live_entries())

    def _assign(self, entries: Iterable[Entry]) -> int:
        with self._lock:
            policies = list(self._policies)
        if not policies:
            return 0
        roles = {name: role for role in Role for name in self._accounts.names(role)}
        changes = []
        for entry in entries:
            chosen = policy_mod.choose(entry, policies, roles.get(entry.account))
            if chosen is None:
                continue
            expires = policy_mod.expires_at(entry, chosen, self._working)
            if (entry.policy, entry.expires_at) != (chosen.name, expires):
                changes.append((entry.id, chosen.name, expires))
        if changes:
            self._catalog.set_policies(changes)
        return len(changes)
