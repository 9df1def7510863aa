"""The audit log: JSON lines under ``log/``, rendered by structlog (``logs.structlog_seam``).

Rules:
- One file per UTC month, ``log/audit-YYYY-MM.jsonl``, opened ``O_APPEND``; each record is
  one ``os.write`` of one line, and ``record`` returns once an ``fsync`` that started after
  that write succeeded: a record the server reported is on disk. Records that threads
  write while an fsync runs share the next one (group commit, ``chain``), so a burst of
  logins costs a few fsyncs, not one each. A bulk job's records wait for one ``fsync`` at
  its end (``batch``).
- Records are hash-chained (``seq``, ``prev``) and signed by checkpoints across processes:
  ``chain`` is the writer, ``verify`` the checker.
- A record that cannot be written raises ``AuditUnavailable``: fail closed.
- Every record has ``ts`` (ISO-8601 UTC from the injected clock) and ``event``; the other
  fields are those of INTERFACE.md (``account``, ``ip``, ``protocol``, ``path``, ``size``,
  ``sha256``, ``reason``, ...).
- Client-supplied strings are escaped: the JSON is pure ASCII (``\\uXXXX`` for anything
  else, control characters included) and long values are cut, so no client can forge a
  line or flood the file (a time-stamp token, ``response``, is never cut: it is bounded
  where it is received, ``tsa.MAX_REPLY``). Human output re-escapes on display
  (``display``, the one rule of ``intake.core.visible``).
- Secrets are never written: fields whose name says secret are dropped before rendering.
- No global structlog configuration: each ``AuditLog`` has its own pipeline
  (``structlog_seam.audit_logger``), so tests and several instances in one process never
  share a sink.
- Observers (``observe``: the metrics registry, alerts) hear each record after it is
  written, in the writer's thread; one that raises is ignored, never the record.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from intake.adapters.audit.chain import (
    ChainWriter,
    CheckpointInfo,
    KeySource,
    log_files,
)
from intake.adapters.logs import structlog_seam
from intake.core.clock import Clock, isoformat
from intake.core.visible import visible

log = logging.getLogger("intake.audit")

__all__ = ["EVENTS", "AuditLog", "CheckpointInfo", "display", "log_files", "read_records"]

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
        "unbanned",
        "account.changed",
        "checkpoint",
        "timestamp",
        "attributes.changed",
        "account.attacked",
        "alert",
        # beyond INTERFACE.md's list: every change a client makes is traceable
        "renamed",
        "mkdir",
        # the signed head mailed to [audit] head_recipients (issue 15)
        "head.sent",
    }
)
SECRET_FIELDS = frozenset({"password", "passphrase", "secret", "private_key", "token"})
MAX_FIELD_CHARS = 4096
WHOLE_FIELDS = frozenset({"response"})  # a time-stamp token: bounded by its reader, never cut
Observer = Callable[[str, Mapping[str, Any]], None]


class _ChainSink:
    """structlog's final "logger": hands each rendered line to the chain writer."""

    def __init__(self, writer: ChainWriter) -> None:
        self._writer = writer
        self._batch = threading.local()

    def msg(self, message: str) -> None:
        self._writer.append(message, durable=not getattr(self._batch, "depth", 0))

    info = msg

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Records this thread writes inside are fsynced once, at the end."""
        depth = getattr(self._batch, "depth", 0)
        if not depth:
            self._batch.since = self._writer.mark()
        self._batch.depth = depth + 1
        try:
            yield
        finally:
            self._batch.depth -= 1
            if not self._batch.depth:
                self._writer.sync(self._batch.since)


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return value[:MAX_FIELD_CHARS] + "...[cut]"
    return value


class AuditLog:
    """Append audit records; thread-safe."""

    def __init__(
        self,
        log_dir: Path,
        clock: Clock,
        key_file: Path | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 300.0,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        keys = KeySource(key_file) if key_file is not None else None
        self.chain = ChainWriter(log_dir, clock, keys, checkpoint_every, checkpoint_interval)
        self._sink = _ChainSink(self.chain)
        self._clock = clock
        self._observers: list[Observer] = []
        self._timer: threading.Thread | None = None
        self._timer_stop = threading.Event()

        def stamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
            clean = {
                k: v if k in WHOLE_FIELDS else _clip(v)
                for k, v in event_dict.items()
                if k not in SECRET_FIELDS and v is not None
            }
            return {"ts": isoformat(clock.now()), "event": clean.pop("event"), **clean}

        self._logger = structlog_seam.audit_logger(self._sink, stamp)

    def record(self, event: str, **fields: Any) -> None:
        """Append one record; ``AuditUnavailable`` if it could not be written (fail closed:
        the caller's operation must not succeed)."""
        if event not in EVENTS or event == "checkpoint":
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
        """A bulk job's records (a scan of 100 000 files) are made durable once, at the
        end (``AuditUnavailable`` then if one of them could not be); other threads' records
        still each wait for their own (group-committed) fsync."""
        return self._sink.batch()

    def checkpoint(self, reason: str = "request", force: bool = False) -> CheckpointInfo | None:
        """Sign the records not yet signed (``force``: write one anyway); the last
        checkpoint (None without a key). ``AuditUnavailable`` if it cannot be written."""
        return self.chain.checkpoint(reason, force)

    def checkpoint_if_due(self) -> None:
        self.chain.checkpoint_if_due()

    def reserve(self, room: int) -> None:
        """Room for the next ``room`` bytes of records, or ``AuditUnavailable`` now: called
        before an act that must not happen unrecorded (``ChainWriter.reserve``)."""
        self.chain.reserve(room)

    def start_checkpoint_timer(self, period: float) -> None:
        """Sign records that waited ``checkpoint_interval`` even when no more arrive
        (``serve``); checked every ``period`` seconds, stopped by ``close``."""
        if self._timer is not None or period <= 0:
            return
        stop = self._timer_stop

        def run() -> None:
            while not stop.wait(period):
                try:
                    self.chain.checkpoint_if_due()
                except Exception as exc:  # keep serving; the next append retries
                    log.error("audit log: periodic checkpoint failed: %s", exc)

        self._timer = threading.Thread(target=run, name="audit-checkpoints", daemon=True)
        self._timer.start()

    def close(self) -> None:
        """A clean stop: the records this process wrote get a checkpoint."""
        self._timer_stop.set()
        if self._timer is not None:
            self._timer.join()
            self._timer = None
        self.chain.close()


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
    """A field value made safe for a person (terminal, mail, HTML before its own escaping):
    control, format and bidi characters escaped by the one rule, ``intake.core.visible``."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return visible(text)
