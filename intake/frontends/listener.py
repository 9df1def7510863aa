"""The TCP side both front-ends share: bind, accept, admit, one thread per connection.

Rules:
- A port that cannot be bound is a ``StartupError`` naming the front-end and address.
- Every accepted connection is admitted by the guard in the accepting thread, before a
  thread is started for it and before any protocol byte is read; a refused one gets the
  front-end's ``refuse`` (an FTP 421 saying why, or nothing; never blocking) and is
  closed. An admitted one gets a ``Slot`` (its address, its accept time, ``logged_in``);
  the guard may evict it while unauthenticated (its socket is shut down), and
  ``release`` always follows, whatever happens.
- A connection over the startup caps waits: its socket stays open, with no thread and no
  byte sent, until the guard gives it a slot (its thread starts then, from the thread
  that freed the slot) or cuts it (refused as above). The accepting thread calls the
  guard's ``tick`` about every second (waits that lasted too long, the summaries of
  connections that ended before a login); a stopping listener closes its waiting
  connections and writes every pending summary.
- Every accepted connection has ``TCP_NODELAY``: a server's replies are small (an SFTP
  status per 32 KiB written, an FTP reply) and must not wait for the client's delayed
  ACK (Nagle's algorithm held a 1 GiB SFTP upload at 210 MB/s, 520 without).
- Login deadlines count from the slot's ``accepted`` (a monotonic time), not from the
  first protocol message.
- Refusals, connections that end without a login and failed handlers are noise
  (``NoiseLog``): one line per address and interval, and a handler's traceback at most
  once per interval; the server goes on. A session's own opened (at its login) and closed
  lines are written for logged-in sessions only.
  A client's own error (the front-end's ``client_errors``: a reset, a broken protocol)
  never gets a traceback.
- Each admitted connection is an operational-log session (``oplog.Session``: id, ip,
  protocol on every line of its threads), opened and closed with one INFO line each.
- Admitted connections are counted open in the metrics, by front-end, until released.
- With worker processes (``[server] workers``) the supervisor's listener accepts and
  admits as above, then ``hand_off`` gives the connection to a worker (no thread here);
  the worker's listener, which binds nothing, serves it from ``adopt`` as above.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

from intake.adapters.logs import oplog
from intake.adapters.logs.noise import NoiseLog
from intake.core.config import Listen
from intake.core.errors import StartupError
from intake.services.access.guard import Guard, Refusal, Slot, Waiting
from intake.services.metrics import Metrics

log = logging.getLogger("intake.listener")
Handler = Callable[[socket.socket, Slot], None]
ACCEPT_POLL = 1.0  # seconds: how often the accepting thread also ticks the guard and the noise


class ThreadedListener:
    def __init__(
        self,
        name: str,
        guard: Guard,
        handle: Handler,
        refuse: Callable[[socket.socket, Refusal], None] | None = None,
        metrics: Metrics | None = None,
        client_errors: tuple[type[BaseException], ...] = (OSError, EOFError),
        hand_off: Handler | None = None,
    ) -> None:
        """``hand_off`` (the supervisor of worker processes): an admitted connection is
        given to it instead of a thread of this process."""
        self.name = name
        self._hand_off = hand_off
        self._client_errors = client_errors
        self._metrics = metrics or Metrics()
        self._guard = guard
        self._handle = handle
        self._refuse = refuse
        self._sock: socket.socket | None = None
        self._address: tuple[str, int] = ("", 0)
        self._threads: list[threading.Thread] = []
        self._accepting: threading.Thread | None = None
        self._lock = threading.Lock()
        self._traceback_logged = 0.0
        self.stopping = threading.Event()
        self.noise = NoiseLog(logging.getLogger(f"intake.{name}"))

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
        sock.listen(128)
        sock.settimeout(ACCEPT_POLL)
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
        sock = self._sock
        if sock is None:
            return
        ticked = time.monotonic()
        while not self.stopping.is_set():
            if time.monotonic() - ticked >= ACCEPT_POLL:
                ticked = time.monotonic()
                self._guard.tick()
            try:
                client, addr = sock.accept()
            except TimeoutError:
                self.noise.flush()
                continue
            except OSError:
                if self.stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            with contextlib.suppress(OSError):  # replies go out at once (see module doc)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._admit(client, addr[0])

    def _admit(self, client: socket.socket, ip: str) -> None:
        """The guard decides here, in the accepting thread: no thread for a refused client."""

        def shut() -> None:
            client.shutdown(socket.SHUT_RDWR)

        admitted = self._guard.admit(
            ip,
            shut,
            start=lambda slot: self._start(client, slot),
            cut=lambda refusal: self._refused(client, ip, refusal),
            owner=self,
        )
        if isinstance(admitted, Refusal):
            self._refused(client, ip, admitted)
        elif not isinstance(admitted, Waiting):  # waiting: the guard starts or cuts it
            self._start(client, admitted)

    def _refused(self, client: socket.socket, ip: str, refusal: Refusal) -> None:
        self.noise.note(f"{self.name}: refused", ip, refusal.reason)
        if self._refuse is not None:
            client.setblocking(False)
            with contextlib.suppress(OSError):
                self._refuse(client, refusal)
        client.close()

    def _start(self, client: socket.socket, slot: Slot) -> None:
        """Start the connection's thread (from the accepting thread, or from the thread
        that freed a slot for a waiting connection)."""
        if self.stopping.is_set():
            slot.release()
            client.close()
            return
        client.settimeout(None)
        if self._hand_off is not None:
            self._hand_off(client, slot)
            return
        thread = threading.Thread(
            target=self._serve, args=(client, slot), name=f"{self.name}-{slot.ip}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        try:
            thread.start()
        except RuntimeError:  # no thread left: refuse rather than die
            slot.release()
            client.close()
            self.noise.note(f"{self.name}: refused", slot.ip, "cannot start a thread")

    def adopt(self, client: socket.socket, slot: Slot) -> None:
        """A worker process: serve a connection the supervisor accepted and admitted."""
        self._start(client, slot)

    def _serve(self, client: socket.socket, slot: Slot) -> None:
        self._metrics.session_opened(self.name)
        with oplog.Session(ip=slot.ip, protocol=self.name):
            # "session opened" once logged in: a connection that never logs in is noise.
            slot.on_login = lambda: log.info("session opened")
            outcome = "closed"
            try:
                self._handle(client, slot)
            except Exception as exc:
                outcome = f"ended by an error: {type(exc).__name__}"
                self._failed(slot.ip, exc)
            finally:
                self._metrics.session_closed(self.name)
                slot.release()
                client.close()
                took = time.monotonic() - slot.accepted
                if slot.authenticated:
                    log.info("session %s after %.1f s", outcome, took)
                else:  # audited (login.failed); its protocol errors are summarised noise
                    log.debug("session %s after %.1f s without a login", outcome, took)

    def _failed(self, ip: str, exc: Exception) -> None:
        self.noise.note(f"{self.name}: connection failed", ip, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, self._client_errors):
            return
        now = time.monotonic()
        if now - self._traceback_logged >= self.noise.interval:
            self._traceback_logged = now
            log.error("%s: connection from %s failed", self.name, ip, exc_info=exc)

    def stop_accepting(self) -> None:
        self.stopping.set()
        self._guard.stop_waiting(self)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        self.noise.close()

    def join(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds in all) for every connection thread to end."""
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._guard.digest.flush(everything=True)
