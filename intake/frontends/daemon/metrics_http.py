"""Metrics out of the process: an HTTP endpoint (``GET /metrics``) or a textfile.

Rules:
- ``[metrics] listen`` starts a stdlib ``http.server`` whose accept loop runs in one thread
  of its own, owned by the daemon: ``start`` binds (a taken port is a ``StartupError``),
  ``stop`` shuts it down and closes the socket. Loopback only unless ``allow_remote``
  (checked in config).
- The accept loop never serves a request itself: each connection gets a thread of its
  own (``metrics-connection``), at most ``MAX_CONNECTIONS`` at once; one more is answered
  ``503`` at once and closed, no thread started. A client that does not read or write is
  no one else's problem.
- Every connection has ``REQUEST_SECONDS`` for the whole exchange (request read, answer
  written), whatever it sends meanwhile: a client dribbling one byte every few seconds is
  cut at the deadline (the accept loop shuts its socket down, checking every
  ``POLL_SECONDS``), and each read or write also times out after ``REQUEST_SECONDS``.
- ``stop`` returns within about ``POLL_SECONDS`` plus ``STOP_SECONDS`` whatever the
  clients do: the accept loop ends, every open connection is shut down (its thread sees
  the end of the stream), the threads are given ``STOP_SECONDS`` to finish (daemon threads:
  one stuck in a collector never holds the process). So ``serve`` stops within its stop
  timeout whatever a metrics client does.
- Only ``GET``/``HEAD`` of ``/metrics`` (and ``/``) are answered; ``Metrics.render`` is
  thread-safe, and the collectors borrow the catalog's pooled connections.
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
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from intake.core.config import Listen
from intake.core.errors import StartupError
from intake.services.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("intake.metrics")

MAX_CONNECTIONS = 8  # metrics connections served at once (a scraper needs one)
REQUEST_SECONDS = 10.0  # one connection's whole exchange; also each read's and write's
POLL_SECONDS = 0.5  # how often the accept loop looks for connections past their deadline
STOP_SECONDS = 2.0  # how long ``stop`` waits for the connection threads to finish
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_SECONDS
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
    """The accept loop: a thread per connection, bounded, each cut at its deadline."""

    metrics: Metrics
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        self._lock = threading.Lock()
        self._open: dict[socket.socket, float] = {}  # connection -> its deadline
        self._threads: set[threading.Thread] = set()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        """Called by the accept loop: start the connection's thread, or refuse it at once."""
        with self._lock:
            busy = len(self._open) >= MAX_CONNECTIONS
            if not busy:
                self._open[request] = time.monotonic() + REQUEST_SECONDS
        if busy:
            log.warning("metrics: %d connections already open, one more refused", MAX_CONNECTIONS)
            with contextlib.suppress(OSError):
                request.setblocking(False)  # never wait on a client that does not read
                request.send(BUSY)
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve,
            args=(request, client_address),
            name="metrics-connection",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _serve(self, request: socket.socket, client_address: object) -> None:
        try:
            self.finish_request(request, client_address)  # type: ignore[arg-type]
        except Exception:  # a client gone mid-answer, a collector failing: logged, served on
            log.debug("metrics: a connection ended in error", exc_info=True)
        finally:
            with self._lock:  # out of ``_open`` before it is closed: never shut down after
                self._open.pop(request, None)
                self._threads.discard(threading.current_thread())
            self.shutdown_request(request)

    def _cut(self, late: bool) -> None:
        """Shut down the connections past their deadline (or all): their threads see EOF."""
        now = time.monotonic()
        with self._lock:
            for connection, deadline in self._open.items():
                if late and deadline > now:
                    continue
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def service_actions(self) -> None:
        """Run by the accept loop every ``POLL_SECONDS``: cut the late connections."""
        self._cut(late=True)

    def close_connections(self, wait: float) -> None:
        """Shut down every open connection and wait (at most ``wait`` s) for its thread."""
        self._cut(late=False)
        deadline = time.monotonic() + wait
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsEndpoint:
    """``GET /metrics`` on ``[metrics] listen``: an accept loop and a thread per connection."""

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
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name="metrics",
            daemon=True,
        )
        self._thread.start()
        address: tuple[str, int] = server.server_address[:2]  # type: ignore[assignment]
        return address

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()  # the accept loop never waits on a client: it ends at once
        self._server.close_connections(STOP_SECONDS)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_SECONDS)
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
