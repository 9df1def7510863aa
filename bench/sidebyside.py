"""intake, OpenSSH ``sshd`` and ``vsftpd`` side by side on loopback, and what they cost.

The pieces ``bench/targets.py`` measures with; nothing here is a test. Rules:

- Every server runs as a child process on 127.0.0.1 with its own config in the bench's
  folder (on disk, the same file system for all three): intake through the tests'
  ``ServeProcess`` on a fresh instance, sshd through ``bench/sftp_upload.start_sshd``
  (internal-sftp, root logging in with a key), vsftpd through ``bench/ftps_upload.Vsftpd``
  (explicit FTPS, ``require_ssl_reuse``, anonymous uploads over TLS, intake's certificate).
- Startup caps are raised on both sides alike (intake's ``max_startups``, sshd's
  ``MaxStartups``) so that 50 clients starting at once are neither held nor dropped:
  what is measured is serving them, not the flood rules.
- A server's cost is its whole process tree's: CPU seconds are ``utime + stime`` of every
  live process below it plus ``cutime + cstime`` (the children it reaped: sshd's and
  vsftpd's per-connection processes), read from ``/proc/PID/stat``; memory is the sum of
  ``VmRSS`` over the tree (worker processes included, shared pages counted in each).
- Clients are the same for both servers of a row: OpenSSH ``sftp -b`` (key login, one
  process per upload, the cipher forced alike), curl over explicit FTPS (TLS session reuse),
  paramiko for logins and short sessions. Each client fails loudly; loops are bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sftp_upload import upload  # noqa: E402
from intake.core.clock import SystemClock  # noqa: E402
from intake.services.instance import init_instance  # noqa: E402
from tests.conftest import ServeProcess, TestInstance  # noqa: E402
from tests.sessions import service_pids  # noqa: E402

MEMBER = "mairie-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTUPS = 200  # unauthenticated connections let in at once, on every server
SSHD_EXTRA = f"MaxStartups {STARTUPS}:30:{2 * STARTUPS}\nMaxSessions 10\n"


# -- a process tree's cost -------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


tree = service_pids  # ``pid`` and every live process below it


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of the tree under ``pid``, reaped children included."""
    ticks = 0
    for member in tree(pid):
        fields = _stat(member)
        if fields is not None:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLK_TCK


def rss_mib(pid: int) -> float:
    """The sum of ``VmRSS`` over the tree under ``pid``, MiB."""
    kib = 0
    for member in tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                kib += int(line.split()[1])
    return kib / 1024


def pss_mib(pid: int) -> float:
    """The sum of ``Pss`` over the tree under ``pid``, MiB: each page shared by several
    processes (worker processes are forks) divided among them, so the service's memory
    in all, where a sum of RSS counts a shared page once per process."""
    kib = 0
    for member in tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                kib += int(line.split()[1])
    return kib / 1024


def settled_rss(pid: int, timeout: float = 10.0) -> float:
    """The tree's RSS once two readings 0.3 s apart agree within 0.1 MiB (bounded)."""
    deadline = time.monotonic() + timeout
    last = rss_mib(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = rss_mib(pid)
        if abs(now - last) < 0.1:
            return now
        last = now
    return last


def settled_cpu(pid: int, children: int, timeout: float = 30.0) -> float:
    """The tree's CPU seconds once it is back to ``children`` processes below ``pid`` and
    has used less than 20 ms in the last 0.5 s (bounded by ``timeout``: then as it is)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if len(tree(pid)) - 1 <= children and now - last < 0.02:
            return now
        last = now
    return last


# -- intake ----------------------------------------------------------------------------


def intake_config(root: Path, passive: tuple[int, int]) -> Path:
    """An instance config on free ports, its startup and connection caps raised alike."""
    conf = root / "intake.toml"
    conf.write_text(
        '[sftp]\nlisten = "127.0.0.1:0"\n'
        f'[ftps]\nlisten = "127.0.0.1:0"\npassive_ports = "{passive[0]}-{passive[1]}"\n'
        "[limits]\nmax_login_failures = 1000\nmax_connections = 1000\n"
        "max_connections_per_ip = 500\n"
        f'max_startups = "{STARTUPS}:30:{2 * STARTUPS}"\n'
        f"max_startups_per_network = {STARTUPS}\n"
    )
    return conf


class Intake:
    """``intake serve`` on a fresh instance under ``folder``: SFTP and FTPS, one member
    (``MEMBER``) with the password ``PASSWORD`` and an ed25519 key (``key``)."""

    def __init__(self, folder: Path, passive: tuple[int, int] = (61000, 61199)) -> None:
        folder.mkdir(parents=True)
        conf = intake_config(folder, passive)
        init_instance(folder, SystemClock())
        self.instance = TestInstance(folder, conf)
        self.instance.add_account(MEMBER, key=True)
        self.key = self.instance.keys[MEMBER]
        self.process = ServeProcess(self.instance)
        self.pid = self.process.proc.pid
        self.children = len(tree(self.pid)) - 1  # worker processes, when there are some
        self.sftp = self.process.addresses["sftp"]
        self.ftps = self.process.addresses["ftps"]
        self.cafile = str(folder / "keys" / "tls.crt")
        self.tls_key = str(folder / "keys" / "tls.key")

    def audit(self, event: str) -> list[dict[str, object]]:
        """The audit records of ``event`` so far, oldest first."""
        return self.instance.audit(event)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running 30 s later."""
        try:
            self.process.signal(signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- clients ---------------------------------------------------------------------------


def sftp_put(
    port: int, user: str, key: Path, local: Path, remote: str, cipher: str | None, scratch: Path
) -> float:
    """Seconds for one OpenSSH ``sftp -b`` upload (its batch and known_hosts in ``scratch``,
    a folder of its own); a failed upload stops the bench with sftp's error."""
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        return upload(port, user, key, local, remote, cipher, scratch)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"sftp to port {port} failed: {exc.stderr.decode().strip()}") from None


def at_once(count: int, one: Callable[[int], object]) -> float:
    """Wall seconds for ``one(0) .. one(count - 1)`` all started together (each on its own
    thread); the first failure is raised once all have ended."""
    gate = threading.Barrier(count + 1)

    def run(index: int) -> object:
        gate.wait(60)
        return one(index)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(run, index) for index in range(count)]
        gate.wait(60)
        started = time.perf_counter()
        for future in futures:
            future.exception()
        wall = time.perf_counter() - started
    for future in futures:
        future.result()
    return wall


def login(
    address: tuple[str, int],
    user: str,
    password: str | None = None,
    pkey: paramiko.PKey | None = None,
) -> float:
    """Seconds from connect to an open SFTP session (paramiko), then closed. The socket has
    ``TCP_NODELAY``, as OpenSSH's, PuTTY's and Go's clients do: paramiko's own leaves
    Nagle on, which adds a delayed ACK (about 40 ms) to some round trips, at random."""
    started = time.perf_counter()
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    try:
        transport.connect(username=user, password=password, pkey=pkey)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        took = time.perf_counter() - started
        sftp.close()
    finally:
        transport.close()
    return took
