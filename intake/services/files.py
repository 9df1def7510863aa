"""The one authorization + storage layer both front-ends use: a logged-in session's files.

A front-end turns each protocol request into one call here and each exception into a
protocol reply; it holds no rule of its own. Every call: normalise the client path,
locate it in the account's view, ask ``intake.core.authz``, act through storage, audit.

Rules:
- A refusal is audited as ``denied`` (operation, path, reason) and raised as ``Denied``;
  the client sees only "permission denied".
- ``upload.complete`` (size, sha256) is written when the client closes the file and the
  file is in place; if it cannot be written (``AuditUnavailable``) the file is taken back
  out and the client gets an error: never received without its record (fail closed).
  An upload still open when the session ends is ``upload.interrupted`` and its partial
  data is discarded.
- ``download`` is written when the client closes the file, with the bytes it read, and
  only if it read something: opening and closing a file is no download.
- A member's ``/.receipts/`` is served by ``intake.services.documents.receipts`` (list, stat, read);
  authz refuses every other operation there, so it is audited like any refusal. A
  receipt's download is audited like a file's.
- Limits (``[limits]``), each refusal a ``LimitExceeded`` whose text names the limit (for
  the audit) and whose ``say`` is what the client reads (``intake.core.messages``):
  a session holds at most ``max_open_handles`` files and folders open, an account at most
  ``max_account_open_files`` files over all its sessions (``Budget``); past either, opens
  are refused and ONE ``denied`` is audited per burst (until a handle is closed again).
  A read returns at most ``MAX_READ`` bytes. An upload may not exceed ``max_file_size``,
  the account's ``account_quota`` (counted as bytes arrive), nor leave a hole wider than
  ``intake.core.extent.HOLE_WINDOW``: the write is refused, ``denied`` audited, the
  upload discarded (``upload.interrupted``) and every later write or close fails.
- Setting times (a client's "preserve timestamp") is ``attributes.changed`` (path, the new
  mtime, what was ignored); on an open upload the times wait for its close and are
  audited right after ``upload.complete``. Listeners hear ``times_set`` with the file's
  stat before and after, so the cataloguer knows the content was not touched.
- Every upload's life is announced to the ``FileEvents`` listeners (the cataloguer's
  seam): ``started`` at open, then ``received`` or ``interrupted``; and ``renamed``.
  A listener that fails is logged, never fails the client's operation.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from intake.adapters.audit.writer import AuditLog, display
from intake.adapters.diskspace import DiskSpace
from intake.adapters.storage import EntryStat, StagedUpload, Storage
from intake.core import authz
from intake.core.authz import Area, Location, Op
from intake.core.config import LimitsSection
from intake.core.errors import (
    AuditUnavailable,
    Conflict,
    Denied,
    IntakeError,
    InvalidName,
    LimitExceeded,
    NotFound,
)
from intake.core.extent import Extent
from intake.core.messages import Say
from intake.core.model import Account
from intake.core.paths import normalize, to_text
from intake.services.access.budget import AccountBudget, Budget
from intake.services.documents.receipts import Receipts

log = logging.getLogger("intake.files")
MAX_READ = 256 * 1024 - 1024  # OpenSSH's sftp-server: SFTP_MAX_MSG_LENGTH - 1024


@dataclass(frozen=True)
class Arrival:
    """A file that was just received: what the cataloguer needs, no rereading."""

    account: str
    area: Area
    path: str  # in the uploader's view, starting with "/"
    disk_path: str
    size: int
    sha256: str
    protocol: str


class FileEvents(Protocol):
    """What a listener (the cataloguer) hears from every ``FileSession``: it implements each."""

    def started(self, account: str, area: Area, path: str, protocol: str) -> None:
        """An upload to ``path`` was opened (it is not received yet)."""

    def received(self, arrival: Arrival) -> None:
        """An upload is in place, whole (size and sha256 computed while it arrived)."""

    def interrupted(self, account: str, area: Area, path: str, size: int, reason: str) -> None:
        """An upload was cut: its partial data is already discarded."""

    def renamed(
        self,
        account: str,
        area: Area,
        old_path: str,
        new_path: str,
        old_disk_path: str,
        new_disk_path: str,
    ) -> None:
        """A received file was renamed by its owner (same area)."""

    def times_set(self, disk_path: str, before: os.stat_result, after: os.stat_result) -> None:
        """The server changed only the times of the file at ``disk_path`` (stat around it)."""


_WRITE_FAILURES = {errno.EDQUOT: Say.QUOTA, errno.EFBIG: Say.TOO_BIG, errno.ENOSPC: Say.DISK_FULL}


def _write_failure(exc: OSError) -> IntakeError:
    """The error a client gets for a failed write: quota, too big, disk full, or failure."""
    error = IntakeError("upload failed")
    error.say = _WRITE_FAILURES.get(exc.errno or 0, Say.FAILED)
    return error


def _iso(ns: int) -> str:
    return (
        datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


class Download:
    """An open file being read by a client: a descriptor of a file on disk, or the bytes of
    a virtual file (a receipt) with its ``EntryStat``."""

    def __init__(
        self,
        session: FileSession,
        path: str,
        fd: int,
        virtual: tuple[bytes, EntryStat] | None = None,
    ) -> None:
        self._session = session
        self.path = path
        self._fd = fd
        self._virtual = virtual
        self.size = len(virtual[0]) if virtual else os.fstat(fd).st_size
        self.bytes_read = 0
        self._closed = False
        self.reads = 0

    def read(self, offset: int, length: int) -> bytes:
        """At most ``MAX_READ`` bytes from ``offset`` (fewer at the end; b"" past it)."""
        if offset < 0 or length < 0:
            raise IntakeError("negative offset or length")
        length = min(length, MAX_READ)
        if self._virtual is not None:
            data = self._virtual[0][offset : offset + length]
        else:
            data = os.pread(self._fd, length, offset)
        self.bytes_read += len(data)
        self.reads += 1
        return data

    def stat(self) -> EntryStat:
        if self._virtual is not None:
            return self._virtual[1]
        st = os.fstat(self._fd)
        return EntryStat(self.path.rsplit("/", 1)[-1], False, st.st_size, st.st_mtime, st.st_mode)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._session._release(self)
        if self.bytes_read or (self.reads and not self.size):
            self._session._audit("download", path=self.path, size=self.size, bytes=self.bytes_read)


NO_SPACE_REASON = "the server is short of disk space, try again later"
NO_SPACE_TEXT = f"upload refused: {NO_SPACE_REASON}"


def reserve_reason(space: DiskSpace) -> str:
    """The audit's reason for an upload refused at the disk reserve."""
    return f"disk reserve: {space.free} bytes free, below min_free_space ({space.reserve} bytes)"


