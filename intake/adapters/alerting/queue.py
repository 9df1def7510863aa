"""The alert queue on disk, under ``state/alerts/``: no alert is lost to a mail server
that is down, a crash or a restart.

Layout::

    state/alerts/queue/<ns>-<id>.json   one alert waiting to be delivered
    state/alerts/state.json             throttle, backoff, digest, failing forwards
    state/alerts/state.lock             held while state.json is read-modified-written
    state/alerts/deliver.lock           held by the one process delivering

Rules:
- ``put`` writes the alert to a temporary file, fsyncs it, renames it into ``queue/``
  and fsyncs the folder, before anyone tries to send it: once ``put`` returned, the
  alert survives a crash. A delivered alert is removed (``remove``); an alert sent on
  some channels only records them (``mark_done``), so a retry never repeats them.
- Several processes share the queue (``serve``, every CLI command, the sweep timer):
  files are only ever created and renamed whole; ``state.json`` changes under
  ``state.lock`` (short); delivery is done by whoever takes ``deliver.lock`` (flock,
  released by the kernel if the process dies), the others leave it to that one.
- An unreadable queue file is moved aside as ``*.bad`` (and reported), never retried
  forever nor silently dropped.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake.core.alerts import Alert
from intake.core.clock import parse_iso

ALERTS_DIR = "alerts"


@dataclass
class Queued:
    """An alert in the queue, with the channels that already took it."""

    path: Path
    alert: Alert
    done: frozenset[str] = frozenset()


@dataclass(frozen=True)
class QueueStatus:
    """What ``intake status`` shows: alerts waiting, and since when."""

    count: int
    oldest: _dt.datetime | None
    bad: int = 0
    failures: int = 0  # delivery attempts failed in a row (0: the last one worked)
    last_error: str = ""  # why the last attempt failed (a held, throttled alert is no error)


@dataclass
class State:
    """``state.json``: what the queue remembers between runs."""

    last_sent: dict[str, str] = field(default_factory=dict)  # key -> ISO time
    failures: int = 0
    next_try: str = ""  # ISO time before which delivery is not retried
    last_error: str = ""
    digest_day: str = ""  # the last day a digest was queued for
    forwards: dict[str, str] = field(default_factory=dict)  # entry id -> first failure
    forwards_alerted: dict[str, str] = field(default_factory=dict)  # entry id -> alerted at

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> State:
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    """Write to a temporary name, fsync, rename over ``path``, fsync the folder."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    _fsync_dir(path.parent)


class AlertQueue:
    """The queue of one instance (``state/alerts``)."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / ALERTS_DIR
        self.queue_dir = self.root / "queue"
        self.state_file = self.root / "state.json"

    def _ensure(self) -> None:
        self.queue_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- the queue -------------------------------------------------------------------

    def put(self, alert: Alert, done: frozenset[str] = frozenset()) -> Path:
        """Store ``alert`` durably (see the rules); returns its file."""
        self._ensure()
        path = self.queue_dir / f"{time.time_ns():020d}-{alert.id}.json"
        doc = {"alert": alert.to_json(), "done": sorted(done)}
        _write_durably(path, json.dumps(doc, ensure_ascii=True).encode("ascii"))
        return path

    def items(self) -> list[Queued]:
        """Every queued alert, oldest first; unreadable files are set aside."""
        if not self.queue_dir.is_dir():
            return []
        found = []
        for path in sorted(self.queue_dir.glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="ascii"))
                found.append(
                    Queued(path, Alert.from_json(doc["alert"]), frozenset(doc.get("done", ())))
                )
            except FileNotFoundError:
                continue  # delivered meanwhile by another process
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
        return found

    def mark_done(self, queued: Queued, channel: str) -> None:
        queued.done = queued.done | {channel}
        doc = {"alert": queued.alert.to_json(), "done": sorted(queued.done)}
        _write_durably(queued.path, json.dumps(doc, ensure_ascii=True).encode("ascii"))

    def remove(self, queued: Queued) -> None:
        with contextlib.suppress(FileNotFoundError):
            queued.path.unlink()

    def status(self) -> QueueStatus:
        items = self.items()
        bad = len(list(self.queue_dir.glob("*.bad"))) if self.queue_dir.is_dir() else 0
        oldest = min((q.alert.at for q in items), default=None)
        state = self.read_state()
        return QueueStatus(len(items), oldest, bad, state.failures, state.last_error)

    # -- locks and state -------------------------------------------------------------

    @contextlib.contextmanager
    def _flock(self, name: str, blocking: bool) -> Iterator[bool]:
        self._ensure()
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def delivering(self) -> contextlib.AbstractContextManager[bool]:
        """``with queue.delivering() as mine:`` - ``mine`` is False if another process is."""
        return self._flock("deliver.lock", blocking=False)

    def read_state(self) -> State:
        try:
            return State.from_json(json.loads(self.state_file.read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError, TypeError):
            return State()

    @contextlib.contextmanager
    def changing_state(self) -> Iterator[State]:
        """Read, let the caller change, then write ``state.json``, under ``state.lock``."""
        with self._flock("state.lock", blocking=True):
            state = self.read_state()
            yield state
            doc = json.dumps(state.__dict__, ensure_ascii=True, indent=1, sort_keys=True)
            _write_durably(self.state_file, doc.encode("ascii"))


def queue_status(state_dir: Path) -> QueueStatus:
    """The alerts waiting in an instance's queue (for ``intake status``)."""
    return AlertQueue(state_dir).status()


def parse_time(text: str) -> _dt.datetime | None:
    try:
        return parse_iso(text) if text else None
    except ValueError:
        return None
