"""Descriptors and threads of a real ``intake serve`` across many short sessions.

Starts a fresh instance in a temporary folder, runs N sequential SFTP sessions (log in
with a password, upload one small file, list, log out) with paramiko, and prints the
server's open descriptors (``/proc/PID/fd``) and threads (``/proc/PID/task``) at the
start, after a warm-up of 20 and every 50 sessions, with their least-squares slope per
session. The session loop and the measure are the tests' (``tests/sessions.py``).
Loopback only.

    python bench/sessions_fds.py [N]
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.core.clock import SystemClock  # noqa: E402
from intake.core.config import load  # noqa: E402
from intake.core.model import Role  # noqa: E402
from intake.services.instance import init_instance, open_instance  # noqa: E402
from tests.sessions import Samples, run_sessions, session  # noqa: E402

PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway loopback instance
INTAKE = [sys.executable, "-m", "intake"]


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


def measure(sessions: int, warmup: int = 20) -> Samples:
    """The samples of ``sessions`` sessions after ``warmup`` (see ``tests/sessions.py``)."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        try:
            address = server.address
            return run_sessions(
                server.proc.pid,
                lambda index: session(address, index, "mairie-a", password=PASSWORD),
                sessions,
                warmup,
            )
        finally:
            server.stop()


def main() -> None:
    sessions = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    started = time.monotonic()
    samples = measure(sessions)
    seconds = time.monotonic() - started
    print(f"{sessions} sequential SFTP sessions (login, upload 64 B, list) in {seconds:.0f} s")
    print(f"  start        descriptors {samples.start[0]:>5}  threads {samples.start[1]:>4}")
    for done, fds, threads in samples.points:
        print(f"  {done:>5} after  descriptors {fds:>5}  threads {threads:>4}")
    print(
        f"  slope        {samples.descriptor_slope():+.4f} descriptors and "
        f"{samples.thread_slope():+.4f} threads per session"
    )


if __name__ == "__main__":
    main()
