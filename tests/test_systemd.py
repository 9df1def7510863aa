"""systemd integration: the notify protocol on a real datagram socket, SIGHUP reloading the
TLS certificate without dropping sessions, and the units' exposure scores."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.adapters.keys import ensure_tls_certificate, read_tls_pair
from intake.adapters.systemd import Notifier
from intake.core.clock import SystemClock
from intake.frontends.daemon.heartbeat import Heartbeat
from intake.services.metrics import Metrics
from tests.clients import FtpsClient, raw_reply
from tests.conftest import PASSWORD, ServeProcess, TestInstance, wait_for

UNITS = Path(__file__).resolve().parents[1] / "systemd"
MAX_EXPOSURE = 2.0


class NotifySocket:
    """What systemd listens on: an abstract unix datagram socket, messages as dicts."""

    def __init__(self) -> None:
        self.address = f"@intake-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:])
        self.sock.settimeout(30)

    def receive(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())

    def wait_for(
        self, key: str, timeout: float = 30
    ) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The first message with ``key``, and every message before it."""
        seen: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive()
            if key in message:
                return message
            seen.append(message)
        raise AssertionError(f"no {key} within {timeout} s; got {seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


class TestNotify:
    def test_ready_watchdog_reload_and_stop(
        self, instance: TestInstance, notify: NotifySocket
    ) -> None:
        """READY=1 once the ports accept, WATCHDOG=1 at half WatchdogSec, RELOADING=1 then
        READY=1 around SIGHUP, STOPPING=1 at SIGTERM."""
        process = ServeProcess(
            instance, env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "2000000"}
        )
        try:
            ready = notify.wait_for("READY")
            assert str(process.proc.pid) == ready["MAINPID"]
            with socket.create_connection(process.addresses["sftp"], timeout=10) as conn:
                assert conn.recv(4).startswith(b"SSH-")
            began = time.monotonic()
            for _ in range(3):
                notify.wait_for("WATCHDOG", timeout=10)
            assert time.monotonic() - began < 10
            process.proc.send_signal(signal.SIGHUP)
            reloading = notify.wait_for("RELOADING")
            assert reloading["MONOTONIC_USEC"].isdigit()
            notify.wait_for("READY")
            process.proc.send_signal(signal.SIGTERM)
            notify.wait_for("STOPPING")
            assert 0 == process.proc.wait(timeout=30)
        finally:
            process.kill()

    def test_without_notify_socket_nothing_is_sent(self, instance: TestInstance) -> None:
        """From a terminal (no $NOTIFY_SOCKET) serve runs and stops the same."""
        process = ServeProcess(instance)
        assert 0 == process.signal(signal.SIGTERM)
        assert "Traceback" not in process.log()


def _renew_certificate(instance: TestInstance, hostname: str = "localhost") -> Path:
    """What an ACME deploy hook does: install a new pair over the old one."""
    fresh = instance.root / f"renewed-{uuid.uuid4().hex[:6]}"
    fresh.mkdir(mode=0o700)
    ensure_tls_certificate(fresh, hostname, SystemClock().now())
    keys = instance.root / "keys"
    for name in ("tls.key", "tls.crt"):
        shutil.copyfile(fresh / name, keys / f".{name}.new")
        os.replace(keys / f".{name}.new", keys / name)
    return fresh / "tls.crt"