def space_fields(space: DiskSpace | None) -> dict[str, int]:
    """``free`` and ``reserve`` for the audit record (the alert's trigger), if any."""
    return {} if space is None else {"free": space.free, "reserve": space.reserve}


class Upload:
    """An open upload: bytes go to staging until ``close`` puts the file in place."""

    def __init__(self, session: FileSession, location: Location, path: str, staged: StagedUpload):
        self._session = session
        self.location = location
        self.path = path
        self._staged = staged
        self.failed: str | None = None
        self._extent = Extent()
        self._counted = 0  # bytes counted against the account's quota
        self._limited = False  # a limit (not the disk) ended it
        self._space: DiskSpace | None = None  # the disk reserve ended it
        self.failure_say = Say.FAILED  # what the client is told about ``failed``
        self._times_ignored: str | None = None  # set once times are asked for

    def set_times(self, atime_ns: int | None, mtime_ns: int, ignored: str = "") -> None:
        """Times for the file, applied when the client closes it (FSETSTAT before CLOSE)."""
        if self.failed or self._staged.done:
            raise IntakeError("upload failed")
        self._staged.set_times(atime_ns, mtime_ns)
        self._times_ignored = ignored

    @property
    def size(self) -> int:
        return self._staged.size

    @property
    def refused_by_limit(self) -> str | None:
        """Why a limit (its size, a hole, the quota, the disk reserve) ended this upload,
        as the client may be told, or None."""
        if self._space is not None:
            return NO_SPACE_REASON
        return self.failed if self._limited else None

    def _limit(self, offset: int, length: int) -> str | None:
        """Why this write is refused by a limit (the reason for the audit), or None."""
        limits = self._session.budget.limits
        if offset + length > limits.max_file_size:
            self.failure_say = Say.TOO_BIG
            return f"file larger than max_file_size ({limits.max_file_size} bytes)"
        try:
            self._extent.check(offset, length)
        except ValueError as exc:
            self.failure_say = Say.SPARSE
            return f"sparse write refused: {exc}"
        grown = offset + length - self._extent.end
        space = self._session.budget.below_reserve(grown)
        if space is not None:
            self._space = space
            self.failure_say = Say.DISK_FULL
            return reserve_reason(space)
        refusal = self._session.budget.arrive(self._session.account.name, grown)
        if refusal is None and grown > 0:
            self._counted += grown
        elif refusal is not None:
            self.failure_say = Say.QUOTA
        return refusal

    def write(self, offset: int, data: bytes) -> None:
        """Store bytes; a limit or a storage failure (disk full) ends the upload for good."""
        if self.failed:
            if self._limited:
                raise self._refusal()
            raise IntakeError("upload failed")
        refusal = self._limit(offset, len(data))
        if refusal is not None:
            self.failed, self._limited = refusal, True
            self._session._deny(
                Op.UPLOAD, self.path, refusal, Say.DENIED, **space_fields(self._space)
            )
            self.abort(refusal)
            raise self._refusal()
        try:
            self._staged.write(offset, data)
        except OSError as exc:
            self.failed = f"write failed: {exc.strerror or exc}"
            self.abort(self.failed)
            error = _write_failure(exc)
            self.failure_say = error.say
            raise error from None
        self._extent.add(offset, len(data))

    def _refusal(self) -> LimitExceeded:
        """What the client is told: the limit, or that the server is short of space."""
        text = NO_SPACE_TEXT if self._space is not None else f"upload refused: {self.failed}"
        return LimitExceeded(text, Op.UPLOAD.value, self.path, self.failure_say)

    def close(self) -> None:
        """The client closed the file: it is received, or ``Denied`` if its name was taken,
        or ``IntakeError`` if it could not be stored (a failed fsync, rename, hash...).

        Every failure here ends in one ``upload.interrupted`` record (with the reason) and
        the entry interrupted: the client is told the file was not stored, and it was not.
        An upload whose write failed is never committed, even if the client closes it.
        """
        if self.failed:
            if self._limited:
                raise self._refusal()
            raise IntakeError("upload failed")
        if self._staged.done:
            return
        self._session._release(self)
        account = self._session.account.name
        try:
            size, digest = self._staged.commit()
        except Conflict:
            self._session.budget.settle(account, self._counted, kept=False)
            self._interrupted("name taken by another upload before the close")
            raise Denied("overwrite refused", "upload", self.path, Say.EXISTS) from None
        except Exception as exc:
            self._session.budget.settle(account, self._counted, kept=False)
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.error("storing %s failed: %s", display(self.path), detail or type(exc).__name__)
            self.failed = f"the file could not be stored: {detail or type(exc).__name__}"
            self._interrupted(self.failed)
            error = IntakeError("the file could not be stored")
            if isinstance(exc, OSError):
                error.say = _write_failure(exc).say
            raise error from None
        try:
            self._session._audit("upload.complete", path=self.path, size=size, sha256=digest)
        except AuditUnavailable as exc:
            # Fail closed: a file whose arrival cannot be recorded is not received. It goes
            # back out (nobody saw it acknowledged); the client is told and may resend.
            self._staged.uncommit()
            self._session.budget.settle(account, self._counted, kept=False)
            log.error("upload of %s refused: %s", display(self.path), exc)
            self.failed = "the audit log cannot be written"
            self._interrupted(self.failed)
            raise
        try:
            if self._staged.times is not None and self._times_ignored is not None:
                self._session._audit_times(self.path, self._staged.times[1], self._times_ignored)
            arrival = Arrival(
                self._session.account.name,
                self.location.area,
                self.path,
                self._staged.target,
                size,
                digest,
                self._session.protocol,
            )
            self._session._announce("received", arrival)
        finally:  # catalogued by now: the quota reads it there (see ``Budget``)
            self._session.budget.settle(account, self._counted, kept=True)

    def abort(self, reason: str) -> None:
        """The upload will never be closed by the client: discard it, audit why."""
        if self._staged.done:
            return
        self._session._release(self)
        self._session.budget.settle(self._session.account.name, self._counted, kept=False)
        self._staged.discard()
        self._interrupted(reason)

    def _interrupted(self, reason: str) -> None:
        """The one record of an upload that did not become a file (its data is gone)."""
        size = self._staged.size
        try:
            self._session._audit("upload.interrupted", path=self.path, size=size, reason=reason)
        except AuditUnavailable as exc:  # nothing was received: nothing to refuse
            log.error("upload.interrupted of %s not recorded: %s", display(self.path), exc)
        self._session._announce(
            "interrupted", self._session.account.name, self.location.area, self.path, size, reason
        )


