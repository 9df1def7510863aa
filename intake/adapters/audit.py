"""The audit log: JSON lines under ``log/``, written through structlog (its one seam).

Rules:
- One file per UTC month, ``log/audit-YYYY-MM.jsonl``, opened ``O_APPEND``; each record is
  one ``os.write`` of one line, then ``fsync``: a record the server reported is on disk.
  A bulk job may group its own records under one ``fsync`` (``batch``).
- Every record has ``ts`` (ISO-8601 UTC from the injected clock) and ``event``; the other
  fields are those of INTERFACE.md (``account``, ``ip``, ``protocol``, ``path``, ``size``,
  ``sha256``, ``reason``, ...).
- Client-supplied strings are escaped: the JSON is pure ASCII (``\\uXXXX`` for anything
  else, control characters included) and long values are cut, so no client can forge a
  line or flood the file. Human output re-escapes on display (``display``).
- Secrets are never written: fields whose name says secret are dropped before rendering.
- No global structlog configuration: each ``AuditLog`` has its own pipeline, so tests and
  several instances in one process never share a sink.
- Observers (``observe``: the metrics registry, alerts) hear each record after it is
  written, in the writer's thread; one that raises is ignored, never the record.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import structlog

from intake.core.clock import Clock, isoformat

EVENTS = frozenset(
    {
        "login.ok",
        "login.failed",
        "upload.complete",
        "upload.interrupted",
        "download",
        "list",
        "denied",
        "catalogued",
        "vanished",
        "altered",
        "destroyed",
        "forwarded",
        "forward.failed",
        "banned",
        "account.changed",
        "checkpoint",
        "attributes.changed",
        "account.attacked",
        "alert",
        # beyond INTERFACE.md's list: every change a client makes is traceable
        "renamed",
        "mkdir",
    }
)
SECRET_FIELDS = frozenset({"password", "passphrase", "secret", "private_key", "token"})
MAX_FIELD_CHARS = 4096
FILE_PREFIX = "audit-"
FILE_SUFFIX = ".jsonl"
Observer = Callable[[str, Mapping[str, Any]], None]


class _MonthlyAppendSink:
    """structlog's final "logger": appends each rendered line to this month's file."""

    def __init__(self, log_dir: Path, clock: Clock) -> None:
        self._dir = log_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._month = ""
        self._fd = -1
        self._batch = threading.local()

    def _fd_for(self, month: str) -> int:
        if month != self._month:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
            path = self._dir / f"{FILE_PREFIX}{month}{FILE_SUFFIX}"
            self._fd = os.open(
                path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640
            )
            self._month = month
        return self._fd

    def msg(self, message: str) -> None:
        data = (message + "\n").encode("ascii")
        with self._lock:
            fd = self._fd_for(self._clock.now().strftime("%Y-%m"))
            os.write(fd, data)
            if getattr(self._batch, "depth", 0):
                self._batch.dirty = True
            else:
                os.fsync(fd)

    info = msg

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Records this thread writes inside are fsynced once, at the end."""
        self._batch.depth = getattr(self._batch, "depth", 0) + 1
        try:
            yield
        finally:
            self._batch.depth -= 1
            if not self._batch.depth and getattr(self._batch, "dirty", False):
                self._batch.dirty = False
                with self._lock:
                    if self._fd >= 0:
                        os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                self._month = ""


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return value[:MAX_FIELD_CHARS] + "...[cut]"
    return value


class AuditLog:
    """Append audit records; thread-safe."""

    def __init__(self, log_dir: Path, clock: Clock) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self._sink = _MonthlyAppendSink(log_dir, clock)
        self._clock = clock
        self._observers: list[Observer] = []

        def stamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
            clean = {
                k: _clip(v)
                for k, v in event_dict.items()
                if k not in SECRET_FIELDS and v is not None
            }
            return {"ts": isoformat(clock.now()), "event": clean.pop("event"), **clean}

        self._logger = structlog.wrap_logger(
            self._sink,
            processors=[stamp, structlog.processors.JSONRenderer(ensure_ascii=True)],
            wrapper_class=structlog.BoundLogger,
            cache_logger_on_first_use=False,
        )

    def record(self, event: str, **fields: Any) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        self._logger.info(event, **fields)
        for observer in self._observers:
            try:
                observer(event, fields)
            except Exception:  # noqa: S112 - an observer never stops the audit trail
                continue

    def observe(self, observer: Observer) -> None:
        """Call ``observer(event, fields)`` after every record written from now on."""
        self._observers.append(observer)

    def batch(self) -> AbstractContextManager[None]:
        """A bulk job's records (a scan of 100 000 files) are fsynced once, at the end;
        other threads' records are still fsynced one by one."""
        return self._sink.batch()

    def close(self) -> None:
        self._sink.close()


def log_files(log_dir: Path) -> list[Path]:
    """The audit files in time order (their names sort by month)."""
    if not log_dir.is_dir():
        return []
    return sorted(
        p
        for p in log_dir.iterdir()
        if p.name.startswith(FILE_PREFIX) and p.name.endswith(FILE_SUFFIX)
    )


def read_records(log_dir: Path) -> Iterator[dict[str, Any]]:
    """Every record in order; a line that is not JSON is yielded as ``{"unreadable": ...}``."""
    for path in log_files(log_dir):
        with path.open("r", encoding="ascii", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    yield {"event": "unreadable", "file": path.name, "line": number}


def display(value: Any) -> str:
    """A field value made safe for a terminal: control and non-ASCII chars escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("unicode_escape").decode("ascii")
