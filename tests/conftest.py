"""Fixtures: a real instance in a temporary folder, a real server on loopback port 0.

The in-process server (``server``) is the real ``Daemon`` with its real listeners, serving
from its own threads (``workers=1``); tests that need the process itself (signals, kill -9,
worker processes: ``[server] workers`` as configured, one per core by default) start
``intake serve`` with ``ServeProcess``.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from intake.adapters import accounts as accounts_mod
from intake.adapters.audit import writer as audit_mod
from intake.adapters.keys import read_public_keys
from intake.adapters.passwords import hash_password
from intake.core.clock import Clock, SystemClock
from intake.core.config import load
from intake.core.model import Role
from intake.frontends.daemon.serve import Daemon
from intake.services.instance import Instance, init_instance, open_instance
from tests import forked_cli
from tests.clients import Client, FtpsClient, SftpClient
from tests.smtp_server import MAIL_PASSWORD, MAIL_USER, MailServer, TestPki

INTAKE = [sys.executable, "-m", "intake"]
PASSWORD = "correct horse battery staple"
T = TypeVar("T")


def write_test_config(root: Path, extra: str = "") -> Path:
    """An instance config on free ports (port 0), FTPS passive ports picked per test."""
    conf = root / "intake.toml"
    conf.write_text(
        '[sftp]\nlisten = "127.0.0.1:0"\nlogin_timeout = 10\n'
        '[ftps]\nlisten = "127.0.0.1:0"\n'
        "[limits]\nmax_login_failures = 50\n" + extra
    )
    return conf


@dataclass
class TestInstance:
    __test__ = False  # a fixture's value, not a test class

    root: Path
    config_file: Path
    keys: dict[str, Path] = field(default_factory=dict)

    def cli(
        self, *args: str, stdin: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        argv = ["--config", str(self.config_file), *args]
        if forked_cli.ENABLED:  # a process of its own, forked from a pre-imported one
            proc = forked_cli.forker().run(argv, stdin, timeout=60)
        else:
            proc = subprocess.run(
                [*INTAKE, *argv], input=stdin, capture_output=True, text=True, timeout=60
            )
        if check and proc.returncode != 0:
            raise AssertionError(f"intake {' '.join(args)} failed: {proc.stderr}")
        return proc

    def open(self, clock: Clock | None = None) -> Instance:
        return open_instance(load(self.config_file), clock or SystemClock())

    def add_account(
        self, name: str, role: str = "member", password: str | None = PASSWORD, key: bool = False
    ) -> None:
        """Create an account through the store (fast); CLI tests use ``cli`` instead."""
        public = []
        if key:
            self.keys[name] = make_user_key(self.root / f"{name}_key")
            public = read_public_keys(self.keys[name].with_suffix(".pub"))
        inst = self.open()
        try:
            with memoized_hashes():
                inst.accounts.add(name, Role(role), password, public)
        finally:
            inst.close()

    def audit(self, event: str | None = None) -> list[dict[str, object]]:
        records = list(audit_mod.read_records(self.root / "log"))
        return [r for r in records if event is None or r.get("event") == event]

    def area(self, member: str) -> Path:
        return self.root / "data" / "members" / member

    def known_hosts(self, host: str, port: int) -> Path:
        line = (self.root / "keys" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        path = self.root / "known_hosts"
        path.write_text(f"[{host}]:{port} {' '.join(line)}\n")
        return path


def make_user_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


# Per test session (per xdist worker): the scrypt hash of each password ``add_account`` was
# given. The product's cost parameters are unchanged; only the salt is shared between the
# throwaway instances of one session.
_HASHES: dict[str, str] = {}


def _memoized_hash(password: str) -> str:
    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]


@contextmanager
def memoized_hashes() -> Iterator[None]:
    """While open, the account store hashes each distinct password once per session
    (``add_account`` only: tests of the store itself and the CLI hash for real)."""
    original = accounts_mod.hash_password
    accounts_mod.hash_password = _memoized_hash  # type: ignore[assignment]
    try:
        yield
    finally:
        accounts_mod.hash_password = original  # type: ignore[assignment]


@pytest.fixture(scope="session")
def instance_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Host keys, TLS certificate and audit key, generated once per test session (two
    RSA-3072 keys take from a quarter of a second to seconds on a loaded machine)."""
    root = tmp_path_factory.mktemp("template") / "inst"
    root.mkdir()
    write_test_config(root)
    init_instance(root, SystemClock())
    return root / "keys"


