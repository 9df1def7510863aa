"""The spawner: a single-threaded process that forks the worker processes on request.

Why: a worker is a fork of the server (its code and imports shared copy-on-write, so a
worker costs little memory), but forking a process that runs threads can copy a lock
some other thread held at that instant (in SQLite, OpenSSL, a buffered stream) into a
child that then waits for it forever. The supervisor runs many threads; the spawner is
forked from it once, at start, before any thread runs, and stays single-threaded: every
worker, the first ones and any replacement, is forked from it.

Rules:
- ``Spawner.start`` forks it: ``close_in_children`` (the serve lock, the listening sockets)
  are closed in it at once, so only the supervisor holds them (a ``kill -9`` of the
  supervisor frees the ports and the lock).
- ``spawn(index, channel_end)`` sends it the worker's end of a channel (``SCM_RIGHTS``);
  it forks, the child runs ``run_worker(index, fd)`` and exits with its result, the
  spawner closes its copy and answers the child's pid.
- It reaps its children; when the supervisor's end of its own channel closes (the
  supervisor stopped or died) it waits for the workers to end (each ends with its own
  channel), then exits. Signals: SIGINT and SIGHUP are ignored (a terminal's
  Ctrl-C reaches the supervisor, which stops the workers), SIGTERM ends it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import threading
from collections.abc import Callable, Iterable

from intake.core.errors import StartupError

RunWorker = Callable[[int, int], int]


class Spawner:
    """The supervisor's handle on the spawner process."""

    def __init__(self, run_worker: RunWorker) -> None:
        self._run_worker = run_worker
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.pid = 0

    def start(self, close_in_children: Iterable[int]) -> None:
        """Fork the spawner (call before any thread of this process starts)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        gc.collect()
        gc.freeze()  # objects made so far stay shared with the children (no GC writes)
        pid = os.fork()
        if pid == 0:  # the spawner
            code = 1
            try:
                mine.close()
                for fd in close_in_children:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                code = _serve_spawns(theirs, self._run_worker)
            finally:
                os._exit(code)
        theirs.close()
        self._sock = mine
        self.pid = pid

    def spawn(self, index: int, channel_end: socket.socket) -> int:
        """Fork worker ``index`` with ``channel_end`` as its channel; its pid."""
        if self._sock is None:
            raise StartupError("workers: the spawner is not running")
        with self._lock:
            try:
                request = json.dumps({"index": index}).encode()
                socket.send_fds(self._sock, [request], [channel_end.fileno()])
                answer = self._sock.recv(256)
            except OSError as exc:
                raise StartupError(f"workers: the spawner is gone ({exc})") from None
        if not answer:
            raise StartupError("workers: the spawner is gone")
        pid = int(json.loads(answer)["pid"])
        if pid <= 0:
            raise StartupError(f"workers: cannot fork worker {index}")
        return pid

    def stop(self) -> None:
        """Close the spawner's channel (it exits) and reap it."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self.pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0


def _serve_spawns(sock: socket.socket, run_worker: RunWorker) -> int:
    """The spawner's loop (single-threaded): fork on request, reap, end with the channel."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:
        _reap()
        ready, _, _ = select.select([sock], [], [], 1.0)
        if not ready:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 256, 1)
        except OSError:
            data, fds = b"", []
        if not data:
            _reap(wait=True)  # the workers end with their own channels
            return 0
        if not fds:
            continue
        index = int(json.loads(data)["index"])
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:  # the worker
            code = 1
            try:
                sock.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                code = run_worker(index, fds[0])
            finally:
                os._exit(code)
        os.close(fds[0])
        with contextlib.suppress(OSError):
            sock.send(json.dumps({"pid": pid}).encode())


def _reap(wait: bool = False) -> None:
    """Collect the workers that ended (``wait``: until none is left)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, 0 if wait else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
