"""The SFTP protocol's file requests, translated to ``FileSession`` calls (paramiko).

Rules:
- Each request is one ``FileSession`` call; each intake error one SFTP status code
  (``Denied`` -> permission denied, ``NotFound`` -> no such file, anything else ->
  failure) with the error's text from ``intake.core.messages`` (the same as over FTPS),
  in ``[server] lang``; a status without an error of its own takes the table's text for
  its code (``STATUS_SAYS``), never paramiko's English.
  Unexpected exceptions are logged here (paramiko would hide them) and answered with a
  failure; the session goes on.
- The client's requested modes on open/mkdir are ignored; remove, rmdir, symlink and
  readlink are refused by ``FileSession.refuse`` (audited).
- SETSTAT (by path) and FSETSTAT (on a handle) are decided by
  ``authz.attribute_request``: times are set (on an open upload, at its close), a
  permission change that comes with them is ignored, anything else is refused.
- An upload is committed on the client's CLOSE and the CLOSE reply tells the truth
  (paramiko always answers OK); handles left open when the session ends are interrupted
  (``session_ended`` runs before paramiko closes them).
- Bounded like OpenSSH's sftp-server: an incoming SFTP message of more than
  ``MAX_MESSAGE`` bytes ends the session (paramiko would buffer up to 16 MiB, copying it
  quadratically); a READ returns at most ``MAX_READ`` bytes, so no reply exceeds
  ``MAX_MESSAGE``; open files and folders count against ``max_open_handles``. The limits
  are advertised with the ``limits@openssh.com`` extension (OpenSSH's sftp then sizes its
  requests to them). paramiko's ``check-file`` extension (MD5/SHA-1 of any length of a
  file, in one request) is not offered. A refusal by a limit is a failure status whose
  text says which limit (quota, file size...); the audit record gives its value.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_INIT,
    CMD_VERSION,
    SFTP_BAD_MESSAGE,
    SFTP_EOF,
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)

from intake.adapters.storage import EntryStat
from intake.core import messages
from intake.core.authz import AttributeRequest, Op, attribute_request
from intake.core.errors import Denied, IntakeError, LimitExceeded, NotFound
from intake.core.messages import Say
from intake.core.model import Account
from intake.core.paths import normalize, to_text
from intake.services.files import MAX_READ, Download, FileSession, Upload
from intake.services.instance import Instance


class SftpConnection(paramiko.ServerInterface):
    """What a subsystem needs of its SSH connection: ``server.IntakeServer`` derives from it.

    Declared here, not imported: the connection module imports this one, never the reverse.
    """

    instance: Instance
    ip: str
    account: Account | None
    file_sessions: list[FileSession]
    last_activity: float
    end_reason: str


log = logging.getLogger("intake.sftp")
PROTOCOL = "sftp"
R = TypeVar("R")
SFTP_VERSION = 3
MAX_MESSAGE = 256 * 1024  # OpenSSH's SFTP_MAX_MSG_LENGTH
MAX_WRITE = MAX_MESSAGE - 1024  # what limits@openssh.com tells clients to write at most
LIMITS_EXTENSION = "limits@openssh.com"
EXTENSIONS = ((LIMITS_EXTENSION, "1"), ("posix-rename@openssh.com", "1"))


def _attributes(entry: EntryStat) -> paramiko.SFTPAttributes:
    attr = paramiko.SFTPAttributes()
    attr.filename = entry.name
    attr.st_size = entry.size
    attr.st_mode = entry.mode
    attr.st_atime = attr.st_mtime = int(entry.mtime)
    return attr


def _decide(attr: paramiko.SFTPAttributes) -> tuple[Op | None, str, int | None, int]:
    """(operation, ignored, atime_ns, mtime_ns) of a SETSTAT's attributes."""
    flags: int = getattr(attr, "_flags", 0)  # which fields the request carries
    decision = attribute_request(
        AttributeRequest(
            size=bool(flags & attr.FLAG_SIZE),
            owner=bool(flags & attr.FLAG_UIDGID),
            permissions=bool(flags & attr.FLAG_PERMISSIONS),
            times=bool(flags & attr.FLAG_AMTIME),
        )
    )
    if decision.op is not Op.SETTIMES:
        return decision.op, decision.ignored, None, 0
    atime, mtime = attr.st_atime, attr.st_mtime
    atime_ns = None if atime is None else int(atime) * 1_000_000_000
    return decision.op, decision.ignored, atime_ns, int(mtime or 0) * 1_000_000_000


