"""The operational log (not the audit log): stdlib ``logging`` rendered by structlog
(through ``structlog_seam``, the one module that imports it).

Every module logs with ``logging.getLogger("intake.<part>")``; ``configure`` (called once
by ``intake serve``) is the one place that decides how those lines, and the libraries'
(paramiko, pyftpdlib, watchdog), look. The audit log has its own pipeline and file
(``intake.adapters.audit.writer``) and is never configured from here.

Rules:
- On stderr: JSON lines when stderr is not a terminal (journald under systemd, a file),
  human-readable lines on a terminal; ``$INTAKE_LOG_FORMAT`` (``json``/``console``) and
  ``$INTAKE_LOG_LEVEL`` (``debug``/``info``/``warning``) override. Each line has
  ``timestamp`` (ISO-8601 UTC), ``level``, ``logger``, ``event``.
- Session binding: a connection's fields (``session``, a short random id, ``ip``,
  ``protocol``, then ``account`` once logged in) are added to every line logged by any
  thread of that session. paramiko runs a session on threads we do not start (its
  transport, the SFTP subsystem), so a session is keyed by thread ident (``Session``:
  entered on the connection thread, ``adopt`` for the others) rather than by
  contextvars, which a new thread does not inherit.
- Exceptions are rendered without local variables (``show_locals=False``: a password
  local once reached a log). A client's protocol error (paramiko's "Exception (server)"
  report with its traceback, one record per line) becomes one INFO line without
  traceback; the traceback lines show only at debug level.
- ``login.failed`` is not mirrored line by line: failed logins are summarised per address
  and interval (``NoiseLog``), and those of connections that never tried to log in
  (method ``none``) are left to the front-ends' own summary. A guessing flood from many
  addresses costs a bounded number of lines.
- Secrets never reach this log: audit records are mirrored (``audit_observer``) from the
  fields the audit log itself keeps, and no code logs a password.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

from intake.adapters.logs import structlog_seam
from intake.adapters.logs.noise import NoiseLog
from intake.core.visible import visible

_lock = threading.Lock()
_by_thread: dict[int, Session] = {}
NOISY = ("paramiko", "pyftpdlib", "watchdog")


class Session:
    """One client connection's log fields, shared by every thread serving it."""

    def __init__(self, **fields: str) -> None:
        self.fields: dict[str, str] = {"session": secrets.token_hex(4), **fields}
        self._threads: set[int] = set()

    def __enter__(self) -> Session:
        self.adopt(threading.get_ident())
        return self

    def __exit__(self, *_exc: object) -> None:
        with _lock:
            for ident in self._threads:
                if _by_thread.get(ident) is self:
                    del _by_thread[ident]
            self._threads.clear()

    def adopt(self, ident: int | None) -> None:
        """Lines logged by thread ``ident`` (paramiko's) now carry this session's fields."""
        if ident is None:
            return
        with _lock:
            _by_thread[ident] = self
            self._threads.add(ident)

    def bind(self, **fields: str) -> None:
        """Add fields (``account`` after the login) to this session's lines from now on."""
        with _lock:
            self.fields = {**self.fields, **fields}


def current() -> Session | None:
    """The session of the calling thread, if it serves one."""
    with _lock:
        return _by_thread.get(threading.get_ident())


def _add_session(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    record = event_dict.get("_record")
    ident = record.thread if isinstance(record, logging.LogRecord) else threading.get_ident()
    with _lock:
        session = _by_thread.get(ident) if ident is not None else None
        fields = session.fields if session is not None else {}
    for key, value in fields.items():
        event_dict.setdefault(key, value)
    return event_dict


class _ClientErrors(logging.Filter):
    """paramiko reports a client's protocol error at ERROR, traceback line by line."""

    def __init__(self, show_tracebacks: bool) -> None:
        super().__init__()
        self._show = show_tracebacks

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("paramiko") or record.levelno < logging.ERROR:
            return True
        message = record.getMessage()
        if message.startswith("Exception (server): "):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "ssh: client protocol error: %s"
            record.args = (message.removeprefix("Exception (server): "),)
            return True
        if message.startswith("Socket exception: "):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        return self._show  # the traceback lines that follow such a report


def _escape_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """On a terminal, a client-supplied string in a message cannot drive the terminal."""
    event = event_dict.get("event")
    if isinstance(event, str) and not event.isprintable():
        event_dict["event"] = visible(event)  # the one rule (``intake.core.visible``)
    return event_dict


def _choose_format(stream: TextIO, environ: Mapping[str, str]) -> str:
    wanted = environ.get("INTAKE_LOG_FORMAT", "").strip().lower()
    if wanted in ("json", "console"):
        return wanted
    return "console" if stream.isatty() else "json"


def configure(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Route every logger to ``stream`` (stderr) through structlog; returns the format."""
    stream = sys.stderr if stream is None else stream
    environ = os.environ if environ is None else environ
    level_name = environ.get("INTAKE_LOG_LEVEL", "info").strip().upper()
    level = getattr(logging, level_name, logging.INFO)
    if not isinstance(level, int):
        level = logging.INFO
    fmt = _choose_format(stream, environ)
    formatter = structlog_seam.configure_operational(
        fmt, stream.isatty(), _add_session, _escape_event
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(_ClientErrors(show_tracebacks=level <= logging.DEBUG))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return fmt


# Audit events mirrored into the operational log, with their level: one session's story
# (login, each transfer, refusals) reads in one place. Events another module already
# logs (vanished, altered, forward failures) are not repeated.
_MIRRORED = {
    "login.ok": logging.INFO,
    "login.failed": logging.INFO,
    "upload.complete": logging.INFO,
    "upload.interrupted": logging.WARNING,
    "download": logging.INFO,
    "denied": logging.INFO,
    "banned": logging.WARNING,
    "account.attacked": logging.WARNING,
    "renamed": logging.INFO,
    "mkdir": logging.INFO,
    "attributes.changed": logging.INFO,
}
_audit_log = logging.getLogger("intake.audit")
_failed_logins = NoiseLog(_audit_log)  # failed logins: one line per address and interval


def audit_observer(event: str, fields: Mapping[str, Any]) -> None:
    """Mirror an audit record into the operational log (``AuditLog.observe``)."""
    level = _MIRRORED.get(event)
    if event == "login.failed":
        if fields.get("method") != "none":  # (method none: the front-ends summarise those)
            account, reason = fields.get("account"), fields.get("reason")
            detail = f"{account!r}: {reason}" if account else str(reason)
            _failed_logins.note("login failed from", str(fields.get("ip")), detail)
        return
    if level is None or not _audit_log.isEnabledFor(level):
        return
    keep = {k: v for k, v in fields.items() if k in _FIELDS and v is not None}
    _audit_log.log(level, event, extra={"audit": keep})


_FIELDS = frozenset({"account", "path", "size", "sha256", "reason", "method", "operation"})
