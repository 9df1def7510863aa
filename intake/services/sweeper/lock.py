"""The sweeper's run lock: one sweep or ``intake forward`` at a time per instance.

Rules:
- ``state/sweeper.lock`` is an exclusive ``fcntl.flock``, taken without waiting: every
  sweep and every ``intake forward`` holds it, so ``serve``'s sweeper thread and the
  systemd timer's run never overlap (the second one gets ``SweepBusy`` and skips, saying
  so), and a file never has two forwarders.
- The holder writes its pid into the file, for the message the other one prints.
- The kernel releases the lock when the process dies: a killed run never leaves it held.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from intake.core.errors import IntakeError

LOCK_NAME = "sweeper.lock"


class SweepBusy(IntakeError):
    """Another sweep or forward holds the instance's sweeper lock."""


class RunLock:
    """``state/sweeper.lock``: an exclusive ``flock``, released when the process dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd = -1

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise SweepBusy(f"another sweep or forward is running (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = -1
