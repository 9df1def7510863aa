"""The audit log's hash chain and signed checkpoints: how every process appends.

``serve``, every CLI command and the sweeper timer append to the same log from different
processes. This module is the one writer discipline they share.

The format (what a third party re-implements; README "Proof"):
- ``log/audit-YYYY-MM.jsonl``, one file per UTC month, read in name order, form ONE log.
  Each line is one JSON object (ASCII) ending with ``\\n``.
- Every record carries ``seq`` (1 for the first chained record, then +1 per line, across
  files) and ``prev``: the SHA-256 hex of the previous line's exact bytes, its ``\\n``
  included. The first record's ``prev`` is ``GENESIS`` (64 zeros). Lines written before
  the chain existed (no ``seq``) may only precede it; the first chained record then
  chains the last of them.
- A ``checkpoint`` record (members ``ts``, ``event``, ``reason``, ``checkpoint``, ``seq``,
  ``prev``; its ``ts`` is the document's) signs the head of the chain before it: its
  ``checkpoint`` member is a signed document (``intake.adapters.audit.signing``)
  ``{"kind": "audit-checkpoint", "seq": S, "head": H, "ts": T, "public_key": <base64 raw
  Ed25519 key>, ["next_public_key": ...,] ["interval": I,] "signature": {...}}`` where S is
  the checkpoint line's ``seq - 1`` and H its ``prev``. ``next_public_key`` introduces the
  key that signs from the next checkpoint on (rotation). ``interval`` is the writer's
  ``checkpoint_interval`` in whole seconds (0: by count only): a verifier with a copy of
  the log alone knows from it how long a record may wait for its checkpoint.
  The latest checkpoint document is also kept in ``log/audit-head.json`` (a hint for a
  verifier: a log shorter than it was cut).

Rules:
- Appends are serialised across processes by ``flock`` on ``log/.audit.lock`` (released
  by the kernel if a process dies) and across threads by a mutex. The head (seq, hash of
  the last line) is cached and re-read under the lock whenever the file changed under us
  (inode or size differ, a newer month file appeared).
- One record is one ``os.write``. A short write or an error (ENOSPC, EFBIG, EIO, EACCES)
  truncates the file back to its length before the write, under the lock, and raises
  ``AuditUnavailable``: no torn line is ever left for the next record to chain onto. A
  torn last line found at open (a crash mid-write) is cut off, with a WARNING.
- Group commit: ``append`` returns only once its record is durable, i.e. an fsync that
  started after the record was written returned without error; a caller that batches
  (``durable=False``) gets that from ``sync`` instead. The fsync runs outside the lock,
  one per process at a time (``group.Tickets``): a record written under the lock gets a
  ticket; after the lock, its caller waits for the fsync in flight, or runs it itself on a
  ``dup`` of the file, covering every record written so far. Records written while an fsync
  runs share the next one. Checkpoints are fsynced under the lock (covering every record
  before them), and so is a file before it is closed (month change, reload after another
  process appended): their outcome reaches the waiting callers the same way.
- Fail closed: when an fsync fails, every caller whose record it covered (and every one
  written before the error was seen) gets ``AuditUnavailable``, and no later fsync counts
  for them. Such a record stays in the file (later records may already chain onto it):
  the log may then say that an act was attempted that did not happen, never the reverse.
- Lock order: the mutex, then ``flock``, then the tickets' condition (innermost: nothing
  takes the mutex or ``flock`` while holding it). The fsync in flight holds neither the
  mutex nor ``flock`` unless it is a checkpoint's or a closing file's.
- A checkpoint is written after every ``every`` records, when ``interval`` seconds passed
  since the last one, and at every clean stop (``close``) of a process that appended.
  Without an audit key, records are chained but not signed.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intake.adapters.audit import signing
from intake.adapters.audit.group import Tickets
from intake.core.clock import Clock, isoformat, parse_iso
from intake.core.errors import AuditUnavailable, StartupError

log = logging.getLogger("intake.audit")

GENESIS = "0" * 64
FILE_PREFIX = "audit-"
FILE_SUFFIX = ".jsonl"
LOCK_NAME = ".audit.lock"
HEAD_NAME = "audit-head.json"
CHECKPOINT_KIND = "audit-checkpoint"
# a checkpoint document's members (``signing.check_members``), and its record's
CHECKPOINT_MEMBERS = frozenset({"kind", "seq", "head", "ts", "public_key", "signature"})
CHECKPOINT_OPTIONAL = frozenset({"next_public_key", "interval"})
CHECKPOINT_RECORD_MEMBERS = frozenset({"ts", "event", "reason", "checkpoint", "seq", "prev"})
_TAIL_BLOCK = 1 << 16


def log_files(log_dir: Path) -> list[Path]:
    """The audit files in time order (their names sort by month)."""
    try:
        names = os.listdir(log_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        log_dir / n for n in sorted(names) if n.startswith(FILE_PREFIX) and n.endswith(FILE_SUFFIX)
    ]


_FALLOC_FL_KEEP_SIZE = 1  # linux/falloc.h


def _keep_room(fd: int, offset: int, room: int) -> None:
    """Allocate ``room`` bytes to ``fd`` from ``offset`` without changing its size; on a
    filesystem that cannot, check that it has that much free (``OSError`` when not)."""
    libc = _libc()
    if libc is not None:
        if libc.fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, room) == 0:
            return
        error = ctypes.get_errno()
        if error not in (errno.EOPNOTSUPP, errno.ENOSYS):
            raise OSError(error, os.strerror(error))
    st = os.fstatvfs(fd)
    if st.f_bavail * st.f_frsize < room:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@functools.cache
def _libc() -> Any:
    """The C library's ``fallocate`` (Linux), or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fallocate = libc.fallocate
    except (OSError, AttributeError):
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    return libc


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def chain_fields(seq: int, prev: str) -> str:
    """The text spliced before a rendered record's closing brace."""
    return f', "seq": {seq}, "prev": "{prev}"}}\n'


