"""Files on disk: the jail, staged uploads, no-replace renames. The one seam to the filesystem.

Layout under the instance's ``data/``::

    data/members/<member>/...     a member's area
    data/outbox/<technician>/...  what a technician deposits for the vendor
    data/.staging/                uploads in progress; inside no client's view

Rules:
- Jail: a location maps to ``area root + rel``, and is never checked by name and then
  opened by name (a folder swapped for a symlink in between would lead outside). Every
  operation (read, write, list, rename, mkdir, stat) resolves the path component by
  component from the trusted ``data/`` (or ``log/``) descriptor: each folder is opened
  ``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor, and the last name is
  acted on through its folder's descriptor (``openat``, ``fstatat``, ``mkdirat``,
  ``renameat2``). A symlink anywhere, at any moment, is ``Denied`` ("symlink in path").
  ``real_path`` is the lexical path, for records and messages only.
- A regular file with more than one link (``st_nlink > 1``: a hard link planted by hand,
  which could be a name for a file outside the area) is refused (``Denied``), as is
  anything that is not a regular file or a folder.
- Only regular files and folders are shown or served; anything else on disk is invisible.
  A file is opened with ``O_NONBLOCK`` (a FIFO or a device planted in an area must not
  hang the opening thread), checked with ``fstat`` to be a regular file, and only then
  switched back to blocking reads; anything else is ``Denied`` ("not a regular file").
- Uploads are written to a fresh file in ``.staging`` (``O_EXCL``), hashed as they come,
  fsynced, made read-only (0440) and renamed into place with ``RENAME_NOREPLACE`` when
  the client closes: a received file appears whole or not at all, and never replaces one.
  A target name is reserved while its upload is open, so two uploads cannot race for it:
  in this process by a set, across processes (worker processes) by the staging file's
  own name, derived from the target (``staging_path_for``).
- An upload that is not committed is discarded: its partial data is unlinked at once. A
  commit that fails before its rename (fsync, hash, rename) raises and leaves nothing in
  place; the rename is the commit point (a folder fsync failing after it is logged).
- Every rename into place is followed by an fsync of the destination folder.
- ``set_times`` changes only a file's or folder's access/modification times, through a
  descriptor opened with ``O_NOFOLLOW``; an open upload keeps the times asked for and
  applies them at its commit, after the last byte (a write would move the mtime again).
- ``destroy_file`` removes a regular file through its folder's descriptor, refusing a
  symlink, then fsyncs the folder: the sweeper's one way to delete a backup.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from intake.core.authz import Area, Location
from intake.core.errors import Conflict, Denied, NotFound
from intake.core.paths import check_new_name, is_within

log = logging.getLogger("intake.storage")
STAGING = ".staging"
RECEIVED_MODE = 0o440
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def rename_noreplace(
    source: str, target: str, src_dir_fd: int = _AT_FDCWD, dst_dir_fd: int = _AT_FDCWD
) -> None:
    """Rename, failing with ``FileExistsError`` if ``target`` exists (atomically).

    With folder descriptors, ``source`` and ``target`` are names in those folders.
    """
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is not None:
        if (
            renameat2(
                src_dir_fd, os.fsencode(source), dst_dir_fd, os.fsencode(target), _RENAME_NOREPLACE
            )
            == 0
        ):
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), target)
    # Filesystems without renameat2 flags: link() refuses an existing name atomically.
    src_fd = None if src_dir_fd == _AT_FDCWD else src_dir_fd
    dst_fd = None if dst_dir_fd == _AT_FDCWD else dst_dir_fd
    os.link(source, target, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    os.unlink(source, dir_fd=src_fd)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir_beneath(base: str, parts: Sequence[str]) -> int:
    """A descriptor of the folder ``base/parts...``, each component opened from its parent's
    descriptor with ``O_NOFOLLOW | O_DIRECTORY``: a symlink on the way, even one swapped in
    a moment ago, fails (``Denied``); a missing folder is ``NotFound``."""
    fd = os.open(base, _DIR_FLAGS)
    try:
        for part in parts:
            if not part or part in (".", "..") or "/" in part:
                raise Denied("bad path component")
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if _is_symlink(part, fd):  # O_DIRECTORY on a symlink says ENOTDIR
                    raise Denied("symlink in path") from None
                raise _jail_error(exc) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _jail_error(exc: OSError) -> Exception:
    """What an ``OSError`` met while resolving beneath an area means to a client."""
    if exc.errno == errno.ELOOP:
        return Denied("symlink in path")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound("no such file or folder")
    return exc


def check_single_link(st: os.stat_result) -> None:
    """``Denied`` for a regular file with other names (a hard link planted by hand)."""
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        raise Denied("a hard link: refused")


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class EntryStat:
    name: str
    is_dir: bool
    size: int
    mtime: float
    mode: int  # full st_mode


def _entry(name: str, st: os.stat_result) -> EntryStat:
    return EntryStat(name, stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime, st.st_mode)


class StagedUpload:
    """One upload in ``.staging``: write, then ``commit`` (into place) or ``discard``."""

    def __init__(
        self, storage: Storage, staging_path: str, target: str, location: Location | None = None
    ) -> None:
        self._storage = storage
        self.staging_path = staging_path
        self.target = target
        self.location = location
        self._fd = os.open(
            staging_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        self._hash = hashlib.sha256()
        self._hashed_to = 0  # bytes hashed in order; -1 once writes came out of order
        self.size = 0
        self.done = False
        self.times: tuple[int | None, int] | None = None  # (atime_ns, mtime_ns) at commit

    def set_times(self, atime_ns: int | None, mtime_ns: int) -> None:
        """Times to give the file when it is committed (``None`` atime: left as is)."""
        self.times = (atime_ns, mtime_ns)

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(self._fd, view[written:], offset + written)
        if self._hashed_to == offset:
            self._hash.update(data)
            self._hashed_to += len(data)
        else:  # out of order (a resume, a parallel client): hash the file at commit
            self._hashed_to = -1
        self.size = max(self.size, offset + len(data))

    def _sha256(self) -> str:
        if self._hashed_to == self.size:
            return self._hash.hexdigest()
        return sha256_file(self.staging_path)

    def commit(self) -> tuple[int, str]:
        """Make the file received: returns (size, sha256). ``Conflict`` if the name got taken."""
        try:
            if self.times is not None:
                atime_ns, mtime_ns = self.times
                if atime_ns is None:
                    atime_ns = os.fstat(self._fd).st_atime_ns
                os.utime(self._fd, ns=(atime_ns, mtime_ns))
            os.fsync(self._fd)
            os.fchmod(self._fd, RECEIVED_MODE)
            os.close(self._fd)
            self._fd = -1
            digest = self._sha256()
            size = os.stat(self.staging_path).st_size
            if self.location is None:
                self._rename_by_path()
            else:
                self._rename_beneath(self.location)
            return size, digest
        finally:
            self._finish()

    def _rename_by_path(self) -> None:
        try:
            rename_noreplace(self.staging_path, self.target)
        except FileExistsError:
            raise Conflict("target exists") from None
        # The rename is the commit point: the file is in place, whole, from here on.
        try:
            fsync_dir(os.path.dirname(self.target))
        except OSError as exc:
            log.warning("fsync of the folder of a received file failed: %s", exc.strerror)

    def _rename_beneath(self, location: Location) -> None:
        """Into place through both folders' descriptors, the target's resolved afresh."""
        staging_dir, staging_name = os.path.split(self.staging_path)
        source_fd = os.open(staging_dir, _DIR_FLAGS)
        try:
            with self._storage.parent_of(location) as (target_fd, name):
                try:
                    rename_noreplace(staging_name, name, source_fd, target_fd)
                except FileExistsError:
                    raise Conflict("target exists") from None
                # The rename is the commit point: the file is in place, whole, from here on.
                try:
                    os.fsync(target_fd)
                except OSError as exc:
                    log.warning("fsync of the folder of a received file failed: %s", exc.strerror)
        finally:
            os.close(source_fd)

    def discard(self) -> None:
        self._finish()

    def uncommit(self) -> None:
        """Take a just-committed file back out (its arrival could not be recorded): moved
        back into staging, then removed. Only ever for the file this upload created."""
        try:
            if self.location is None:
                rename_noreplace(self.target, self.staging_path)
            else:  # through the folders' descriptors, as it was put there
                staging_dir, staging_name = os.path.split(self.staging_path)
                source_fd = os.open(staging_dir, _DIR_FLAGS)
                try:
                    with self._storage.parent_of(self.location) as (target_fd, name):
                        rename_noreplace(name, staging_name, target_fd, source_fd)
                finally:
                    os.close(source_fd)
        except (OSError, Denied, NotFound) as exc:
            log.error("could not take back %s: %s", self.target, exc)
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.staging_path)
        with contextlib.suppress(OSError):
            fsync_dir(os.path.dirname(self.target))

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.staging_path)
        self._storage.release(self.target)


def open_regular(path: str, dir_fd: int | None = None) -> int:
    """A read-only descriptor of the regular file at ``path`` (never following a symlink).

    Opened non-blocking, so a FIFO or a device cannot hang the caller, then checked with
    ``fstat``: anything but a regular file is closed and refused (``Denied``, "not a
    regular file"); a symlink is ``OSError`` ``ELOOP``.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Denied("not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Stream a regular file through SHA-256 (never whole into memory); ``Denied`` if the
    path is not a regular file (a FIFO, a device)."""
    digest = hashlib.sha256()
    fd = open_regular(path)
    try:
        while block := os.read(fd, chunk):
            digest.update(block)
    finally:
        os.close(fd)
    return digest.hexdigest()


def destroy_file(path: str) -> None:
    """Unlink the file at ``path``, then fsync its folder so the removal is durable.

    A symlink is refused (``OSError`` ``ELOOP``, as ``O_NOFOLLOW`` would): neither it nor
    what it points to is removed. The check and the unlink go through one descriptor of
    the folder, so the folder fsynced is the one the name was removed from.
    """
    folder, name = os.path.split(path)
    dir_fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            raise OSError(errno.ELOOP, "a symlink: refused", path)
        os.unlink(name, dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Storage:
    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir = os.path.realpath(data_dir)
        self.members_root = os.path.join(self.data_dir, "members")
        self.outbox_root = os.path.join(self.data_dir, "outbox")
        self.staging_root = os.path.join(self.data_dir, STAGING)
        self.audit_root = os.path.realpath(log_dir)
        for folder in (self.members_root, self.outbox_root, self.staging_root):
            os.makedirs(folder, mode=0o750, exist_ok=True)
        self._reserved: set[str] = set()
        self._lock = threading.Lock()

    # -- areas ---------------------------------------------------------------------

    def ensure_area(self, area: Area, owner: str) -> None:
        os.makedirs(self.area_root(area, owner), mode=0o750, exist_ok=True)

    def area_root(self, area: Area, owner: str) -> str:
        if area is Area.MEMBER:
            return os.path.join(self.members_root, owner)
        if area is Area.OUTBOX:
            return os.path.join(self.outbox_root, owner)
        if area is Area.AUDIT:
            return self.audit_root
        raise Denied("no folder behind the virtual root")

    def member_areas(self) -> list[str]:
        return sorted(
            e.name for e in os.scandir(self.members_root) if e.is_dir(follow_symlinks=False)
        )

    def real_path(self, location: Location) -> str:
        """The checked path on disk of ``location``: ``Denied`` if it would leave its area."""
        root = self.area_root(location.area, location.owner)
        if location.owner and ("/" in location.owner or location.owner in (".", "..")):
            raise Denied("bad area name")
        lexical = os.path.join(root, *location.rel) if location.rel else root
        resolved = os.path.realpath(lexical)
        if resolved != os.path.normpath(lexical):
            raise Denied("symlink in path")
        if not is_within(root, resolved):
            raise Denied("path leaves the area")
        return resolved

    # -- resolving beneath an area -------------------------------------------------

    def _base(self, location: Location) -> tuple[str, list[str]]:
        """The trusted folder and the components below it that lead to ``location``."""
        if location.owner and ("/" in location.owner or location.owner in (".", "..")):
            raise Denied("bad area name")
        if location.area is Area.MEMBER:
            return self.data_dir, ["members", location.owner, *location.rel]
        if location.area is Area.OUTBOX:
            return self.data_dir, ["outbox", location.owner, *location.rel]
        if location.area is Area.AUDIT:
            return self.audit_root, list(location.rel)
        raise Denied("no folder behind the virtual root")

    @contextlib.contextmanager
    def folder_of(self, location: Location) -> Iterator[int]:
        """A descriptor of the folder ``location`` (resolved beneath; closed after)."""
        base, parts = self._base(location)
        fd = open_dir_beneath(base, parts)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def parent_of(self, location: Location) -> Iterator[tuple[int, str]]:
        """(descriptor of its folder, its name) for a location below an area's root."""
        if not location.rel:
            raise Denied("the area itself")
        base, parts = self._base(location)
        fd = open_dir_beneath(base, parts[:-1])
        try:
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def disk_beneath(self, path: str) -> tuple[str, list[str]]:
        """A disk path inside ``data/`` as (data dir, components); ``Denied`` outside it."""
        if not is_within(self.data_dir, path) or path == self.data_dir:
            raise Denied("path leaves the data folder")
        return self.data_dir, path[len(self.data_dir) + 1 :].split(os.sep)

    def open_file_beneath(self, path: str) -> int:
        """A read-only descriptor of the regular file at disk ``path`` in ``data/``,
        resolved component by component (a symlink anywhere is ``Denied``)."""
        base, parts = self.disk_beneath(path)
        folder = open_dir_beneath(base, parts[:-1])
        try:
            fd = open_regular(parts[-1], dir_fd=folder)
        except OSError as exc:
            raise _jail_error(exc) from None
        finally:
            os.close(folder)
        try:
            check_single_link(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def hash_beneath(self, path: str, chunk: int = 1 << 20) -> tuple[str, os.stat_result]:
        """SHA-256 and final ``fstat`` of the file at disk ``path`` (see ``open_file_beneath``)."""
        fd = self.open_file_beneath(path)
        try:
            digest = hashlib.sha256()
            while block := os.read(fd, chunk):
                digest.update(block)
            return digest.hexdigest(), os.fstat(fd)
        finally:
            os.close(fd)

    def walk_beneath(
        self, folder: str, stopped: Callable[[], bool] = lambda: False
    ) -> Iterator[tuple[str, os.stat_result]]:
        """Everything but folders below disk ``folder``, with its stat (``lstat``): folders
        are entered by descriptor (``O_NOFOLLOW``), never by name, so a folder swapped for
        a symlink is skipped, not followed. ``data/.staging`` is skipped."""
        try:
            base, parts = self.disk_beneath(folder)
            root_fd = open_dir_beneath(base, parts)
        except (Denied, NotFound, OSError):
            return
        stack = [(folder, root_fd)]
        try:
            while stack:
                path, fd = stack.pop()
                try:
                    with os.scandir(fd) as items:
                        for item in items:
                            if stopped():
                                return
                            child = os.path.join(path, item.name)
                            try:
                                st = os.stat(item.name, dir_fd=fd, follow_symlinks=False)
                            except OSError:
                                continue
                            if stat.S_ISDIR(st.st_mode):
                                if child == self.staging_root:
                                    continue
                                try:
                                    stack.append((child, os.open(item.name, _DIR_FLAGS, dir_fd=fd)))
                                except OSError:
                                    continue
                            else:
                                yield child, st
                except OSError:
                    continue
                finally:
                    os.close(fd)
        finally:
            for _path, fd in stack:
                os.close(fd)

    # -- reading -------------------------------------------------------------------

    def stat(self, location: Location) -> EntryStat:
        try:
            if not location.rel:
                with self.folder_of(location) as fd:
                    st = os.fstat(fd)
            else:
                with self.parent_of(location) as (fd, name):
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            raise _jail_error(exc) from None
        except NotFound:
            raise NotFound("no such file") from None
        if stat.S_ISLNK(st.st_mode):
            raise Denied("symlink in path")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise NotFound("no such file")
        return _entry(location.rel[-1] if location.rel else "/", st)

    def list_dir(self, location: Location) -> list[EntryStat]:
        entries = []
        try:
            with self.folder_of(location) as fd, os.scandir(fd) as scanned:
                for item in scanned:
                    try:
                        st = os.stat(item.name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                        entries.append(_entry(item.name, st))
        except NotFound:
            raise NotFound("no such folder") from None
        except OSError as exc:
            raise _jail_error(exc) from None
        return sorted(entries, key=lambda e: e.name)

    def open_read(self, location: Location) -> int:
        """A read-only descriptor of a regular file with one name (resolved beneath)."""
        try:
            with self.parent_of(location) as (folder, name):
                fd = open_regular(name, dir_fd=folder)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NotFound("no such file") from None
            raise _jail_error(exc) from None
        try:
            check_single_link(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- writing -------------------------------------------------------------------

    def _check_free(self, location: Location) -> str:
        """The disk path where a new entry may be created: its folder exists (reached
        beneath), the name is valid and free. The creation resolves again itself."""
        check_new_name(location.rel[-1])
        try:
            with self.parent_of(location) as (fd, name):
                try:
                    os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    pass
                else:
                    raise Conflict("target exists")
        except NotFound:
            raise NotFound("no such folder") from None
        except OSError as exc:
            raise _jail_error(exc) from None
        return self.real_path(location)

    def _new_target(self, location: Location) -> str:
        return self._check_free(location)

    def begin_upload(self, location: Location) -> StagedUpload:
        target = self._new_target(location)
        with self._lock:
            if target in self._reserved:
                raise Conflict("an upload to this name is in progress")
            self._reserved.add(target)
        try:
            return StagedUpload(self, self.staging_path_for(target), target, location)
        except FileExistsError:
            self.release(target)
            raise Conflict("an upload to this name is in progress") from None
        except BaseException:
            self.release(target)
            raise

    def staging_path_for(self, target: str) -> str:
        """The one staging file of an upload to ``target``: its name derives from the
        target, so a second upload to that name is refused (``O_EXCL``) whichever process
        (worker) runs either, and a dead worker's leftover is found from its catalog entry."""
        digest = hashlib.sha256(os.fsencode(target)).hexdigest()[:40]
        return os.path.join(self.staging_root, f"{digest}.part")

    def discard_staged(self, target: str) -> bool:
        """Remove what an upload to ``target`` left in staging (its process died)."""
        try:
            os.unlink(self.staging_path_for(target))
        except FileNotFoundError:
            return False
        return True

    def release(self, target: str) -> None:
        with self._lock:
            self._reserved.discard(target)

    def mkdir(self, location: Location) -> None:
        check_new_name(location.rel[-1])
        try:
            with self.parent_of(location) as (fd, name):
                try:
                    os.mkdir(name, 0o750, dir_fd=fd)
                except FileExistsError:
                    raise Conflict("target exists") from None
                os.fsync(fd)
        except NotFound:
            raise NotFound("no such folder") from None
        except OSError as exc:
            raise _jail_error(exc) from None

    def rename(self, source: Location, target: Location) -> None:
        if not source.rel:
            raise NotFound("no such file")
        dst = self._check_free(target)
        with self._lock:
            if dst in self._reserved or os.path.lexists(self.staging_path_for(dst)):
                raise Conflict("an upload to this name is in progress")
        try:
            with (
                self.parent_of(source) as (src_fd, src_name),
                self.parent_of(target) as (dst_fd, dst_name),
            ):
                try:
                    st = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
                except FileNotFoundError:
                    raise NotFound("no such file") from None
                if not stat.S_ISREG(st.st_mode):
                    raise Denied("only files can be renamed")
                check_single_link(st)
                try:
                    rename_noreplace(src_name, dst_name, src_fd, dst_fd)
                except FileExistsError:
                    raise Conflict("target exists") from None
                os.fsync(dst_fd)
                os.fsync(src_fd)
        except OSError as exc:
            raise _jail_error(exc) from None

    def set_times(
        self, location: Location, atime_ns: int | None, mtime_ns: int
    ) -> tuple[os.stat_result, os.stat_result]:
        """Set a file's or folder's times (``None`` atime: unchanged); (stat before, after)."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            if not location.rel:
                with self.folder_of(location) as folder:
                    fd = os.dup(folder)
            else:
                with self.parent_of(location) as (folder, name):
                    fd = os.open(name, flags, dir_fd=folder)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NotFound("no such file") from None
            raise _jail_error(exc) from None
        try:
            before = os.fstat(fd)
            if not (stat.S_ISREG(before.st_mode) or stat.S_ISDIR(before.st_mode)):
                raise NotFound("not a regular file or folder")
            os.utime(fd, ns=(before.st_atime_ns if atime_ns is None else atime_ns, mtime_ns))
            return before, os.fstat(fd)
        finally:
            os.close(fd)

    def clear_staging(self) -> list[str]:
        """Remove leftovers of uploads cut by a crash (called when the server starts)."""
        removed = []
        for item in os.scandir(self.staging_root):
            if item.is_file(follow_symlinks=False):
                os.unlink(item.path)
                removed.append(item.name)
        return removed
