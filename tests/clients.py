"""Real protocol clients behind one small interface, for the contract suite.

Each client raises ``Refused`` when the server answers "permission denied" (or the
protocol's equivalent), ``Missing`` for "no such file", and lets anything else through.
"""

from __future__ import annotations

import errno
import io
from typing import Protocol

import paramiko


class Refused(Exception):
    """The server refused the operation (permission denied)."""


class Missing(Exception):
    """The server says there is no such file."""


class Client(Protocol):
    def upload(self, path: str, data: bytes) -> None: ...
    def download(self, path: str) -> bytes: ...
    def listdir(self, path: str) -> list[str]: ...
    def mkdir(self, path: str) -> None: ...
    def rename(self, source: str, target: str) -> None: ...
    def delete(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def chmod(self, path: str, mode: int) -> None: ...
    def close(self) -> None: ...


def _translate(exc: OSError) -> Exception:
    if exc.errno == errno.EACCES or isinstance(exc, PermissionError):
        return Refused(str(exc))
    if exc.errno == errno.ENOENT or isinstance(exc, FileNotFoundError):
        return Missing(str(exc))
    return exc


class SftpClient:
    """paramiko's SFTP client, with host-key checking against the instance's key."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str | None = None,
        key_file: str | None = None,
        host_key: paramiko.PKey | None = None,
    ) -> None:
        self.transport = paramiko.Transport((host, port))
        self.transport.connect()
        if host_key is not None and self.transport.get_remote_server_key() != host_key:
            self.transport.close()
            raise AssertionError("server presented an unexpected host key")
        if key_file:
            self.transport.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(key_file))
        else:
            self.transport.auth_password(user, password or "")
        self.sftp = paramiko.SFTPClient.from_transport(self.transport)
        assert self.sftp is not None

    def _call(self, func, *args):  # type: ignore[no-untyped-def]
        try:
            return func(*args)
        except OSError as exc:
            raise _translate(exc) from exc

    def upload(self, path: str, data: bytes) -> None:
        self._call(self.sftp.putfo, io.BytesIO(data), path, 0, None, False)

    def download(self, path: str) -> bytes:
        buf = io.BytesIO()
        self._call(self.sftp.getfo, path, buf)
        return buf.getvalue()

    def listdir(self, path: str) -> list[str]:
        return sorted(self._call(self.sftp.listdir, path))

    def mkdir(self, path: str) -> None:
        self._call(self.sftp.mkdir, path)

    def rename(self, source: str, target: str) -> None:
        self._call(self.sftp.rename, source, target)

    def delete(self, path: str) -> None:
        self._call(self.sftp.remove, path)

    def rmdir(self, path: str) -> None:
        self._call(self.sftp.rmdir, path)

    def chmod(self, path: str, mode: int) -> None:
        self._call(self.sftp.chmod, path, mode)

    def close(self) -> None:
        self.sftp.close()
        self.transport.close()
