"""What one account may hold at once, over all its sessions and both protocols.

Rules:
- Open files: at most ``max_account_open_files`` per account at once (each holds a
  descriptor of the one server process; ``max_open_handles`` bounds one session, this
  bounds an account that opens many sessions).
- Quota (``account_quota``, 0 = off): the bytes of the account's area plus the bytes of
  its uploads still arriving may not exceed it. What the area holds is read when an
  upload opens from the catalog's running total (``usage``: ``Catalog.usage``, the sizes
  of the area's live entries, one indexed row, never a walk of the area), so a file the
  sweeper (another process) destroyed is freed at the next open. Bytes are counted as
  they arrive, so the quota holds while the upload runs, not only at its end, over every
  session and both protocols. An upload that is kept stays counted as arriving until
  the catalog has recorded it (``FileSession`` settles it after the ``received``
  listeners), so no open in between misses it (counting it twice for that instant is
  the safe side). Files put in an area by hand count once catalogued (the watcher, at
  once), files removed by hand once found gone.
- Disk reserve (``min_free_space``, ``reserve``): an upload is refused at open when the
  data folder's free space is below the reserve, and while it arrives the free space is
  measured again after every ``CHECK_EVERY`` bytes received over all uploads (and at
  every write while it is low), so the disk never fills up; the audit log and the
  catalog never ask, they may use the reserve.
- One lock guards the counters; nothing here blocks on I/O while holding it (the catalog
  is read before the lock is taken). The reserve's byte count is the exception: it is
  added to at every write without the lock (see ``below_reserve``).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from intake.adapters.diskspace import CHECK_EVERY, DiskReserve, DiskSpace
from intake.core.config import LimitsSection

Usage = Callable[[str, str], int]
"""What an area holds, in bytes: (owner, area) -> bytes (``Catalog.usage``)."""


def _nothing_held(_owner: str, _area: str) -> int:
    return 0


class AccountBudget(Protocol):
    """What a file session asks of the budget: the ``Budget`` itself in one process, a
    worker's channel to the supervisor's ``Budget`` otherwise (``[server] workers``)."""

    limits: LimitsSection
    reserve: DiskReserve | None

    def open_file(self, account: str) -> bool: ...

    def close_file(self, account: str) -> None: ...

    def measure(self, account: str, owner: str, area: str) -> None: ...

    def arrive(self, account: str, grown: int) -> str | None: ...

    def settle(self, account: str, arrived: int, kept: bool) -> None: ...

    def below_reserve(self, grown: int, now: bool = False) -> DiskSpace | None: ...


class Budget:
    """Per-account counters shared by every session of one server."""

    def __init__(
        self,
        limits: LimitsSection,
        reserve: DiskReserve | None = None,
        usage: Usage = _nothing_held,
    ) -> None:
        """``usage`` reads what an area holds (the instance passes ``Catalog.usage``)."""
        self.limits = limits
        self.reserve = reserve
        self._usage = usage
        self._unmeasured = 0
        self._low = False
        self._lock = threading.Lock()
        self._open: dict[str, int] = defaultdict(int)
        self._disk: dict[str, int] = {}
        self._arriving: dict[str, int] = defaultdict(int)

    # -- open files ------------------------------------------------------------------

    def open_file(self, account: str) -> bool:
        """Take one open-file slot of ``account``; False when it has none left."""
        with self._lock:
            if self._open[account] >= self.limits.max_account_open_files:
                return False
            self._open[account] += 1
            return True

    def close_file(self, account: str) -> None:
        with self._lock:
            if self._open[account] > 0:
                self._open[account] -= 1
            if not self._open[account]:
                del self._open[account]

    def open_files(self, account: str) -> int:
        with self._lock:
            return self._open.get(account, 0)

    # -- quota -----------------------------------------------------------------------

    def measure(self, account: str, owner: str, area: str) -> None:
        """An upload of ``account`` into ``area`` of ``owner`` opens: refresh what that area
        holds from the catalog's running total; quota off: no-op."""
        if not self.limits.account_quota:
            return
        used = self._usage(owner, area)
        with self._lock:
            self._disk[account] = used

    def arrive(self, account: str, grown: int) -> str | None:
        """``grown`` more bytes of an upload of ``account``: the refusal reason, or None."""
        quota = self.limits.account_quota
        if not quota or grown <= 0:
            return None
        with self._lock:
            used = self._disk.get(account, 0) + self._arriving[account] + grown
            if used > quota:
                return f"account quota of {quota} bytes exceeded ({used} bytes with this upload)"
            self._arriving[account] += grown
            return None

    def settle(self, account: str, arrived: int, kept: bool) -> None:
        """An upload of ``arrived`` bytes ended: kept (now on disk) or discarded."""
        if not self.limits.account_quota:
            return
        with self._lock:
            self._arriving[account] = max(0, self._arriving[account] - arrived)
            if kept:
                self._disk[account] = self._disk.get(account, 0) + arrived

    # -- disk reserve ----------------------------------------------------------------

    def below_reserve(self, grown: int, now: bool = False) -> DiskSpace | None:
        """The measure when the disk is below its reserve (refuse), else None. ``now``
        measures at once (an upload opening); else every ``CHECK_EVERY`` bytes."""
        if self.reserve is None or not (self.reserve.rule.percent or self.reserve.rule.amount):
            return None
        # Counted without the lock (this runs at every write of every upload): two
        # threads adding at once may lose one write's bytes, which only delays the next
        # measure by that much.
        self._unmeasured += max(grown, 0)
        if not (now or self._low or self._unmeasured >= CHECK_EVERY):
            return None
        with self._lock:
            if not (now or self._low or self._unmeasured >= CHECK_EVERY):
                return None  # another thread measured meanwhile
            self._unmeasured = 0
        space = self.reserve.measure()
        self._low = space.low
        return space if space.low else None