def _asked(attr: paramiko.SFTPAttributes) -> str:
    """What a refused attribute change asked for (``permissions``, ``size,owner``...): the
    report tells a client's habitual chmod after an upload from a truncation."""
    flags: int = getattr(attr, "_flags", 0)
    named = (
        (attr.FLAG_SIZE, "size"),
        (attr.FLAG_UIDGID, "owner"),
        (attr.FLAG_PERMISSIONS, "permissions"),
        (attr.FLAG_AMTIME, "times"),
    )
    return ",".join(name for flag, name in named if flags & flag)


# The text of a status reply that has none of its own (every text from the one table).
STATUS_SAYS = {
    SFTP_OK: Say.SFTP_OK,
    SFTP_EOF: Say.SFTP_EOF,
    SFTP_NO_SUCH_FILE: Say.NOT_FOUND,
    SFTP_PERMISSION_DENIED: Say.DENIED,
    SFTP_FAILURE: Say.FAILED,
    SFTP_BAD_MESSAGE: Say.SFTP_BAD_MESSAGE,
    SFTP_OP_UNSUPPORTED: Say.SFTP_UNSUPPORTED,
}


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
        except LimitExceeded as exc:  # the audit names the limit; the member reads its say
            interface = getattr(args[0], "_interface", args[0])
            interface.status_text = messages.for_error(exc, interface.lang)
            return SFTP_FAILURE
        except IntakeError as exc:
            interface = getattr(args[0], "_interface", args[0])
            interface.status_text = messages.for_error(exc, interface.lang)
            return _status_of(exc)
        except OSError as exc:
            log.warning("sftp %s failed: %s", method.__name__, exc)
            interface = getattr(args[0], "_interface", args[0])
            interface.status_text = messages.for_error(exc, interface.lang)
            return SFTP_FAILURE
        except Exception as exc:
            log.exception("sftp %s crashed", method.__name__)
            interface = getattr(args[0], "_interface", args[0])
            interface.status_text = messages.for_error(exc, interface.lang)
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
        op, ignored, atime_ns, mtime_ns = _decide(attr)
        if op is None:
            return SFTP_OK
        if op is not Op.SETTIMES:
            raise self._interface.files.refuse(op, self._target.path, attributes=_asked(attr))
        if isinstance(self._target, Upload):
            self._target.set_times(atime_ns, mtime_ns, ignored)
        else:
            self._interface.files.set_times(self._target.path, atime_ns, mtime_ns, ignored)
        return SFTP_OK