def reverse_lines(path: Path, max_bytes: int = 1 << 62) -> Iterator[tuple[int, bytes]]:
    """The complete lines of ``path`` from the last one back: (offset, line with ``\\n``).

    A torn last line (no ``\\n``) is skipped; at most about ``max_bytes`` are read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        pos = os.fstat(fd).st_size
        buf = b""
        tail_found = False
        read = 0
        while pos > 0 and read < max_bytes:
            step = min(_TAIL_BLOCK, pos)
            pos -= step
            read += step
            buf = os.pread(fd, step, pos) + buf
            if not tail_found:
                cut = buf.rfind(b"\n")
                if cut < 0:
                    continue  # still inside a torn last line
                buf = buf[: cut + 1]
                tail_found = True
            # buf ends with a newline: yield every line whose start is known
            while True:
                nl = buf.rfind(b"\n", 0, len(buf) - 1)
                if nl < 0:
                    break
                yield pos + nl + 1, buf[nl + 1 :]
                buf = buf[: nl + 1]
        if pos == 0 and tail_found and buf:
            yield 0, buf
    finally:
        os.close(fd)


def _seq_of(line: bytes) -> int | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    seq = value.get("seq") if isinstance(value, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


@dataclass(frozen=True)
class CheckpointInfo:
    """The last signed head: the checkpoint document and where it signs."""

    seq: int  # the head it signs
    head: str
    ts: str
    key_id: str
    document: dict[str, Any]


@dataclass(frozen=True)
class ChainState:
    """The chain's head (``seq`` 0 and ``GENESIS`` for an empty log) and last checkpoint."""

    seq: int
    hash: str
    file: str | None
    checkpoint: CheckpointInfo | None


def checkpoint_info(document: Any) -> CheckpointInfo | None:
    """The fields of a checkpoint document, or None if it is not one (unverified)."""
    if not isinstance(document, dict) or document.get("kind") != CHECKPOINT_KIND:
        return None
    signature = document.get("signature")
    seq, head, ts = document.get("seq"), document.get("head"), document.get("ts")
    if not (isinstance(seq, int) and isinstance(head, str) and isinstance(ts, str)):
        return None
    key = signature.get("key_id") if isinstance(signature, dict) else None
    return CheckpointInfo(seq, head, ts, str(key), document)


def _head_of(log_dir: Path) -> tuple[int, str, Path | None]:
    """(seq, hash, file) of the last complete line of the log; read-only."""
    for path in reversed(log_files(log_dir)):
        seq: int | None = None
        last: bytes | None = None
        skipped = 0
        for _, line in reverse_lines(path):
            if last is None:
                last = line
            seq = _seq_of(line)
            if seq is not None:
                break
            skipped += 1
        if last is not None:
            if seq is None:  # no chained record in this file: look further back
                seq = _head_of_before(log_dir, path)
            return seq + skipped, line_hash(last), path
    return 0, GENESIS, None


