"""What a hostile client can send: raw SFTP messages and oversized SSH packets once logged
in, and floods of connections that never log in.

Shared by the tests (tests/test_bounds.py, tests/test_preauth_flood.py) and the figures
scripts (bench/attacks.py, bench/conn_attacks.py).
``RawSftp`` drives paramiko's own SFTP packet layer by hand, so a test can pipeline
thousands of requests or ask for lengths no well-behaved client would; ``ProcStats`` reads
a server process's RSS, CPU time and descriptors from ``/proc``. The pre-login helpers
connect from other loopback addresses (all of 127/8 is loopback on Linux): 127.0.N.x is
network N for the per-address and /24 rules.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_READ,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_READ,
    SFTP_FLAG_WRITE,
)

from tests.clients import SftpClient


@dataclass(frozen=True)
class Reply:
    kind: int  # CMD_STATUS, CMD_HANDLE, CMD_DATA, ...
    request: int
    msg: paramiko.Message

    def status(self) -> tuple[int, str]:
        """(code, text) of a STATUS reply."""
        assert self.kind == CMD_STATUS, f"expected a STATUS reply, got {self.kind}"
        return self.msg.get_int(), self.msg.get_text()


class RawSftp:
    """A logged-in SFTP session whose requests are written by hand (no client-side checks)."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.client = SftpClient(host, port, user, password)
        self.transport = self.client.transport
        self._sftp = self.client.sftp
        self._next = 1_000_000

    def send(self, kind: int, *items: object) -> int:
        """Send one request; return its request id (the reply is read with ``reply``)."""
        self._next += 1
        msg = paramiko.Message()
        msg.add_int(self._next)
        for item in items:
            if isinstance(item, paramiko.SFTPAttributes):
                item._pack(msg)
            elif isinstance(item, Int64):
                msg.add_int64(item.value)
            elif isinstance(item, int):
                msg.add_int(item)
            elif isinstance(item, (str, bytes)):
                msg.add_string(item)
            else:
                raise TypeError(item)
        self._sftp._send_packet(kind, msg)  # type: ignore[attr-defined]
        return self._next

    def _read_exactly(self, size: int) -> bytes:
        buf = bytearray()
        channel = self._sftp.sock
        while len(buf) < size:
            chunk = channel.recv(min(size - len(buf), 1 << 20))
            if not chunk:
                raise EOFError("the server closed the session")
            buf += chunk
        return bytes(buf)

    def reply(self) -> Reply:
        """The next reply, whatever its length (paramiko's client refuses > 16 MiB)."""
        size = int.from_bytes(self._read_exactly(4), "big")
        data = self._read_exactly(size)
        msg = paramiko.Message(data[1:])
        return Reply(data[0], msg.get_int(), msg)

    def open_read(self, path: str) -> int:
        return self.send(CMD_OPEN, path, SFTP_FLAG_READ, paramiko.SFTPAttributes())

    def open_write(self, path: str) -> int:
        flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
        return self.send(CMD_OPEN, path, flags, paramiko.SFTPAttributes())

    def handle(self, reply: Reply) -> bytes:
        assert reply.kind == CMD_HANDLE, f"expected a HANDLE, got {reply.kind}: {reply.status()}"
        return reply.msg.get_binary()

    def read(self, handle: bytes, offset: int, length: int) -> int:
        return self.send(CMD_READ, handle, Int64(offset), length)

    def write(self, handle: bytes, offset: int, data: bytes) -> int:
        return self.send(CMD_WRITE, handle, Int64(offset), data)

    def close_handle(self, handle: bytes) -> int:
        return self.send(CMD_CLOSE, handle)

    def extended(self, name: str, *items: object) -> int:
        return self.send(CMD_EXTENDED, name, *items)

    def data(self, reply: Reply) -> bytes:
        assert reply.kind == CMD_DATA, f"expected DATA, got {reply.kind}"
        return reply.msg.get_binary()

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Int64:
    value: int


@dataclass(frozen=True)
class Sample:
    rss_kib: int  # VmRSS
    peak_kib: int  # VmHWM: the largest RSS so far
    cpu_s: float  # user + system
    fds: int
    threads: int


class ProcStats:
    """A process's resources from ``/proc`` (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> Sample:
        fields: dict[str, str] = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            after_name = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(after_name[11]) + int(after_name[12])) / self._tick
        return Sample(
            rss_kib=int(fields["VmRSS"].split()[0]),
            peak_kib=int(fields["VmHWM"].split()[0]),
            cpu_s=cpu,
            fds=len(os.listdir(f"/proc/{self.pid}/fd")),
            threads=int(fields["Threads"]),
        )


def connect_from(source: str, address: tuple[str, int], timeout: float = 10) -> socket.socket:
    """A TCP connection to ``address`` from the loopback address ``source``."""
    return socket.create_connection(address, timeout=timeout, source_address=(source, 0))


def hold_unauthenticated(
    address: tuple[str, int], networks: int = 10, per_network: int = 20, timeout: float = 10
) -> list[socket.socket]:
    """The slots flood: ``per_network`` connections from 127.0.N.1 for N in 1..``networks``,
    each sending an SSH banner and nothing more, held open. Those refused are left out."""
    held = []
    for net in range(1, networks + 1):
        for _ in range(per_network):
            try:
                sock = connect_from(f"127.0.{net}.1", address, timeout)
                sock.sendall(b"SSH-2.0-flood\r\n")
                held.append(sock)
            except OSError:
                pass
    return held


def _namelist(*names: str) -> bytes:
    text = ",".join(names).encode()
    return struct.pack(">I", len(text)) + text


def bad_kexinit() -> bytes:
    """An SSH KEXINIT packet offering no key exchange the server knows."""
    payload = (
        b"\x14"
        + os.urandom(16)
        + _namelist("no-such-kex@example.org")
        + _namelist("ssh-ed25519")
        + _namelist("aes128-ctr") * 2
        + _namelist("hmac-sha2-256") * 2
        + _namelist("none") * 2
        + _namelist() * 2
        + b"\x00"
        + struct.pack(">I", 0)
    )
    pad = 8 - (5 + len(payload)) % 8
    pad += 8 if pad < 4 else 0
    body = bytes([pad]) + payload + b"\x00" * pad
    return struct.pack(">I", len(body)) + body
