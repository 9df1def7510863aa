"""Instance locks: ``flock`` files in ``state/`` that the kernel releases when a process dies.

Processes share one instance (``serve``, every CLI command, the systemd sweep timer). What
must be single is guarded here, and taken before the work, never after:

    state/serve.lock      exclusive for the life of ``intake serve``: one server per instance.
                          Taken first, before a port is bound or staging is touched.
    state/recovery.lock   exclusive while ``serve`` recovers what a previous run left (clears
                          ``data/.staging``, marks uploads still ``receiving`` interrupted);
                          shared by CLI commands that write the catalog from the disk
                          (``intake catalog scan``), so they never run beside a recovery.

Rules:
- An exclusive holder writes its pid into the file, for the message the other one prints.
- A lock is one descriptor opened ``O_CLOEXEC | O_NOFOLLOW`` (0600); closing it releases it.
- ``LockBusy`` (exit 1) says who holds it; ``wait`` bounds how long a caller waits for it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from intake.core.errors import IntakeError

SERVE_LOCK = "serve.lock"
RECOVERY_LOCK = "recovery.lock"


class LockBusy(IntakeError):
    """Another process holds the lock."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class FileLock:
    """One ``flock`` on ``path``: exclusive (with the holder's pid) or shared."""

    def __init__(self, path: Path, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def fileno(self) -> int:
        """The descriptor holding the lock (-1 if not held): a forked child closes it."""
        return self._fd

    def holder(self) -> str:
        """The pid written by the exclusive holder ("?" if none can be read)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return "?"
        try:
            return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        finally:
            os.close(fd)

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; ``LockBusy`` if it stays taken."""
        if self.held:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = self.holder()
                    raise LockBusy(f"{self.path.name} is held by pid {holder}", holder) from None
                time.sleep(0.05)
        if not self.shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = -1

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def serve_lock(state_dir: Path) -> FileLock:
    return FileLock(state_dir / SERVE_LOCK)


def recovery_lock(state_dir: Path, shared: bool = False) -> FileLock:
    return FileLock(state_dir / RECOVERY_LOCK, shared=shared)
