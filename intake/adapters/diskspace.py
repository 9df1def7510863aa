"""Free space on the data folder's filesystem, against the reserve (``limits.min_free_space``).

Rules:
- Free space is what an unprivileged writer may still use (``statvfs`` ``f_bavail``),
  even when the service runs as root: the reserve never counts on root's blocks.
- Uploads stop at the reserve (``check`` raises ``NoSpace``); the audit log and the
  catalog never ask: they may use the reserve, so traceability never stops first.
- One ``statvfs`` is a cheap system call: uploads check at open and then every
  ``CHECK_EVERY`` bytes they write, not at every packet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from intake.core.config_values import FreeSpace
from intake.core.errors import NoSpace

CHECK_EVERY = 1024 * 1024


@dataclass(frozen=True)
class DiskSpace:
    free: int
    total: int
    reserve: int

    @property
    def low(self) -> bool:
        return self.free < self.reserve


class DiskReserve:
    """The reserve of one folder's filesystem."""

    def __init__(self, path: Path | str, rule: FreeSpace) -> None:
        self.path = str(path)
        self.rule = rule

    def measure(self) -> DiskSpace:
        st = os.statvfs(self.path)
        total = st.f_blocks * st.f_frsize
        return DiskSpace(st.f_bavail * st.f_frsize, total, self.rule.bytes_of(total))

    def check(self) -> DiskSpace:
        """``NoSpace`` when the free space is below the reserve; else the measure."""
        space = self.measure()
        if space.low:
            raise NoSpace(space.free, space.reserve)
        return space
