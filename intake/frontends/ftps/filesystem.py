"""pyftpdlib's filesystem seen through ``FileSession``: no path here ever touches the disk.

pyftpdlib calls its ``AbstractedFS`` with "real" paths; here the real path IS the client's
virtual path (cwd-joined, normalised), and every call goes to the session's ``FileSession``,
which locates, authorises, audits and acts. The fs holds no rule of its own.

Rules:
- An intake error (a limit too) becomes a ``FilesystemError`` with its member-facing text
  (``intake.core.messages``, the same as over SFTP): pyftpdlib turns it into a 550 reply,
  which the control channel puts in ``[server] lang``; the detail is already in the audit
  log.
- Delete, rmdir, chmod and readlink are refused through ``FileSession.refuse``; times are
  set by ``MFMT``/``SITE UTIME`` in ``server.py``.
- Uploads open through ``FileSession.open_upload`` (staging, write-once) and are neither
  committed nor discarded by pyftpdlib: the data channel decides (see ``server.py``); a
  file object closed without that decision is an interrupted upload.
"""

from __future__ import annotations

import posixpath
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.filesystems import AbstractedFS

from intake.adapters.storage import EntryStat
from intake.core import messages
from intake.core.authz import Op
from intake.core.errors import IntakeError, InvalidName
from intake.core.messages import Say
from intake.core.paths import normalize, to_text
from intake.services.files import Download, FileSession, Upload

T = TypeVar("T")
DENIED_TEXT = messages.text(Say.DENIED)
CUT_REASON = "data connection closed before the end of the upload"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SIX_MONTHS = 180 * 24 * 3600


def _call(action: Callable[..., T], *args: Any) -> T:
    """Run a FileSession call; intake errors become pyftpdlib's ``FilesystemError``."""
    try:
        return action(*args)
    except IntakeError as exc:  # a limit too: its ``say`` (the audit names the limit)
        raise FilesystemError(messages.for_error(exc)) from None


class UploadFile:
    """The file object pyftpdlib writes an upload into: bytes go to the staged ``Upload``."""

    def __init__(self, upload: Upload) -> None:
        self._upload = upload
        self.name = upload.path
        self.offset = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._upload.write(self.offset, data)
        self.offset += len(data)
        return len(data)

    @property
    def failed(self) -> bool:
        """A write failed (disk full, quota): the upload is already discarded and audited."""
        return self._upload.failed is not None

    @property
    def refused_by_limit(self) -> str | None:
        """Why a limit (size, hole, quota) ended the upload, or None."""
        return self._upload.refused_by_limit

    @property
    def failure_text(self) -> str:
        return messages.text(self._upload.failure_say)

    def commit(self) -> None:
        """The client ended the upload cleanly: put it in place (``Denied`` if name taken)."""
        self.closed = True
        self._upload.close()

    def abort(self, reason: str) -> None:
        self.closed = True
        self._upload.abort(reason)

    def close(self) -> None:
        # Reached only when no one decided: the upload did not end cleanly.
        if not self.closed:
            self.abort(CUT_REASON)


class DownloadFile:
    """The file object pyftpdlib reads a download from (REST moves the offset)."""

    def __init__(self, download: Download) -> None:
        self._download = download
        self.name = download.path
        self.offset = 0
        self.closed = False

    def read(self, size: int = 65536) -> bytes:
        data = self._download.read(self.offset, size)
        self.offset += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self.offset = offset if whence == 0 else self.offset + offset
        return self.offset

    def tell(self) -> int:
        return self.offset

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._download.close()


