"""FTPS data connections and listings: an outsider on the passive ports (issue 16 item 10), MLSD.

A real server on loopback with a passive range of 4 ports; the member uploads with
ftplib (data connections resume the control session, ``tests.clients.FtpsClient``) while
an outsider keeps connecting to that range, from another address (127.0.0.2) or from the
member's own address without the control connection's TLS session.
"""

from __future__ import annotations

import os
import random
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.clients import FtpsClient, tls_client_context
from tests.conftest import PASSWORD, RunningServer, TestInstance, running

MEMBER = "mairie-a"
UPLOADS = 40


@dataclass
class Passive:
    server: RunningServer
    ports: range


@pytest.fixture
def passive(instance: TestInstance) -> Iterator[Passive]:
    """A server whose passive range is 4 ports of its own (chosen per test)."""
    low = random.randrange(20000, 30000, 4)
    text = instance.config_file.read_text()
    instance.config_file.write_text(
        text.replace("[ftps]\n", f'[ftps]\npassive_ports = "{low}-{low + 3}"\n', 1)
    )
    instance.add_account(MEMBER)
    with running(instance) as server:
        yield Passive(server, range(low, low + 4))


def knock(source: str, ports: range, then: Callable[[socket.socket], None]) -> int:
    """Connect from ``source`` to each port of ``ports`` once; ``then`` on each that
    answered. Returns how many answered."""
    answered = 0
    for port in ports:
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        answered += 1
        try:
            then(sock)
        except OSError:
            pass
        finally:
            sock.close()
    return answered


def outsider(
    source: str, ports: range, then: Callable[[socket.socket], None]
) -> tuple[threading.Event, list[int]]:
    stop = threading.Event()
    hits = [0]

    def run() -> None:
        while not stop.is_set():
            hits[0] += knock(source, ports, then)

    threading.Thread(target=run, daemon=True).start()
    return stop, hits


def cafile(server: RunningServer) -> str:
    return str(server.instance.root / "keys" / "tls.crt")


def uploads_under(passive: Passive, source: str, then: Callable[[socket.socket], None]) -> int:
    """The member uploads ``UPLOADS`` files over one control connection while the
    outsider knocks; returns how many of the outsider's connections were answered."""
    server, ports = passive.server, passive.ports
    assert server.ftps is not None
    client = FtpsClient(
        *server.ftps, MEMBER, PASSWORD, cafile=str(server.instance.root / "keys" / "tls.crt")
    )
    stop, hits = outsider(source, ports, then)
    sent: dict[str, bytes] = {}
    try:
        for i in range(UPLOADS):
            data = os.urandom(2000 + i)
            client.upload(f"/b{i:02}.bak", data)
            sent[f"b{i:02}.bak"] = data
    finally:
        stop.set()
        client.close()
    for name, data in sent.items():
        assert data == (server.instance.area(MEMBER) / name).read_bytes()
    return hits[0]


def close_at_once(sock: socket.socket) -> None:
    pass


def full_handshake(sock: socket.socket) -> None:
    ctx = tls_client_context(None)
    with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
        tls.recv(1)


class TestOutsiderOnPassivePorts:
    def test_another_address_cannot_break_an_upload(self, passive: Passive) -> None:
        """From 127.0.0.2: every upload of the member succeeds; each connection that
        reached a passive port is closed and audited (``denied``, its address)."""
        hits = uploads_under(passive, "127.0.0.2", close_at_once)
        assert hits, "the outsider never reached a passive port"
        denied = [
            r
            for r in passive.server.instance.audit("denied")
            if r.get("operation") == "data connection" and r.get("ip") == "127.0.0.2"
        ]
        assert denied

    def test_own_address_without_the_session_cannot_break_an_upload(self, passive: Passive) -> None:
        """From the member's address, with a TLS handshake of its own (not the control
        connection's session): every upload succeeds; the outsider is audited."""
        hits = uploads_under(passive, "127.0.0.1", full_handshake)
        assert hits, "the outsider never reached a passive port"
        assert [
            r
            for r in passive.server.instance.audit("denied")
            if r.get("operation") == "data connection" and r.get("ip") == "127.0.0.1"
        ]


class TestListings:
    def test_mlsd_shows_the_mode_list_shows(self, passive: Passive) -> None:
        """``MLSD`` gives ``unix.mode``, the same permissions ``LIST`` shows (issue 16
        item 9: FileZilla showed ``-r--r--r--`` from MLSD where LIST said ``-r--r-----``)."""
        server = passive.server
        assert server.ftps is not None
        client = FtpsClient(*server.ftps, MEMBER, PASSWORD, cafile=cafile(server))
        try:
            client.upload("/db.bak", b"backup")
            listed: list[str] = []
            client.ftp.retrlines("LIST /", listed.append)
            facts = dict(client.ftp.mlsd("/"))["db.bak"]
        finally:
            client.close()
        (line,) = [line for line in listed if line.endswith(" db.bak")]
        assert "unix.mode" in facts
        assert line.split()[0] == stat.filemode(stat.S_IFREG | int(facts["unix.mode"], 8))
