"""The SFTP protocol's file requests, translated to ``FileSession`` calls (paramiko).

Rules:
- Each request is one ``FileSession`` call; each intake error one SFTP status code with
  paramiko's generic text (``Denied`` -> permission denied, ``NotFound`` -> no such file,
  anything else -> failure). Unexpected exceptions are logged here (paramiko would hide
  them) and answered with a failure; the session goes on.
- The client's requested modes on open/mkdir are ignored; setstat, remove, rmdir,
  symlink and readlink are refused by ``FileSession.refuse`` (audited).
- An upload is committed on the client's CLOSE and the CLOSE reply tells the truth
  (paramiko always answers OK); handles left open when the session ends are interrupted
  (``session_ended`` runs before paramiko closes them).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    SFTP_BAD_MESSAGE,
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_PERMISSION_DENIED,
)

from intake.adapters.storage import EntryStat
from intake.core.authz import Op
from intake.core.errors import Denied, IntakeError, NotFound
from intake.core.paths import normalize, to_text
from intake.services.files import Download, FileSession, Upload

if TYPE_CHECKING:
    from intake.frontends.sftp import IntakeServer

log = logging.getLogger("intake.sftp")
PROTOCOL = "sftp"
R = TypeVar("R")


def _attributes(entry: EntryStat) -> paramiko.SFTPAttributes:
    attr = paramiko.SFTPAttributes()
    attr.filename = entry.name
    attr.st_size = entry.size
    attr.st_mode = entry.mode
    attr.st_atime = attr.st_mtime = int(entry.mtime)
    return attr


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, Denied):
        return SFTP_PERMISSION_DENIED
    if isinstance(exc, NotFound):
        return SFTP_NO_SUCH_FILE
    return SFTP_FAILURE


def _answer(method: Callable[..., R]) -> Callable[..., R | int]:
    """Turn intake errors into SFTP status codes; log anything unexpected (paramiko hides it)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> R | int:
        try:
            return method(*args, **kwargs)
        except IntakeError as exc:
            return _status_of(exc)
        except OSError as exc:
            log.warning("sftp %s failed: %s", method.__name__, exc)
            return SFTP_FAILURE
        except Exception:
            log.exception("sftp %s crashed", method.__name__)
            return SFTP_FAILURE

    return wrapper


class IntakeSFTPHandle(paramiko.SFTPHandle):
    """An open file: an ``Upload`` or a ``Download`` of the session."""

    def __init__(self, interface: IntakeSFTPInterface, target: Upload | Download) -> None:
        super().__init__()
        self._interface = interface
        self._target = target

    @_answer
    def read(self, offset: int, length: int) -> bytes | int:
        if not isinstance(self._target, Download):
            return SFTP_PERMISSION_DENIED
        return self._target.read(offset, length)

    @_answer
    def write(self, offset: int, data: bytes) -> int:
        if not isinstance(self._target, Upload):
            return SFTP_PERMISSION_DENIED
        self._target.write(offset, data)
        return SFTP_OK

    @_answer
    def close_status(self) -> int:
        self._target.close()
        return SFTP_OK

    def close(self) -> None:
        self.close_status()

    @_answer
    def stat(self) -> paramiko.SFTPAttributes | int:
        if isinstance(self._target, Download):
            return _attributes(self._target.stat())
        attr = paramiko.SFTPAttributes()
        attr.st_size = self._target.size
        attr.st_mode = 0o100600
        return attr

    @_answer
    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        raise self._interface.files.refuse(Op.SETATTR, self._target.path)


class IntakeSFTPInterface(paramiko.SFTPServerInterface):
    """One SFTP subsystem of one logged-in connection."""

    def __init__(self, server: IntakeServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.connection = server
        assert server.account is not None
        self.files = FileSession(
            server.account,
            server.ip,
            PROTOCOL,
            server.instance.storage,
            server.instance.audit,
            server.instance.listeners,
            receipts=server.instance.receipts,
        )
        server.file_sessions.append(self.files)

    def session_ended(self) -> None:
        self.files.end(self.connection.end_reason)

    @_answer
    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        return [_attributes(e) for e in self.files.list_dir(path)]

    @_answer
    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return _attributes(self.files.stat(path))

    lstat = stat

    @_answer
    def open(
        self, path: str, flags: int, attr: paramiko.SFTPAttributes
    ) -> paramiko.SFTPHandle | int:
        # The client's requested mode (attr) is ignored: received files are 0440.
        if flags & (os.O_WRONLY | os.O_RDWR):
            return IntakeSFTPHandle(self, self.files.open_upload(path))
        return IntakeSFTPHandle(self, self.files.open_download(path))

    @_answer
    def remove(self, path: str) -> int:
        raise self.files.refuse(Op.DELETE, path)

    @_answer
    def rmdir(self, path: str) -> int:
        raise self.files.refuse(Op.RMDIR, path)

    @_answer
    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        raise self.files.refuse(Op.SETATTR, path)

    @_answer
    def symlink(self, target_path: str, path: str) -> int:
        raise self.files.refuse(Op.SYMLINK, path)

    @_answer
    def readlink(self, path: str) -> str | int:
        raise self.files.refuse(Op.READLINK, path)

    @_answer
    def rename(self, oldpath: str, newpath: str) -> int:
        self.files.rename(oldpath, newpath)
        return SFTP_OK

    posix_rename = rename

    @_answer
    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        self.files.mkdir(path)
        return SFTP_OK

    def canonicalize(self, path: str) -> str:
        try:
            return to_text(normalize(path))
        except IntakeError:
            return "/"


class IntakeSFTPServer(paramiko.SFTPServer):
    """paramiko's SFTP server, with a truthful CLOSE reply and activity tracking."""

    server: IntakeSFTPInterface

    def _process(self, t: int, request_number: int, msg: paramiko.Message) -> None:  # type: ignore[misc]
        self.server.connection.last_activity = time.monotonic()
        if t != CMD_CLOSE:
            super()._process(t, request_number, msg)  # type: ignore[misc]
            return
        # paramiko ignores what close() says and always answers OK: answer the truth.
        handle = msg.get_binary()
        reply: Callable[..., None] = self._send_status  # type: ignore[attr-defined]
        if handle in self.folder_table:
            del self.folder_table[handle]
            reply(request_number, SFTP_OK)
        elif handle in self.file_table:
            opened: IntakeSFTPHandle = self.file_table.pop(handle)  # type: ignore[assignment]
            reply(request_number, opened.close_status())
        else:
            reply(request_number, SFTP_BAD_MESSAGE, "Invalid handle")