def _head_of_before(log_dir: Path, path: Path) -> int:
    for earlier in reversed([p for p in log_files(log_dir) if p.name < path.name]):
        for skipped, (_, line) in enumerate(reverse_lines(earlier)):
            seq = _seq_of(line)
            if seq is not None:
                return seq + skipped
    return 0


def last_checkpoint(log_dir: Path, max_bytes: int = 64 << 20) -> CheckpointInfo | None:
    """The last checkpoint in the log (reading back at most ``max_bytes``); unverified."""
    budget = max_bytes
    for path in reversed(log_files(log_dir)):
        for offset, line in reverse_lines(path, budget):
            if b'"checkpoint"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("event") == "checkpoint":
                    info = checkpoint_info(record.get("checkpoint"))
                    if info is not None:
                        return info
            budget -= len(line)
            del offset
        if budget <= 0:
            break
    return None


def chain_state(log_dir: Path) -> ChainState:
    """The current head and last checkpoint of a log folder: read-only, no lock taken
    (for ``intake status``). Nothing here is verified; ``audit verify`` does that."""
    seq, digest, path = _head_of(log_dir)
    return ChainState(seq, digest, path.name if path else None, last_checkpoint(log_dir))


class KeySource:
    """The audit private key file, reloaded when it changes (a rotation by another process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._signer: signing.Signer | None = None

    def current(self) -> signing.Signer | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp != self._stamp:
            self._signer = signing.load_signer(self.path)
            self._stamp = stamp
        return self._signer


@dataclass
class _Head:
    seq: int
    hash: str
    path: Path | None  # the file holding the head line
    ino: int
    size: int
    cp_seq: int  # seq of the last checkpoint line
    cp_time: float  # its time (epoch seconds)


def _month_after(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


class ChainWriter:
    """Appends chained records for one process; thread-safe and fork-aware."""

    def __init__(
        self,
        log_dir: Path,
        clock: Clock,
        keys: KeySource | None = None,
        every: int = 1000,
        interval: float = 300.0,
    ) -> None:
        self._dir = log_dir
        self._clock = clock
        self._keys = keys
        self._every = every
        self._interval = interval
        self._mutex = threading.RLock()
        self._pid = -1
        self._lock_fd = -1
        self._fd = -1
        self._fd_path: Path | None = None
        self._head: _Head | None = None
        self._tickets = Tickets()  # this process's records: which are durable (group commit)
        self._month_key = (0, 0)
        self._month_path = log_dir
        self._later_of: tuple[Path | None, str, str] = (None, "", "")
        self._unsigned = False  # this process appended since its last checkpoint

    # -- plumbing ------------------------------------------------------------------

    def _unavailable(self, what: str, exc: OSError | None = None) -> AuditUnavailable:
        reason = (exc.strerror or str(exc)) if exc else "short write"
        self._head = None  # re-read (and repair) the tail at the next append
        return AuditUnavailable(f"audit log cannot be written ({reason}): {what}")

    def _ensure_process(self) -> None:
        if self._pid == os.getpid():
            return
        # a forked child must not share its parent's lock (flock is per open file)
        self._pid = os.getpid()
        self._lock_fd = -1
        self._fd = -1
        self._fd_path = None
        self._head = None
        self._tickets = Tickets()  # the parent's may be locked by a thread the child lacks
        try:
            self._lock_fd = os.open(
                self._dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640
            )
        except OSError as exc:
            self._pid = -1
            raise self._unavailable(str(self._dir / LOCK_NAME), exc) from None

    def _open_fd(self, path: Path) -> int:
        if self._fd_path != path:
            self._close_fd()
            try:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                self._fd = os.open(path, flags, 0o640)
            except OSError as exc:
                raise self._unavailable(str(path), exc) from None
            self._fd_path = path
        return self._fd

    def _close_fd(self) -> None:
        """Close the file (under the mutex), its records settled first: an fsync, whose
        outcome reaches every caller waiting for one of them (a failure: ``AuditUnavailable``
        to each), so no ticket is left on a closed file."""
        if self._fd >= 0:
            tickets = self._tickets
            if tickets.pending():
                last = tickets.issued
                self._durable(tickets, last, last)
            os.close(self._fd)
        self._fd = -1
        self._fd_path = None

    def _durable(self, tickets: Tickets, ticket: int, since: int) -> str | None:
        """Return once ``ticket`` is settled: wait for the fsync in flight, or run it when
        none is (group commit); the reason if a ticket in ``(since, ticket]`` failed.

        Called without the mutex (an append waiting for its record) or with it (a
        checkpoint, ``_close_fd``): the syncer takes the mutex only to start (its target,
        a ``dup`` of the file, never an fd number another thread may close and reuse),
        then fsyncs and publishes outside it."""
        while not tickets.wait(ticket):
            with self._mutex:
                target = tickets.begin()
                if target is None:
                    continue  # another thread became the syncer, or settled it
                path = self._fd_path
                try:
                    fd = os.dup(self._fd)
                except OSError as exc:
                    tickets.finish(target, exc.strerror or str(exc))
                    continue
            error = None
            try:
                os.fsync(fd)
            except OSError as exc:
                error = exc.strerror or str(exc)
                log.error("audit log: fsync of %s failed: %s", path, error)
            finally:
                os.close(fd)
            tickets.finish(target, error)
        return tickets.failure(since, ticket)

    # -- the head --------------------------------------------------------------------

    def _target(self) -> Path:
        now = self._clock.now()
        if (now.year, now.month) != self._month_key:  # computed once a month, not per record
            self._month_key = (now.year, now.month)
            month = f"{now.year:04d}-{now.month:02d}"
            self._month_path = self._dir / f"{FILE_PREFIX}{month}{FILE_SUFFIX}"
        target = self._month_path
        head = self._head
        if head is not None and head.path is not None and head.path.name > target.name:
            return head.path  # the clock went back: never write into an older month
        return target

    def _valid(self, head: _Head) -> bool:
        """Is the cached head still the log's head (nobody appended since)?"""
        if head.path is None:
            return False
        if head.path != self._later_of[0]:
            month = head.path.name[len(FILE_PREFIX) : len(FILE_PREFIX) + 7]
            later = self._dir / f"{FILE_PREFIX}{_month_after(month)}{FILE_SUFFIX}"
            self._later_of = (head.path, str(head.path), str(later))
        _, path, later_path = self._later_of
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_ino, st.st_size) != (head.ino, head.size):
            return False
        # another process (or our own clock going back) may have started a later month
        return not os.path.exists(later_path)

    def _reload(self) -> _Head:
        """Read the head from disk (under the lock); cut a torn last line."""
        self._close_fd()  # the file may have been replaced: reopen it by name
        files = log_files(self._dir)
        for candidate in reversed(files):
            if os.path.getsize(candidate) > 0:
                self._repair_tail(candidate)
                break
        seq, digest, path = _head_of(self._dir)
        ino = size = 0
        if path is not None:
            st = os.stat(path)
            ino, size = st.st_ino, st.st_size
        # unknown last checkpoint: count the interval from now, not from 1970
        cp_seq, cp_time = 0, self._clock.now().timestamp()
        info = self._read_head_file()
        if info is not None and info.seq < seq:
            cp_seq = info.seq + 1
            with contextlib.suppress(ValueError):
                cp_time = parse_iso(info.ts).timestamp()
        return _Head(seq, digest, path, ino, size, cp_seq, cp_time)

    def _repair_tail(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise self._unavailable(str(path), exc) from None
        try:
            size = os.fstat(fd).st_size
            if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
                return
            pos = size
            keep = 0
            while pos > 0:
                step = min(_TAIL_BLOCK, pos)
                pos -= step
                cut = os.pread(fd, step, pos).rfind(b"\n")
                if cut >= 0:
                    keep = pos + cut + 1
                    break
            os.ftruncate(fd, keep)
            os.fsync(fd)
            log.warning(
                "audit log: cut an incomplete last line of %d bytes from %s "
                "(left by an interrupted write; never a record)",
                size - keep,
                path.name,
            )
        except OSError as exc:
            raise self._unavailable(str(path), exc) from None
        finally:
            os.close(fd)

    def _read_head_file(self) -> CheckpointInfo | None:
        try:
            return checkpoint_info(json.loads((self._dir / HEAD_NAME).read_bytes()))
        except (OSError, ValueError):
            return None

    # -- appending -------------------------------------------------------------------

    def _locked(self) -> _Locked:
        return _Locked(self)

    def _current_head(self) -> tuple[_Head, Path]:
        target = self._target()
        head = self._head
        if head is None or not self._valid(head):
            head = self._head = self._reload()
            target = self._target()
        return head, target

    def _write_locked(self, body: str) -> tuple[int, int]:
        """Append one rendered record (a JSON object) under the lock, not yet fsynced;
        returns its seq and its ticket (``_durable`` waits for it)."""
        head, target = self._current_head()
        seq = head.seq + 1
        data = (body[:-1] + chain_fields(seq, head.hash)).encode("ascii")
        fd = self._open_fd(target)
        try:
            st = os.fstat(fd)
            before, ino = st.st_size, st.st_ino
        except OSError as exc:
            raise self._unavailable(str(target), exc) from None
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")
        except OSError as exc:
            try:
                os.ftruncate(fd, before)
            except OSError as cut:
                log.error("audit log: cannot cut a failed write from %s: %s", target, cut.strerror)
            raise self._unavailable(str(target), exc) from None
        head.seq, head.hash = seq, line_hash(data)
        head.path, head.ino, head.size = target, ino, before + len(data)
        return seq, self._tickets.issue()

    def append(self, body: str, durable: bool = True) -> int:
        """Append a rendered record; a due checkpoint follows it. Returns its seq once the
        record is durable (``durable``; else a later ``sync``): the fsync runs outside the
        lock, one for every record written meanwhile (group commit)."""
        with self._locked():
            seq, ticket = self._write_locked(body)
            tickets = self._tickets
            self._unsigned = True
            self._checkpoint_if_due_locked()
        if durable:
            reason = self._durable(tickets, ticket, ticket - 1)
            if reason is not None:
                raise AuditUnavailable(f"audit log cannot be written ({reason}): fsync")
        return seq

    def mark(self) -> int:
        """The ticket of the last record this process wrote (0: none): where a batch starts."""
        with self._mutex:
            return self._tickets.issued if self._pid == os.getpid() else 0

    def sync(self, since: int = 0) -> None:
        """Make every record this process wrote durable (a batch's); ``AuditUnavailable``
        if one written after ticket ``since`` (``mark``) could not be."""
        with self._mutex:
            if self._pid != os.getpid():
                return  # nothing written by this process
            tickets = self._tickets
            last = tickets.issued
        reason = self._durable(tickets, last, since)
        if reason is not None:
            raise AuditUnavailable(f"audit log cannot be written ({reason}): fsync")

    # -- checkpoints -----------------------------------------------------------------

    def _checkpoint_if_due_locked(self) -> None:
        head = self._head
        if head is None or self._keys is None or head.seq <= head.cp_seq:
            return
        count_due = head.seq - head.cp_seq >= self._every
        waited = self._clock.now().timestamp() - head.cp_time
        time_due = self._interval > 0 and waited >= self._interval
        if count_due or time_due:
            try:
                self._checkpoint_locked("count" if count_due else "interval")
            except (StartupError, AuditUnavailable) as exc:
                # the record before it is written: a checkpoint that fails (an unreadable
                # key, a full disk) leaves it unsigned, to be signed by the next one
                log.error("audit log: no checkpoint: %s", exc)

    def _checkpoint_locked(
        self, reason: str, signer: signing.Signer | None = None, next_key: bytes | None = None
    ) -> CheckpointInfo | None:
        if signer is None:
            signer = self._keys.current() if self._keys else None
        if signer is None:
            return None
        head, _ = self._current_head()
        now = self._clock.now()
        body: dict[str, Any] = {
            "kind": CHECKPOINT_KIND,
            "seq": head.seq,
            "head": head.hash,
            "ts": isoformat(now),
            "public_key": base64.b64encode(signer.verifier.raw).decode(),
        }
        if next_key is not None:
            body["next_public_key"] = base64.b64encode(next_key).decode()
        body["interval"] = math.ceil(max(0.0, self._interval))
        document = signing.sign_document(body, signer)
        record: dict[str, Any] = {"ts": isoformat(now), "event": "checkpoint", "reason": reason}
        record["checkpoint"] = document
        _, ticket = self._write_locked(json.dumps(record, ensure_ascii=True))
        failed = self._durable(self._tickets, ticket, ticket - 1)  # under the lock: covers all
        if failed is not None:
            self._head = None  # re-read the tail at the next append
            raise AuditUnavailable(f"audit log cannot be written ({failed}): checkpoint")
        head = self._head or head
        head.cp_seq, head.cp_time = head.seq, now.timestamp()
        self._unsigned = False
        self._write_head_file(document)
        return checkpoint_info(document)

    def _write_head_file(self, document: dict[str, Any]) -> None:
        """Keep the latest signed head next to the log (best effort: a hint, not proof)."""
        path = self._dir / HEAD_NAME
        tmp = self._dir / f".{HEAD_NAME}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
            try:
                os.write(fd, (json.dumps(document, indent=2) + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("audit log: cannot update %s: %s", path.name, exc.strerror)

    def checkpoint(self, reason: str = "request", force: bool = False) -> CheckpointInfo | None:
        """Sign the head now if records follow the last checkpoint (or ``force``: always,
        which also proves the log takes a write); returns the last checkpoint."""
        with self._locked():
            head, _ = self._current_head()
            if force or head.seq > head.cp_seq:
                return self._checkpoint_locked(reason)
        return last_checkpoint(self._dir)

    def checkpoint_if_due(self) -> None:
        """For a timer: sign records that waited ``interval`` seconds."""
        with self._locked():
            self._current_head()

    def reserve(self, room: int) -> None:
        """Make sure the next ``room`` bytes appended to the log can be written, before an
        act that must not happen unrecorded (the sweeper's unlink); else ``AuditUnavailable``.

        The blocks are allocated to the current month file beyond its end
        (``fallocate(FALLOC_FL_KEEP_SIZE)``: the file's size and content are unchanged,
        a reader sees nothing), so the appends that follow do not need new blocks of a
        filesystem that fills meanwhile. Appends from every process use that room, so it
        holds for the caller as long as the others write less than ``room`` in between.
        On a filesystem without ``fallocate`` the free space is checked instead.
        """
        with self._locked():
            _, target = self._current_head()
            fd = self._open_fd(target)
            try:
                _keep_room(fd, os.fstat(fd).st_size, room)
            except OSError as exc:
                raise self._unavailable(str(target), exc) from None
            self._checkpoint_if_due_locked()

    def rotate(
        self, new: signing.Signer, install: Callable[[], None]
    ) -> tuple[CheckpointInfo, CheckpointInfo]:
        """Key rotation, under the lock: a checkpoint signed by the current key names
        ``new`` (``next_public_key``); ``install`` puts the new key file in place; a first
        checkpoint signed by ``new`` follows. Raises ``StartupError`` without a current key."""
        old = self._keys.current() if self._keys else None
        if old is None:
            raise StartupError("no audit key to rotate: run intake init on the instance first")
        with self._locked():
            first = self._checkpoint_locked("rotation", old, new.verifier.raw)
            install()
            second = self._checkpoint_locked("rotation", new)
        if first is None or second is None:
            raise AuditUnavailable("key rotation: a checkpoint could not be written")
        return first, second

    def close(self) -> None:
        """A clean stop: sign what this process appended, release everything."""
        with self._mutex:
            if self._pid == os.getpid():
                if self._unsigned:
                    try:
                        self.checkpoint("stop")
                    except (AuditUnavailable, StartupError) as exc:
                        log.error("audit log: no checkpoint at stop: %s", exc)
                self._close_fd()  # settles this process's records
            elif self._fd >= 0:  # a forked child that never appended: its parent's to settle
                with contextlib.suppress(OSError):
                    os.close(self._fd)
            self._fd = -1
            self._fd_path = None
            if self._lock_fd >= 0 and self._pid == os.getpid():
                os.close(self._lock_fd)
            self._lock_fd = -1
            self._pid = -1
            self._head = None


class _Locked:
    """The mutex, then ``flock``: what every append and checkpoint runs under."""

    def __init__(self, writer: ChainWriter) -> None:
        self._w = writer

    def __enter__(self) -> None:
        self._w._mutex.acquire()
        try:
            self._w._ensure_process()
            fcntl.flock(self._w._lock_fd, fcntl.LOCK_EX)
        except BaseException:
            self._w._mutex.release()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            fcntl.flock(self._w._lock_fd, fcntl.LOCK_UN)
        finally:
            self._w._mutex.release()
