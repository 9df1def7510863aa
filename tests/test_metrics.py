"""Metrics in the Prometheus text format: scraped over HTTP with a real client, or a textfile."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import stat
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.frontends.daemon.metrics_http import MAX_CONNECTIONS
from intake.services.metrics import Metrics, Sample, render
from tests.clients import SftpClient
from tests.conftest import (
    RunningServer,
    ServeProcess,
    TestInstance,
    connect,
    running,
    wait_for,
    write_test_config,
)

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? '
    r"(-?[0-9.e+]+|NaN|\+Inf|-Inf)$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> Series:
    """Parse the text format strictly: TYPE before samples, valid names, labels, numbers."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    series: Series = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge"), line
            assert name not in typed, f"TYPE twice for {name}"
            typed[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not an exposition line: {line!r}"
        name, labels, value = match.groups()
        assert name in typed, f"{name} sampled before its TYPE"
        key = (name, frozenset(_LABEL.findall(labels or "")))
        assert key not in series, f"duplicate series {key}"
        series[key] = float(value)
    return series


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, frozenset(labels.items())), 0.0)


def scrape(address: tuple[str, int], path: str = "/metrics") -> Series:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=10) as resp:
        assert 200 == resp.status
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse_exposition(resp.read().decode("utf-8"))


@pytest.fixture
def metrics_server(instance: TestInstance) -> Iterator[RunningServer]:
    write_test_config(instance.root, '[metrics]\nlisten = "127.0.0.1:0"\n')
    instance.add_account("mairie-a")
    with running(instance) as server:
        yield server


class TestMetricsEndpoint:
    def test_an_upload_moves_the_counters(self, metrics_server: RunningServer) -> None:
        """After one SFTP and one FTPS upload, uploads and bytes count them by protocol."""
        address = metrics_server.daemon.addresses["metrics"]
        before = scrape(address)
        assert 0 == value(before, "intake_uploads_total", protocol="sftp")
        for protocol, data in (("sftp", b"x" * 1000), ("ftps", b"y" * 2345)):
            client = connect(metrics_server, protocol, "mairie-a")
            try:
                client.upload(f"/backup-{protocol}.sql", data)
            finally:
                client.close()
        after = wait_for(
            lambda: (
                (s := scrape(address))
                and value(s, "intake_uploads_total", protocol="ftps") == 1
                and s
            )
        )
        assert 1 == value(after, "intake_uploads_total", protocol="sftp")
        assert 1000 == value(after, "intake_upload_bytes_total", protocol="sftp")
        assert 2345 == value(after, "intake_upload_bytes_total", protocol="ftps")
        assert 1 == value(after, "intake_logins_total", protocol="sftp")
        assert 2 == value(after, "intake_catalog_entries", state="received")
        assert value(after, "intake_disk_free_bytes") > 0
        assert value(after, "intake_start_time_seconds") > 0

    def test_failures_and_open_sessions(self, metrics_server: RunningServer) -> None:
        """A wrong password counts as a failure; an open session shows until it closes."""
        address = metrics_server.daemon.addresses["metrics"]
        with pytest.raises(Exception, match="uthentication"):
            SftpClient(*metrics_server.sftp, "mairie-a", "wrong password")
        client = connect(metrics_server, "sftp", "mairie-a")
        try:
            series = wait_for(
                lambda: (
                    (s := scrape(address))
                    and value(s, "intake_sessions_open", protocol="sftp") == 1
                    and s
                )
            )
            assert value(series, "intake_login_failures_total", protocol="sftp") >= 1
            assert value(series, "intake_sessions_total", protocol="sftp") >= 2
        finally:
            client.close()
        wait_for(lambda: value(scrape(address), "intake_sessions_open", protocol="sftp") == 0)

    def test_only_metrics_is_served(self, metrics_server: RunningServer) -> None:
        """Another path is a 404; HEAD works; the server goes on."""
        host, port = metrics_server.daemon.addresses["metrics"]
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://{host}:{port}/admin", timeout=10)
        assert 404 == info.value.code
        request = urllib.request.Request(f"http://{host}:{port}/metrics", method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - http only
            assert 200 == resp.status
            assert b"" == resp.read()
        assert scrape((host, port))

    def test_stop_closes_the_endpoint(self, instance: TestInstance) -> None:
        """The daemon owns the endpoint: after stop, nothing listens on its port."""
        write_test_config(instance.root, '[metrics]\nlisten = "127.0.0.1:0"\n')
        with running(instance) as server:
            address = server.daemon.addresses["metrics"]
            assert scrape(address)
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=5)

    def test_a_non_loopback_address_is_refused(self, instance: TestInstance) -> None:
        """Metrics on 0.0.0.0 need allow_remote: one line naming the key, exit 2."""
        write_test_config(instance.root, '[metrics]\nlisten = "0.0.0.0:0"\n')
        proc = instance.cli("serve")
        assert 2 == proc.returncode
        assert "metrics.listen" in proc.stderr
        assert 1 == len(proc.stderr.strip().splitlines())