def copy_keys(source: Path, target: Path) -> None:
    """Give an instance its own copy of the session's keys: same names, mode 0600 in a 0700
    folder, as ``init_instance`` creates them (it then completes the rest of the layout)."""
    target.mkdir(mode=0o700)
    for path in sorted(source.iterdir()):
        fd = os.open(target / path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(path.read_bytes())
        os.chmod(target / path.name, path.stat().st_mode & 0o777)


@pytest.fixture
def instance(tmp_path: Path, instance_keys: Path) -> TestInstance:
    root = tmp_path / "inst"
    root.mkdir()
    conf = write_test_config(root)
    copy_keys(instance_keys, root / "keys")
    init_instance(root, SystemClock())
    return TestInstance(root, conf)


@dataclass
class RunningServer:
    instance: TestInstance
    daemon: Daemon
    sftp: tuple[str, int]
    ftps: tuple[str, int] | None


@pytest.fixture
def server(instance: TestInstance) -> Iterator[RunningServer]:
    with running(instance) as running_server:
        yield running_server


class ServeProcess:
    """``intake serve`` as a real process, for signals and kill -9.

    Its operational log (stderr) goes to a file, never an unread pipe (a full pipe would
    block the server); ``log()`` reads it.
    """

    def __init__(
        self,
        instance: TestInstance,
        max_file_size: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``max_file_size`` (RLIMIT_FSIZE) makes writes beyond it fail, like a full disk;
        ``env`` is added to the environment (``NOTIFY_SOCKET`` for the systemd tests)."""
        self.instance = instance

        def preexec() -> None:
            if max_file_size is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, max_file_size))

        self.log_path = instance.root / f"serve-{time.monotonic_ns()}.log"
        with self.log_path.open("w") as log_file:
            self.proc = subprocess.Popen(
                [*INTAKE, "--config", str(instance.config_file), "serve"],
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                preexec_fn=preexec,  # tests set resource limits this way
                start_new_session=True,  # kill() ends the whole service: workers too
                env={**os.environ, **(env or {})},
            )
        self.addresses: dict[str, tuple[str, int]] = {}
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.match(r"(\w+): listening on (\S+):(\d+)", line)
            if match:
                self.addresses[match[1]] = (match[2], int(match[3]))
            if line.startswith("ready:"):
                break
        if "sftp" not in self.addresses:  # every test instance serves SFTP
            self.kill()
            raise AssertionError(f"intake serve did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()

    def signal(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        """A crash of the whole service (systemd's SIGKILL of its control group): the
        supervisor and its worker processes die at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def serve_process(instance: TestInstance) -> Iterator[ServeProcess]:
    process = ServeProcess(instance)
    try:
        yield process
    finally:
        process.kill()


@contextmanager
def running(instance: TestInstance, clock: Clock | None = None) -> Iterator[RunningServer]:
    """The in-process server for a test that first adjusted its instance's config; with
    ``clock`` (e.g. ``tests.sweeping.PastClock``) it runs at another time, so what it
    receives is as old as that clock says."""
    inst = instance.open(clock)
    daemon = Daemon(inst, workers=1)
    addresses = daemon.start()
    try:
        yield RunningServer(instance, daemon, addresses["sftp"], addresses.get("ftps"))
    finally:
        daemon.stop()
        inst.close()


def wait_for(what: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll until ``what()`` returns something truthy (bounded); return it, or fail.

    The deadline is generous: it only bounds a failing test, and a busy machine can take
    seconds to deliver what a quiet one does in milliseconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


def connect(server: RunningServer, protocol: str, user: str, password: str = PASSWORD) -> Client:
    """A logged-in client of ``protocol`` ("sftp" or "ftps"), checking the server's identity
    for FTPS against the instance's certificate."""
    if protocol == "sftp":
        return SftpClient(*server.sftp, user, password)
    if protocol == "ftps":
        assert server.ftps is not None, "FTPS is not served"
        cafile = str(server.instance.root / "keys" / "tls.crt")
        return FtpsClient(*server.ftps, user, password, cafile=cafile)
    raise AssertionError(protocol)


def pytest_sessionfinish() -> None:
    forked_cli.stop()


SLOW_FIRST = (
    "test_descriptors.py::",
    "test_audit_chain.py::TestConcurrentWriters",
    "test_outside_audits.py::",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The few minute-long tests first, so parallel workers do not wait for them at the end."""
    items.sort(key=lambda item: not any(slow in item.nodeid for slow in SLOW_FIRST))


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    """A small CA and the mail server's certificate."""
    return TestPki(tmp_path / "pki").create()


@pytest.fixture
def mail(pki: TestPki) -> Iterator[MailServer]:
    """A real SMTP server (aiosmtpd) on loopback: STARTTLS and a login."""
    server = MailServer(pki, "starttls", MAIL_USER, MAIL_PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()
