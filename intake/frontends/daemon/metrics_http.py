"""Metrics out of the process: an HTTP endpoint (``GET /metrics``) or a textfile.

Rules:
- ``[metrics] listen`` starts a stdlib ``http.server`` in one thread of its own, owned by
  the daemon: ``start`` binds (a taken port is a ``StartupError``), ``stop`` shuts it
  down and closes the socket. Loopback only unless ``allow_remote`` (checked in config).
- One request at a time, each with a 10 s socket timeout: the collectors read the
  catalog through that thread's own connection, and a stalled scraper cannot pile up
  threads. Only ``GET``/``HEAD`` of ``/metrics`` (and ``/``) are answered.
- No request is logged at INFO (a scraper every 15 s would flood the journal).
- ``[metrics] textfile`` is rewritten whole by ``write_textfile``: a temporary file in the
  same folder, then ``rename`` (node_exporter's textfile collector never reads half a
  file), mode 0644 so node_exporter's user can read it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from intake.core.config import Listen
from intake.core.errors import StartupError
from intake.services.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("intake.metrics")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10
    server_version = "intake-metrics"
    sys_version = ""

    def _answer(self, body: bool) -> None:
        if self.path.split("?", 1)[0] not in ("/metrics", "/"):
            self.send_error(404, "only /metrics is served here")
            return
        data = self.server.metrics.render().encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics: %s " + format, self.address_string(), *args)


class _Server(HTTPServer):
    metrics: Metrics
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsEndpoint:
    """``GET /metrics`` on ``[metrics] listen``, served from one thread."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, listen: Listen) -> tuple[str, int]:
        cls = _Server6 if ":" in listen.host else _Server
        try:
            server = cls((listen.host, listen.port), _Handler)
        except OSError as exc:
            raise StartupError(f"metrics: cannot listen on {listen}: {exc.strerror}") from None
        server.metrics = self._metrics
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="metrics", daemon=True
        )
        self._thread.start()
        address: tuple[str, int] = server.server_address[:2]  # type: ignore[assignment]
        return address

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None


def write_textfile(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, readable by node_exporter (0644)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)  # whatever the umask
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