class FileSession:
    """What one logged-in account may do with files, over any protocol."""

    def __init__(
        self,
        account: Account,
        ip: str,
        protocol: str,
        storage: Storage,
        audit: AuditLog,
        listeners: list[FileEvents],
        receipts: Receipts | None = None,
        budget: AccountBudget | None = None,
    ) -> None:
        self.account = account
        self.ip = ip
        self.protocol = protocol
        self.budget: AccountBudget = budget or Budget(LimitsSection())  # the default limits
        self._storage = storage
        self._audit_log = audit
        self._listeners = listeners
        self._receipts = receipts
        self._uploads: set[Upload] = set()
        self._downloads: set[Download] = set()
        self._folders = 0  # folder handles a front-end holds open (SFTP OPENDIR)
        self._over_limit = False  # a burst of refused opens is audited once
        if account.role.value == "member":
            storage.ensure_area(Area.MEMBER, account.name)
        elif account.role.value == "technician":
            storage.ensure_area(Area.OUTBOX, account.name)

    # -- plumbing ------------------------------------------------------------------

    def _audit(self, event: str, **fields: object) -> None:
        self._audit_log.record(
            event, account=self.account.name, ip=self.ip, protocol=self.protocol, **fields
        )

    def _audit_times(self, path: str, mtime_ns: int, ignored: str) -> None:
        fields: dict[str, object] = {"mtime": _iso(mtime_ns)}
        if ignored:
            fields["ignored"] = ignored
        self._audit("attributes.changed", path=path, operation=Op.SETTIMES.value, **fields)

    def _announce(self, what: str, *args: object) -> None:
        for listener in self._listeners:
            try:
                getattr(listener, what)(*args)
            except Exception:
                log.exception("file-event listener %r failed on %s", listener, what)

    def _deny(
        self, op: Op | str, path: str, reason: str, say: Say = Say.DENIED, **extra: object
    ) -> Denied:
        operation = op.value if isinstance(op, Op) else op
        self._audit("denied", operation=operation, path=path, reason=reason, **extra)
        return Denied(reason, operation, path, say)

    def _over(self, op: Op, text: str, reason: str) -> LimitExceeded:
        """A refused open: audited once per burst (until a handle is closed again)."""
        if not self._over_limit:
            self._over_limit = True
            self._audit("denied", operation=op.value, path=text, reason=reason)
        return LimitExceeded(reason, op.value, text, Say.TOO_MANY_FILES)

    def _check_handles(self, op: Op, text: str) -> None:
        limit = self.budget.limits.max_open_handles
        if len(self._uploads) + len(self._downloads) + self._folders >= limit:
            raise self._over(op, text, f"too many open files (max_open_handles {limit})")

    def _take_file(self, op: Op, text: str) -> None:
        """One more open file of this session: ``LimitExceeded`` past either limit."""
        self._check_handles(op, text)
        if not self.budget.open_file(self.account.name):
            limit = self.budget.limits.max_account_open_files
            raise self._over(
                op, text, f"too many open files for this account (max_account_open_files {limit})"
            )

    def _release(self, handle: Upload | Download) -> None:
        if isinstance(handle, Upload):
            held = handle in self._uploads
            self._uploads.discard(handle)
        else:
            held = handle in self._downloads
            self._downloads.discard(handle)
        if held:
            self.budget.close_file(self.account.name)
            self._over_limit = False

    def _locate(self, client_path: str, op: Op) -> tuple[Location, str]:
        """Normalise, locate and authorise; audits and raises ``Denied`` on refusal."""
        try:
            vpath = normalize(client_path)
        except InvalidName as exc:
            raise self._deny(op, client_path, str(exc), Say.NAME) from None
        text = to_text(vpath)
        try:
            location = authz.locate(self.account, vpath)
            authz.check(self.account, op, location)
        except Denied as exc:
            raise self._deny(op, text, exc.reason, exc.say) from None
        return location, text

    def _guarded(self, op: Op, text: str, action: Callable[[], object]) -> object:
        """Run a storage action; its ``Denied``/``InvalidName`` are audited as ``denied``."""
        try:
            return action()
        except Denied as exc:
            raise self._deny(op, text, exc.reason, exc.say) from None
        except InvalidName as exc:
            raise self._deny(op, text, str(exc), Say.NAME) from None

    def _receipts_of(self, op: Op, text: str) -> Receipts:
        if self._receipts is None:
            raise self._deny(op, text, "no receipts on this server")
        return self._receipts

    def _virtual_dir(self, name: str) -> EntryStat:
        return EntryStat(name, True, 0, 0.0, stat.S_IFDIR | 0o555)

    def _root_entry(self, name: str) -> EntryStat:
        """An area as listed in a technician's or auditor's ``/``, with its real times."""
        try:
            found = self._storage.stat(authz.locate(self.account, (name,)))
        except (NotFound, Denied):
            return self._virtual_dir(name)
        return dataclasses.replace(found, name=name)

    # -- reading -------------------------------------------------------------------

    def list_dir(self, client_path: str) -> list[EntryStat]:
        location, text = self._locate(client_path, Op.LIST)
        if location.area is Area.ROOT:
            names = authz.root_entries(self.account, self._storage.member_areas())
            entries = [self._root_entry(n) for n in names]
        elif location.area is Area.RECEIPTS:
            receipts = self._receipts_of(Op.LIST, text)
            entries = self._guarded(  # type: ignore[assignment]
                Op.LIST, text, lambda: receipts.list_dir(location.owner, location.rel)
            )
        else:
            entries = self._guarded(Op.LIST, text, lambda: self._storage.list_dir(location))  # type: ignore[assignment]
            if location.area is Area.AUDIT:
                entries = [e for e in entries if not authz.is_private_to_log(e.name)]
        self._audit("list", path=text)
        return entries

    def open_folder(self, client_path: str) -> list[EntryStat]:
        """``list_dir`` for a front-end that keeps a folder handle open (SFTP OPENDIR):
        counted in ``max_open_handles`` until ``close_folder``."""
        _location, text = self._locate(client_path, Op.LIST)
        self._check_handles(Op.LIST, text)
        entries = self.list_dir(client_path)
        self._folders += 1
        return entries

    def close_folder(self) -> None:
        if self._folders:
            self._folders -= 1
            self._over_limit = False

    def stat(self, client_path: str) -> EntryStat:
        location, text = self._locate(client_path, Op.STAT)
        if location.area is Area.ROOT:
            return self._virtual_dir("/")
        if location.area is Area.RECEIPTS:
            receipts = self._receipts_of(Op.STAT, text)
            return self._guarded(  # type: ignore[return-value]
                Op.STAT, text, lambda: receipts.stat(location.owner, location.rel)
            )
        return self._guarded(Op.STAT, text, lambda: self._storage.stat(location))  # type: ignore[return-value]

    def open_download(self, client_path: str) -> Download:
        location, text = self._locate(client_path, Op.READ)
        if location.area is Area.ROOT:
            raise self._deny(Op.READ, text, "not a file")
        self._take_file(Op.READ, text)
        try:
            if location.area is Area.RECEIPTS:
                receipts = self._receipts_of(Op.READ, text)
                found: EntryStat = self._guarded(  # type: ignore[assignment]
                    Op.READ, text, lambda: receipts.stat(location.owner, location.rel)
                )
                if found.is_dir:
                    raise NotFound("not a file")
                data = receipts.read(location.owner, location.rel)
                virtual = (data, dataclasses.replace(found, size=len(data)))
                download = Download(self, text, -1, virtual)
            else:
                fd: int = self._guarded(Op.READ, text, lambda: self._storage.open_read(location))  # type: ignore[assignment]
                download = Download(self, text, fd)
        except BaseException:
            self.budget.close_file(self.account.name)
            raise
        self._downloads.add(download)
        return download

    # -- writing -------------------------------------------------------------------

    def open_upload(self, client_path: str) -> Upload:
        location, text = self._locate(client_path, Op.UPLOAD)
        self._take_file(Op.UPLOAD, text)
        try:
            space = self.budget.below_reserve(0, now=True)
            if space is not None:
                self._deny(
                    Op.UPLOAD, text, reserve_reason(space), Say.DISK_FULL, **space_fields(space)
                )
                raise LimitExceeded(NO_SPACE_TEXT, Op.UPLOAD.value, text, Say.DISK_FULL)
            self.budget.measure(self.account.name, location.owner, location.area.value)
            try:
                staged = self._guarded(
                    Op.UPLOAD, text, lambda: self._storage.begin_upload(location)
                )
            except Conflict as exc:
                raise self._deny(Op.UPLOAD, text, f"overwrite refused: {exc}", Say.EXISTS) from None
        except BaseException:
            self.budget.close_file(self.account.name)
            raise
        upload = Upload(self, location, text, staged)  # type: ignore[arg-type]
        self._uploads.add(upload)
        self._announce("started", self.account.name, location.area, text, self.protocol)
        return upload

    def mkdir(self, client_path: str) -> None:
        location, text = self._locate(client_path, Op.MKDIR)
        try:
            self._guarded(Op.MKDIR, text, lambda: self._storage.mkdir(location))
        except Conflict:
            raise self._deny(Op.MKDIR, text, "folder or file exists", Say.EXISTS) from None
        self._audit("mkdir", path=text)

    def rename(self, client_source: str, client_target: str) -> None:
        source, source_text = self._locate(client_source, Op.RENAME)
        target, target_text = self._locate(client_target, Op.RENAME)
        label = f"{source_text} -> {target_text}"
        try:
            authz.check_rename(self.account, source, target)
        except Denied as exc:
            raise self._deny(Op.RENAME, label, exc.reason, exc.say) from None
        try:
            self._guarded(Op.RENAME, label, lambda: self._storage.rename(source, target))
        except Conflict:
            raise self._deny(
                Op.RENAME, label, "overwrite refused: target exists", Say.EXISTS
            ) from None
        self._audit("renamed", path=target_text, source=source_text)
        self._announce(
            "renamed",
            self.account.name,
            source.area,
            source_text,
            target_text,
            self._storage.real_path(source),
            self._storage.real_path(target),
        )

    def set_times(
        self, client_path: str, atime_ns: int | None, mtime_ns: int, ignored: str = ""
    ) -> None:
        """Set a file's times (``None`` atime: unchanged): a client's "preserve timestamp".

        ``ignored`` names what the request also asked and is not applied ("permissions").
        """
        location, text = self._locate(client_path, Op.SETTIMES)
        found = self._guarded(
            Op.SETTIMES, text, lambda: self._storage.set_times(location, atime_ns, mtime_ns)
        )
        before: os.stat_result = found[0]  # type: ignore[index]
        after: os.stat_result = found[1]  # type: ignore[index]
        self._audit_times(text, mtime_ns, ignored)
        self._announce("times_set", self._storage.real_path(location), before, after)

    def refuse(self, op: Op, client_path: str, **extra: str) -> Denied:
        """Delete, rmdir, attribute changes, links: always refused, always audited
        (``extra``: more fields for the record, such as the ``attributes`` asked for)."""
        try:
            text = to_text(normalize(client_path))
        except InvalidName:
            text = client_path
        return self._deny(
            op,
            text,
            authz.NEVER_REASONS.get(op, f"{op.value} refused"),
            authz.NEVER_SAY.get(op, Say.DENIED),
            **extra,
        )

    def refused(
        self, operation: str, reason: str, client_path: str = "", say: Say = Say.DENIED
    ) -> Denied:
        """A protocol feature a front-end turns away (a resumed upload, an FTP bounce, a
        data connection that did not resume its TLS session): audited as ``denied``."""
        return self._deny(operation, client_path, reason, say)

    # -- end -----------------------------------------------------------------------

    def end(self, reason: str = "connection closed before the file was closed") -> None:
        """The session is over: every upload still open is interrupted."""
        for upload in list(self._uploads):
            upload.abort(reason)
        for download in list(self._downloads):
            download.close()
