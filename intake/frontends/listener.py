"""The TCP side both front-ends share: bind, accept, admit, one thread per connection.

Rules:
- A port that cannot be bound is a ``StartupError`` naming the front-end and address.
- Every accepted connection is counted by the guard (``admit``) before any protocol
  byte is read; a refused one gets the front-end's ``refuse`` (an FTP 421, or nothing)
  and is closed. ``release`` always follows an admitted connection, whatever happens.
- ``accepted`` (a monotonic time) is handed to the connection: login deadlines count
  from the accept, not from the first protocol message.
- A connection handler that raises is logged with its traceback; the server goes on.
- Admitted connections are counted open in the metrics, by front-end, until released.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

from intake.core.config import Listen
from intake.core.errors import StartupError
from intake.services.guard import Guard
from intake.services.metrics import Metrics

log = logging.getLogger("intake.listener")
Handler = Callable[[socket.socket, str, float], None]


class ThreadedListener:
    def __init__(
        self,
        name: str,
        guard: Guard,
        handle: Handler,
        refuse: Callable[[socket.socket], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self._metrics = metrics or Metrics()
        self._guard = guard
        self._handle = handle
        self._refuse = refuse
        self._sock: socket.socket | None = None
        self._address: tuple[str, int] = ("", 0)
        self._threads: list[threading.Thread] = []
        self._accepting: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def bind(self, listen: Listen) -> tuple[str, int]:
        """Bind and listen, accepting nothing yet (``serve`` binds before its recovery)."""
        if self._sock is not None:
            return self._address
        family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listen.host, listen.port))
        except OSError as exc:
            sock.close()
            raise StartupError(f"{self.name}: cannot listen on {listen}: {exc.strerror}") from None
        sock.listen(64)
        self._sock = sock
        self._address = sock.getsockname()[:2]
        return self._address

    def start(self, listen: Listen) -> tuple[str, int]:
        """Bind (unless ``bind`` did) and start accepting connections."""
        address = self.bind(listen)
        self._accepting = threading.Thread(
            target=self._accept_loop, name=f"{self.name}-accept", daemon=True
        )
        self._accepting.start()
        return address

    def alive(self) -> bool:
        """True while the accept loop runs (the watchdog is fed only then)."""
        return self._accepting is not None and self._accepting.is_alive()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self.stopping.is_set():
            try:
                client, addr = self._sock.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            thread = threading.Thread(
                target=self._serve,
                args=(client, addr[0], time.monotonic()),
                name=f"{self.name}-{addr[0]}",
                daemon=True,
            )
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket, ip: str, accepted: float) -> None:
        refusal = self._guard.admit(ip)
        if refusal is not None:
            log.info("%s: refused a connection from %s: %s", self.name, ip, refusal)
            if self._refuse is not None:
                with contextlib.suppress(OSError):
                    self._refuse(client)
            client.close()
            return
        self._metrics.session_opened(self.name)
        try:
            self._handle(client, ip, accepted)
        except Exception:
            log.exception("%s: connection from %s failed", self.name, ip)
        finally:
            self._metrics.session_closed(self.name)
            self._guard.release(ip)
            client.close()

    def stop_accepting(self) -> None:
        self.stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()

    def join(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds in all) for every connection thread to end."""
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
