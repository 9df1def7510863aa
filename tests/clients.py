"""Real protocol clients behind one small interface, for the contract suite.

Each client raises ``Refused`` when the server answers "permission denied" (or the
protocol's equivalent), ``Missing`` for "no such file", and lets anything else through.
"""

from __future__ import annotations

import errno
import ftplib
import io
import socket
import ssl
from typing import Any, Protocol

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


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """``FTP_TLS`` whose data connections resume the control connection's TLS session.

    The stdlib client opens each data connection with a fresh handshake, which a server
    requiring session reuse (vsftpd's ``require_ssl_reuse``, intake) refuses.
    """

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            session = self.sock.session  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)  # type: ignore[attr-defined]
        return conn, size


def tls_client_context(cafile: str | None) -> ssl.SSLContext:
    """Verify intake's self-signed certificate (what a member pins), or nothing."""
    if cafile is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=cafile)


class FtpsClient:
    """Python's ``ftplib`` over explicit FTPS (AUTH TLS, PROT P), resuming the session."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        cafile: str | None = None,
        reuse_session: bool = True,
        timeout: float = 30,
    ) -> None:
        cls = ReusingFTP_TLS if reuse_session else ftplib.FTP_TLS
        self.ftp = cls(context=tls_client_context(cafile), timeout=timeout)
        self.ftp.connect(host, port)
        self.ftp.login(user, password)  # sends AUTH TLS first
        self.ftp.prot_p()

    def _call(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except ftplib.error_perm as exc:
            text = str(exc)
            if "no such file" in text.lower():
                raise Missing(text) from exc
            if text[:3] in ("550", "553", "554"):
                raise Refused(text) from exc
            raise

    def upload(self, path: str, data: bytes) -> None:
        self._call(self.ftp.storbinary, f"STOR {path}", io.BytesIO(data))

    def download(self, path: str) -> bytes:
        chunks: list[bytes] = []
        self._call(self.ftp.retrbinary, f"RETR {path}", chunks.append)
        return b"".join(chunks)

    def listdir(self, path: str) -> list[str]:
        return sorted(self._call(self.ftp.nlst, path))

    def mkdir(self, path: str) -> None:
        self._call(self.ftp.mkd, path)

    def rename(self, source: str, target: str) -> None:
        self._call(self.ftp.rename, source, target)

    def delete(self, path: str) -> None:
        self._call(self.ftp.delete, path)

    def rmdir(self, path: str) -> None:
        self._call(self.ftp.rmd, path)

    def chmod(self, path: str, mode: int) -> None:
        self._call(self.ftp.sendcmd, f"SITE CHMOD {mode:o} {path}")

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            self.ftp.close()


def raw_reply(sock: socket.socket | ssl.SSLSocket) -> str:
    """One whole FTP reply, multi-line ones (``220-...`` up to ``220 ...``) included."""
    data = b""
    while True:
        lines = data.split(b"\r\n")
        done = data.endswith(b"\r\n") and lines[-2][3:4] == b" "
        if done:
            return data.decode()
        chunk = sock.recv(4096)
        if not chunk:
            return data.decode()
        data += chunk
