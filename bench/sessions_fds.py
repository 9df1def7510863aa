"""Descriptors and threads of a real ``intake serve`` across many short sessions.

Starts a fresh instance in a temporary folder, runs N sequential SFTP sessions (log in,
upload one small file, list, log out) with paramiko, and prints the server's open
descriptors (``/proc/PID/fd``) and threads (``/proc/PID/task``) after a warm-up and at
the end. Loopback only.

    python bench/sessions_fds.py [N]
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paramiko

from intake.core.clock import SystemClock
from intake.core.config import load
from intake.core.model import Role
from intake.services.instance import init_instance, open_instance

PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway loopback instance
INTAKE = [sys.executable, "-m", "intake"]


def counts(pid: int) -> tuple[int, int]:
    """(open descriptors, threads) of process ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def wait_flat(pid: int, timeout: float = 10.0) -> tuple[int, int]:
    """The counts once the last session's threads are gone (they end just after logout)."""
    deadline = time.monotonic() + timeout
    last = counts(pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = counts(pid)
        if now == last:
            return now
        last = now
    return last


def session(host: str, port: int, index: int) -> None:
    transport = paramiko.Transport((host, port))
    try:
        transport.connect(username="mairie-a", password=PASSWORD)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        sftp.putfo(io.BytesIO(b"x" * 100), f"/s{index:05d}.bak", confirm=False)
        sftp.listdir("/")
        sftp.close()
    finally:
        transport.close()


class Server:
    """A fresh instance served by a real ``intake serve`` process."""

    def __init__(self, root: Path) -> None:
        (root / "intake.toml").write_text(
            '[sftp]\nlisten = "127.0.0.1:0"\n[ftps]\nlisten = ""\n'
            "[limits]\nmax_login_failures = 50\n"
        )
        init_instance(root, SystemClock())
        inst = open_instance(load(root / "intake.toml"), SystemClock())
        try:
            inst.accounts.add("mairie-a", Role.MEMBER, PASSWORD, [])
        finally:
            inst.close()
        self.log = (root / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [*INTAKE, "--config", str(root / "intake.toml"), "serve"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = ("", 0)
        for line in self.proc.stdout:
            match = re.match(r"sftp: listening on (\S+):(\d+)", line)
            if match:
                self.address = (match[1], int(match[2]))
            if line.startswith("ready:"):
                break

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


def measure(sessions: int, warmup: int = 20) -> dict[str, tuple[int, int]]:
    """Counts (descriptors, threads) at start, after ``warmup`` sessions, and at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        try:
            pid = server.proc.pid
            figures = {"start": wait_flat(pid)}
            for index in range(sessions):
                session(*server.address, index)
                if index + 1 == warmup:
                    figures["warm"] = wait_flat(pid)
            figures["end"] = wait_flat(pid)
        finally:
            server.stop()
    return figures


def main() -> None:
    sessions = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    started = time.monotonic()
    figures = measure(sessions)
    seconds = time.monotonic() - started
    print(f"{sessions} sequential SFTP sessions (login, upload 100 B, list) in {seconds:.0f} s")
    for label, (fds, threads) in figures.items():
        print(f"  {label:<6} descriptors {fds:>5}  threads {threads:>4}")


if __name__ == "__main__":
    main()