class IntakeSFTPInterface(paramiko.SFTPServerInterface):
    """One SFTP subsystem of one logged-in connection."""

    def __init__(self, server: SftpConnection, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.connection = server
        self.status_text: str | None = None  # the text of the next status reply
        self.lang = server.instance.config.server.lang  # of every text a status carries
        if server.account is None:
            raise paramiko.SSHException("sftp subsystem before authentication")
        self.files = FileSession(
            server.account,
            server.ip,
            PROTOCOL,
            server.instance.storage,
            server.instance.audit,
            server.instance.listeners,
            receipts=server.instance.receipts,
            budget=server.instance.budget,
        )
        server.file_sessions.append(self.files)

    def session_ended(self) -> None:
        self.files.end(self.connection.end_reason)

    @_answer
    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        # paramiko calls this for OPENDIR only: the folder handle counts as open.
        return [_attributes(e) for e in self.files.open_folder(path)]

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
        op, ignored, atime_ns, mtime_ns = _decide(attr)
        if op is None:
            return SFTP_OK
        if op is not Op.SETTIMES:
            raise self.files.refuse(op, path, attributes=_asked(attr))
        self.files.set_times(path, atime_ns, mtime_ns, ignored)
        return SFTP_OK

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
    """paramiko's SFTP server: bounded messages, OpenSSH's limits extension, a truthful
    CLOSE reply, status texts that name a limit, activity tracking."""

    server: IntakeSFTPInterface

    def _read_packet(self) -> tuple[int, bytes]:
        header = self._read_all(4)  # type: ignore[attr-defined]
        size = int.from_bytes(header, "big")
        if size > MAX_MESSAGE:
            log.warning("sftp: closing a session that sent a %d-byte message", size)
            raise paramiko.SSHException(f"SFTP message of {size} bytes (limit {MAX_MESSAGE})")
        data: bytes = self._read_all(size)  # type: ignore[attr-defined]
        return (data[0], data[1:]) if size else (0, b"")

    def _send_server_version(self) -> int:
        kind, data = self._read_packet()
        if kind != CMD_INIT:
            raise paramiko.SSHException("the client did not start with SSH_FXP_INIT")
        msg = paramiko.Message()
        msg.add_int(SFTP_VERSION)
        for name, version in EXTENSIONS:
            msg.add_string(name)
            msg.add_string(version)
        self._send_packet(CMD_VERSION, msg)  # type: ignore[attr-defined]
        return int.from_bytes(data[:4], "big")

    def _send_status(self, request_number: int, code: int, desc: str | None = None) -> None:
        text, self.server.status_text = self.server.status_text, None
        if not text:  # never paramiko's English ("Permission denied"...): the table's
            text = messages.text(STATUS_SAYS.get(code, Say.FAILED), self.server.lang)
        super()._send_status(request_number, code, text)  # type: ignore[misc]

    def _send_limits(self, request_number: int) -> None:
        msg = paramiko.Message()
        msg.add_int(request_number)
        msg.add_int64(MAX_MESSAGE)  # max-packet-length
        msg.add_int64(MAX_READ)  # max-read-length
        msg.add_int64(MAX_WRITE)  # max-write-length
        msg.add_int64(self.server.files.budget.limits.max_open_handles)  # max-open-handles
        self._send_packet(CMD_EXTENDED_REPLY, msg)  # type: ignore[attr-defined]

    def _process(self, t: int, request_number: int, msg: paramiko.Message) -> None:  # type: ignore[misc]
        self.server.connection.last_activity = time.monotonic()
        self.server.status_text = None
        if t == CMD_EXTENDED:
            tag = msg.get_text()
            if tag == LIMITS_EXTENSION:
                self._send_limits(request_number)
            elif tag == "posix-rename@openssh.com":
                reply: Callable[..., None] = self._send_status
                reply(request_number, self.server.posix_rename(msg.get_text(), msg.get_text()))
            else:  # check-file among them: hashing a whole file per request is not offered
                self._send_status(request_number, SFTP_OP_UNSUPPORTED)
            return
        if t != CMD_CLOSE:
            super()._process(t, request_number, msg)  # type: ignore[misc]
            return
        # paramiko ignores what close() says and always answers OK: answer the truth.
        handle = msg.get_binary()
        reply = self._send_status
        if handle in self.folder_table:
            del self.folder_table[handle]
            self.server.files.close_folder()
            reply(request_number, SFTP_OK)
        elif handle in self.file_table:
            opened: IntakeSFTPHandle = self.file_table.pop(handle)  # type: ignore[assignment]
            reply(request_number, opened.close_status())
        else:
            reply(request_number, SFTP_BAD_MESSAGE, "Invalid handle")
