"""structlog, the one seam: the two pipelines intake renders its logs with.

- ``audit_logger``: the audit log's own pipeline (never the global configuration, so
  tests and several instances in one process never share a sink): the caller's ``stamp``
  processor, then JSON with ``ensure_ascii`` (no client string can forge a line).
- ``configure_operational``: the global configuration behind stdlib ``logging`` for the
  operational log (``oplog``): JSON lines or console lines, exceptions without locals.

Rules:
- No other module imports structlog (``make lint``'s single-seams contract checks it).
- Exceptions are rendered without local variables, in JSON (``show_locals=False``) and on
  a console (a plain traceback, never rich's, whose default shows locals): a password
  local once reached a log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

Processor = Callable[[Any, str, MutableMapping[str, Any]], Mapping[str, Any]]


def audit_logger(sink: Any, stamp: Processor) -> Any:
    """A logger whose ``info(event, **fields)`` hands one JSON line to ``sink.info``."""
    return structlog.wrap_logger(
        sink,
        processors=[stamp, structlog.processors.JSONRenderer(ensure_ascii=True)],
        wrapper_class=structlog.BoundLogger,
        cache_logger_on_first_use=False,
    )


def configure_operational(
    fmt: str, colors: bool, session_fields: Processor, escape_event: Processor
) -> logging.Formatter:
    """Configure structlog for stdlib ``logging``; returns the formatter for the handler.

    ``fmt`` is ``json`` or ``console``; ``session_fields`` adds a session's bound fields to
    every line, ``escape_event`` makes a console line safe for a terminal.
    """
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        session_fields,
        structlog.stdlib.ExtraAdder(allow=("audit",)),
    ]
    renderer: list[Any]
    if fmt == "json":
        renderer = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(ensure_ascii=True),
        ]
    else:
        renderer = [
            escape_event,
            structlog.dev.ConsoleRenderer(
                colors=colors,
                repr_native_str=True,
                sort_keys=True,
                # its default, when rich is installed, prints every frame's locals
                exception_formatter=structlog.dev.plain_traceback,
            ),
        ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return formatter