class SlowClient:
    """A real socket that sends a request one byte every ``interval`` seconds (the client of
    issue 17 item 5), and notes when the server closed the connection on it."""

    def __init__(self, address: tuple[str, int], interval: float = 1.0) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.closed = threading.Event()  # the server ended the connection
        self._stop = threading.Event()
        self._interval = interval
        self._threads = [
            threading.Thread(target=self._dribble, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _dribble(self) -> None:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
        for byte in request:
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                self.closed.set()
                return
            if self._stop.wait(self._interval):  # the slowness under test, not a sync
                return

    def _watch(self) -> None:
        self.sock.settimeout(None)
        try:
            while self.sock.recv(4096):
                pass
        except OSError:
            pass
        self.closed.set()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class TestSlowClients:
    def test_a_slow_client_neither_blocks_scrapes_nor_the_stop(
        self, instance: TestInstance
    ) -> None:
        """A client dribbling one byte a second: another scrape is answered meanwhile, and
        ``serve`` (a real process) exits promptly on SIGTERM while it still dribbles."""
        write_test_config(instance.root, '[metrics]\nlisten = "127.0.0.1:0"\n')
        process = ServeProcess(instance)
        slow = SlowClient(process.addresses["metrics"])
        try:
            assert scrape(process.addresses["metrics"])  # urllib: times out after 10 s
            assert not slow.closed.is_set(), "the slow client should still be connected"
            process.proc.send_signal(signal.SIGTERM)
            assert 0 == process.proc.wait(timeout=15), process.log()  # correctness bound
        finally:
            slow.close()
            process.kill()

    def test_a_slow_client_is_cut_on_its_own(self, metrics_server: RunningServer) -> None:
        """The request deadline ends a dribbling client (no stop needed); the endpoint
        then goes on answering."""
        address = metrics_server.daemon.addresses["metrics"]
        slow = SlowClient(address)
        try:
            assert slow.closed.wait(30), "the server never ended the dribbling connection"
        finally:
            slow.close()
        assert scrape(address)

    def test_connections_are_bounded(self, metrics_server: RunningServer) -> None:
        """Past ``MAX_CONNECTIONS`` silent clients, one more is turned away at once with a
        503, and no thread is started for it."""
        address = metrics_server.daemon.addresses["metrics"]
        idle = [socket.create_connection(address, timeout=5) for _ in range(MAX_CONNECTIONS)]
        try:
            wait_for(lambda: metrics_threads() >= MAX_CONNECTIONS)
            extra = socket.create_connection(address, timeout=10)
            with extra:
                reply = extra.recv(200)  # without sending anything: answered at once
            assert reply.startswith(b"HTTP/1.0 503"), reply
            assert MAX_CONNECTIONS == metrics_threads()
        finally:
            for sock in idle:
                sock.close()
        wait_for(lambda: metrics_threads() == 0)
        assert scrape(address)


def metrics_threads() -> int:
    return sum(t.name.startswith("metrics-connection") for t in threading.enumerate())


class TestMetricsTextfile:
    def test_serve_writes_the_textfile(self, instance: TestInstance) -> None:
        """The node_exporter textfile appears, parses, is world-readable, survives the stop."""
        target = instance.root / "intake.prom"
        write_test_config(instance.root, f'[metrics]\ntextfile = "{target}"\n')
        process = ServeProcess(instance)
        try:
            wait_for(target.exists, timeout=20)
            series = parse_exposition(target.read_text())
            assert ("intake_disk_free_bytes", frozenset()) in series
            assert 0o644 == stat.S_IMODE(target.stat().st_mode)
        finally:
            assert 0 == process.signal(signal.SIGTERM)
        assert parse_exposition(target.read_text())
        assert not [p for p in Path(instance.root).iterdir() if p.name.endswith(".tmp")]


class TestExposition:
    def test_label_values_are_escaped(self) -> None:
        """Backslash, quote and newline in a label value cannot break the format."""
        text = render([Sample.of("intake_denied_total", 2, protocol='a"b\\c\nd')])
        series = parse_exposition(text)
        assert 2 == value(series, "intake_denied_total", protocol='a\\"b\\\\c\\nd')

    def test_a_failing_collector_does_not_break_the_scrape(self) -> None:
        """A collector that raises is counted; the other samples are still there."""
        metrics = Metrics()
        metrics.inc("intake_logins_total", protocol="sftp")

        def broken() -> list[Sample]:
            raise OSError("disk gone")

        metrics.add_collector("disk", broken)
        series = parse_exposition(metrics.render())
        assert 1 == value(series, "intake_logins_total", protocol="sftp")
        assert 1 == value(series, "intake_collector_errors_total", collector="disk")