def _served_fingerprint(address: tuple[str, int]) -> str:
    """The SHA-256 of the certificate a new FTPS connection is shown."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(address, timeout=10) as raw:
        assert raw_reply(raw).startswith("220")
        raw.sendall(b"AUTH TLS\r\n")
        assert raw_reply(raw).startswith("234")
        with context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


class TestCertificateReload:
    def test_sighup_serves_the_renewed_certificate_without_dropping_sessions(
        self, instance: TestInstance, notify: NotifySocket
    ) -> None:
        """A session open before the renewal keeps working; a new one sees the new certificate
        (verified against it), and only after SIGHUP."""
        instance.add_account("mairie-a")
        keys = instance.root / "keys"
        old_fingerprint = read_tls_pair(keys / "tls.crt", keys / "tls.key").fingerprint
        process = ServeProcess(instance, env={"NOTIFY_SOCKET": notify.address})
        try:
            address = process.addresses["ftps"]
            notify.wait_for("READY")
            before = FtpsClient(*address, "mairie-a", PASSWORD, cafile=str(keys / "tls.crt"))
            before.upload("/first.sql", b"1" * 4096)
            new_cert = _renew_certificate(instance)
            new_fingerprint = read_tls_pair(keys / "tls.crt", keys / "tls.key").fingerprint
            assert new_fingerprint != old_fingerprint
            assert old_fingerprint == _served_fingerprint(address)  # not before the reload
            process.proc.send_signal(signal.SIGHUP)
            notify.wait_for("RELOADING")
            notify.wait_for("READY")
            assert new_fingerprint == _served_fingerprint(address)
            after = FtpsClient(*address, "mairie-a", PASSWORD, cafile=str(new_cert))
            after.upload("/second.sql", b"2" * 4096)
            after.close()
            before.upload("/third.sql", b"3" * 4096)  # data connections of the old session
            assert ["first.sql", "second.sql", "third.sql"] == [
                n for n in before.listdir("/") if n.endswith(".sql")
            ]
            before.close()
            assert re.search(r"certificate reloaded \(SHA256 " + new_fingerprint, process.log())
        finally:
            process.kill()

    def test_a_broken_renewal_keeps_the_certificate_in_use(
        self, instance: TestInstance, notify: NotifySocket
    ) -> None:
        """A key that does not match the certificate: logged, the old pair still served."""
        keys = instance.root / "keys"
        old_fingerprint = read_tls_pair(keys / "tls.crt", keys / "tls.key").fingerprint
        process = ServeProcess(instance, env={"NOTIFY_SOCKET": notify.address})
        try:
            notify.wait_for("READY")
            other = instance.root / "other"
            other.mkdir(mode=0o700)
            ensure_tls_certificate(other, "localhost", SystemClock().now())
            shutil.copyfile(other / "tls.key", keys / "tls.key")  # the certificate stays old
            process.proc.send_signal(signal.SIGHUP)
            notify.wait_for("RELOADING")
            notify.wait_for("READY")
            assert old_fingerprint == _served_fingerprint(process.addresses["ftps"])
            wait_for(lambda: "the certificate in use is kept" in process.log())
            assert "Traceback" not in process.log()
        finally:
            process.kill()


def _exposure(unit: Path) -> float:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", unit.name],
        cwd=unit.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert match, f"no score for {unit.name}: {proc.stdout[-500:]} {proc.stderr[-500:]}"
    return float(match[1])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
class TestUnits:
    @pytest.mark.parametrize("unit", ["intake.service", "intake-sweep.service"])
    def test_exposure_score(self, unit: str) -> None:
        """``systemd-analyze security --offline=true`` scores each service 2.0 or less."""
        score = _exposure(UNITS / unit)
        assert score <= MAX_EXPOSURE, f"{unit}: exposure {score} > {MAX_EXPOSURE}"

    def test_units_verify(self) -> None:
        """The serve unit is Type=notify with a watchdog and credentials, and parses cleanly."""
        text = (UNITS / "intake.service").read_text()
        for line in ("Type=notify", "WatchdogSec=", "NotifyAccess=main", "LoadCredential="):
            assert line in text


class TestWatchdog:
    def test_no_ping_while_a_front_end_is_down(self, tmp_path: Path, notify: NotifySocket) -> None:
        """WATCHDOG=1 only while the daemon says every accept loop runs: a wedged
        front-end lets systemd's watchdog fire."""
        notifier = Notifier(notify.address, watchdog_usec=200_000)  # a ping every 0.1 s
        healthy = [True]
        heartbeat = Heartbeat(tmp_path, Metrics(), notifier, lambda: healthy[0], {})
        try:
            heartbeat.beat()
            assert {"WATCHDOG": "1"} == notify.receive()
            healthy[0] = False
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                heartbeat.beat()
                time.sleep(heartbeat.tick)
            notify.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                notify.receive()
            healthy[0] = True
            time.sleep(heartbeat.tick)
            heartbeat.beat()
            notify.sock.settimeout(10)
            assert {"WATCHDOG": "1"} == notify.receive()
        finally:
            notifier.close()
