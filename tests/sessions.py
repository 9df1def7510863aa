"""Many short SFTP sessions against a server process, and its descriptors and threads.

Shared by ``tests/test_descriptors.py`` and ``bench/sessions_fds.py``. A session is what a
member's backup does: log in, upload one small file, list, log out (paramiko). The
server's open descriptors (``/proc/PID/fd``) and threads (``/proc/PID/task``) are sampled
every ``every`` sessions after a warm-up (over the serve process and every process below
it: its worker processes), and the leak is the least-squares slope of those
samples: a leak of one descriptor per session is a slope of 1.0 whether over 300 sessions
or 2 000, while a single late sample (a thread not yet gone) moves it by thousandths.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko


def _ppid(pid: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    return int(text.rsplit(")", 1)[1].split()[1])


def service_pids(root: int) -> list[int]:
    """``root`` and every live process below it (children, their children...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _ppid(entry)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def counts(pid: int) -> tuple[int, int]:
    """(open descriptors, threads) of process ``pid`` and every process below it now (the
    worker processes of ``serve`` hold the sessions)."""
    fds = threads = 0
    for member in service_pids(pid):
        try:
            fds += len(os.listdir(f"/proc/{member}/fd"))
            threads += len(os.listdir(f"/proc/{member}/task"))
        except OSError:  # ended meanwhile
            continue
    return fds, threads


def settled_counts(pid: int, timeout: float = 15.0) -> tuple[int, int]:
    """The counts once the last session's thread has ended: two equal readings 0.3 s apart
    (bounded by ``timeout``, then the last reading)."""
    deadline = time.monotonic() + timeout
    last = counts(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = counts(pid)
        if now == last:
            return now
        last = now
    return last


def session(
    address: tuple[str, int],
    index: int,
    username: str,
    password: str | None = None,
    pkey: paramiko.PKey | None = None,
) -> None:
    """One session: log in (key or password), upload ``/sNNNNN.bak`` (64 bytes), list."""
    transport = paramiko.Transport(address)
    try:
        transport.connect(username=username, password=password, pkey=pkey)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        sftp.putfo(io.BytesIO(b"s" * 64), f"/s{index:05d}.bak", confirm=False)
        sftp.listdir("/")
        sftp.close()
    finally:
        transport.close()


def slope(xs: list[int], ys: list[int]) -> float:
    """Least-squares slope of ``ys`` over ``xs``."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx


@dataclass
class Samples:
    """(sessions done, descriptors, threads) at the start, after the warm-up and every
    ``every`` sessions after it."""

    start: tuple[int, int]
    points: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def warm(self) -> tuple[int, int]:
        return self.points[0][1], self.points[0][2]

    @property
    def end(self) -> tuple[int, int]:
        return self.points[-1][1], self.points[-1][2]

    def descriptor_slope(self) -> float:
        return slope([p[0] for p in self.points], [p[1] for p in self.points])

    def thread_slope(self) -> float:
        return slope([p[0] for p in self.points], [p[2] for p in self.points])

    def table(self) -> str:
        return ", ".join(f"{n}: {fds} fds {threads} threads" for n, fds, threads in self.points)


def run_sessions(
    pid: int,
    one: Callable[[int], None],
    sessions: int,
    warmup: int = 20,
    every: int = 50,
) -> Samples:
    """Run ``one(index)`` for ``warmup + sessions`` sequential sessions against the server
    process ``pid``, sampling its settled counts after the warm-up and every ``every``."""
    samples = Samples(settled_counts(pid))
    for index in range(warmup + sessions):
        one(index)
        done = index + 1 - warmup
        if done >= 0 and (done % every == 0 or done == sessions):
            samples.points.append((done, *settled_counts(pid)))
    return samples