class SessionFS(AbstractedFS):  # type: ignore[misc]
    """One control connection's view: paths are client paths, calls go to its FileSession."""

    def __init__(self, root: str, cmd_channel: Any) -> None:
        super().__init__("/", cmd_channel)
        self._listed: tuple[str, dict[str, EntryStat]] = ("", {})

    @property
    def files(self) -> FileSession:
        files: FileSession = self.cmd_channel.files
        return files

    # -- paths: the "real" path is the normalised client path ----------------------

    def ftpnorm(self, ftppath: str) -> str:
        joined = ftppath if ftppath.startswith("/") else posixpath.join(self.cwd, ftppath)
        try:
            return to_text(normalize(joined))
        except InvalidName:
            return joined  # FileSession refuses it (and audits why)

    ftp2fs = ftpnorm

    def fs2ftp(self, fspath: str) -> str:
        return fspath

    def validpath(self, path: str) -> bool:
        return True  # the jail is FileSession's

    def realpath(self, path: str) -> str:
        return path

    # -- reading ---------------------------------------------------------------------

    def _stat(self, path: str) -> EntryStat:
        return _call(self.files.stat, path)

    def stat(self, path: str) -> EntryStat:
        return self._stat(path)

    lstat = stat

    def _probe(self, path: str) -> EntryStat | None:
        try:
            return self._stat(path)
        except FilesystemError:
            return None

    def isdir(self, path: str) -> bool:
        entry = self._probe(path)
        return entry is not None and entry.is_dir

    def isfile(self, path: str) -> bool:
        entry = self._probe(path)
        return entry is not None and not entry.is_dir

    def lexists(self, path: str) -> bool:
        return self._probe(path) is not None

    def islink(self, path: str) -> bool:
        return False

    def getsize(self, path: str) -> int:
        return self._stat(path).size

    def getmtime(self, path: str) -> float:
        return self._stat(path).mtime

    def chdir(self, path: str) -> None:
        if not self._stat(path).is_dir:
            raise FilesystemError("Not a directory")
        self.cwd = path

    def listdir(self, path: str) -> list[str]:
        entries = _call(self.files.list_dir, path)
        self._listed = (path, {e.name: e for e in entries})
        return [e.name for e in entries]

    listdirinfo = listdir

    def open(self, filename: str, mode: str) -> UploadFile | DownloadFile:
        if mode == "rb":
            return DownloadFile(_call(self.files.open_download, filename))
        if mode in ("wb", "ab"):
            return UploadFile(_call(self.files.open_upload, filename))
        raise FilesystemError(DENIED_TEXT)  # r+b (a resumed upload) never gets here

    # -- writing ---------------------------------------------------------------------

    def mkdir(self, path: str) -> None:
        _call(self.files.mkdir, path)

    def rename(self, src: str, dst: str) -> None:
        _call(self.files.rename, src, dst)

    def _refuse(self, op: Op, path: str, **extra: str) -> None:
        raise FilesystemError(messages.for_error(self.files.refuse(op, path, **extra)))

    def remove(self, path: str) -> None:
        self._refuse(Op.DELETE, path)

    def rmdir(self, path: str) -> None:
        self._refuse(Op.RMDIR, path)

    def chmod(self, path: str, mode: int) -> None:
        self._refuse(Op.SETATTR, path, attributes="permissions")

    def readlink(self, path: str) -> str:
        self._refuse(Op.READLINK, path)
        return ""  # pragma: no cover

    def mkstemp(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse(Op.UPLOAD, self.cwd)

    # -- listings --------------------------------------------------------------------

    def _entries(self, basedir: str, names: list[str], ignore_err: bool) -> Iterator[EntryStat]:
        listed_dir, listed = self._listed
        for name in names:
            entry = listed.get(name) if listed_dir == basedir else None
            if entry is None:
                try:
                    entry = self._stat(posixpath.join(basedir, name))
                except FilesystemError:
                    if ignore_err:
                        continue
                    raise
                if not name:  # MLST of "/" asks for the folder itself
                    entry = EntryStat(basedir, entry.is_dir, entry.size, entry.mtime, entry.mode)
            yield entry

    def _encode(self, line: str) -> bytes:
        encoded: bytes = line.encode(self.cmd_channel.encoding, self.cmd_channel.unicode_errors)
        return encoded

    def format_list(
        self, basedir: str, listing: list[str], ignore_err: bool = True
    ) -> Iterator[bytes]:
        now = time.time()
        for entry in self._entries(basedir, listing, ignore_err):
            tm = time.gmtime(entry.mtime)
            clock = (
                f"{tm.tm_year:5d}"
                if now - entry.mtime > _SIX_MONTHS
                else f"{tm.tm_hour:02d}:{tm.tm_min:02d}"
            )
            when = f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {clock}"
            mode = stat.filemode(entry.mode)
            yield self._encode(
                f"{mode}   1 intake   intake {entry.size:>12} {when} {entry.name}\r\n"
            )

    def format_mlsx(
        self,
        basedir: str,
        listing: list[str],
        perms: str,
        facts: list[str],
        ignore_err: bool = True,
    ) -> Iterator[bytes]:
        for entry in self._entries(basedir, listing, ignore_err):
            values = {
                "type": "dir" if entry.is_dir else "file",
                "size": str(entry.size),
                "modify": time.strftime("%Y%m%d%H%M%S", time.gmtime(entry.mtime)),
                "perm": "elcm" if entry.is_dir else "r",  # a hint; FileSession decides
                # the mode LIST shows, so a client shows the same permissions either way
                "unix.mode": f"0{stat.S_IMODE(entry.mode):o}",
            }
            text = "".join(f"{k}={v};" for k, v in values.items() if k in facts)
            yield self._encode(f"{text} {entry.name}\r\n")
