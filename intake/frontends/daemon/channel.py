"""The channel between the supervisor and one worker process: messages, descriptors, calls.

Rules:
- One ``AF_UNIX`` ``SOCK_SEQPACKET`` socket pair per worker: the kernel keeps each message
  whole, so a message is one ``send`` (a JSON object, at most ``MAX_MESSAGE`` bytes) with
  at most one descriptor attached (an accepted client connection, ``SCM_RIGHTS``).
- Each side runs one reader thread (``start``) that hands every message to its handler in
  arrival order; messages from one sender are therefore handled in the order sent (an
  eviction is handled after the connection it evicts). A handler that raises is logged,
  never the reader's end.
- ``tell`` sends a fact and forgets a side that is gone. ``call`` asks the other side and
  waits for its answer, at most ``CALL_TIMEOUT`` seconds: a side that went away answers
  ``ChannelClosed``, never a hang.
- The end of the channel (the other process died or closed it) runs ``on_close`` once,
  from the reader thread; every pending call is answered ``ChannelClosed``.
- Descriptors received are owned by the handler (the message's ``fd``); a message that
  carries one the handler does not take is closed by the reader.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("intake.channel")
MAX_MESSAGE = 1 << 20
CALL_TIMEOUT = 30.0
Message = dict[str, Any]


class ChannelClosed(Exception):
    """The other side of the channel is gone."""


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of channel sockets (supervisor's end, worker's end)."""
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return left, right


class Channel:
    """One end: ``send`` messages (and a descriptor), ``call`` and wait, read in a thread."""

    def __init__(
        self,
        sock: socket.socket,
        name: str,
        handle: Callable[[Channel, Message], Any],
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        """``handle(channel, message)`` gets each message; for a call its return value is
        the answer (it must be JSON). ``message["fd"]`` is a received descriptor, if any."""
        self.sock = sock
        self.name = name
        self._handle = handle
        self._on_close = on_close
        self._send_lock = threading.Lock()
        self._calls: dict[int, Future[Any]] = {}
        self._calls_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._reader: threading.Thread | None = None
        self.closed = threading.Event()

    def start(self) -> None:
        self._reader = threading.Thread(target=self._read, name=f"channel-{self.name}", daemon=True)
        self._reader.start()

    def send(self, message: Message, fd: int | None = None) -> None:
        """Send one message (``ChannelClosed`` if the other side is gone)."""
        data = json.dumps(message, separators=(",", ":")).encode()
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"channel message of {len(data)} bytes")
        try:
            with self._send_lock:
                if fd is None:
                    self.sock.send(data)
                else:
                    socket.send_fds(self.sock, [data], [fd])
        except OSError as exc:
            raise ChannelClosed(f"{self.name}: {exc.strerror or exc}") from None

    def tell(self, message: Message) -> None:
        """Send a fact the other side may no longer need: if it is gone, nothing is sent
        (its end is handled by ``on_close``, not by the sender)."""
        with contextlib.suppress(ChannelClosed):
            self.send(message)

    def call(self, op: str, timeout: float = CALL_TIMEOUT, **fields: Any) -> Any:
        """Ask the other side; its handler's answer (``ChannelClosed`` if it went away)."""
        future: Future[Any] = Future()
        rid = next(self._ids)
        with self._calls_lock:
            if self.closed.is_set():
                raise ChannelClosed(self.name)
            self._calls[rid] = future
        try:
            self.send({"op": op, "call": rid, **fields})
            return future.result(timeout)
        except TimeoutError:
            raise ChannelClosed(f"{self.name}: no answer to {op} in {timeout:g} s") from None
        finally:
            with self._calls_lock:
                self._calls.pop(rid, None)

    def close(self) -> None:
        """Close this end (the other side's reader sees the end)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if self._reader is None or self._reader is threading.current_thread():
            self._closed()

    def join(self, timeout: float) -> None:
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)

    def _read(self) -> None:
        try:
            while True:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 1)
                except OSError:
                    break
                if not data:
                    for fd in fds:
                        with contextlib.suppress(OSError):
                            socket.socket(fileno=fd).close()
                    break
                self._dispatch(data, fds)
        finally:
            self._closed()

    def _dispatch(self, data: bytes, fds: list[int]) -> None:
        message: Message = json.loads(data)
        if fds:
            message["fd"] = fds[0]
        if "answer" in message or "failed" in message:
            with self._calls_lock:
                future = self._calls.get(int(message["answer_to"]))
            if future is not None and not future.done():
                if "failed" in message:
                    future.set_exception(ChannelClosed(str(message["failed"])))
                else:
                    future.set_result(message["answer"])
            return
        rid = message.get("call")
        try:
            answer = self._handle(self, message)
        except Exception as exc:
            log.exception("%s: handling %s failed", self.name, message.get("op"))
            if rid is not None:
                self.tell({"answer_to": rid, "failed": type(exc).__name__})
            return
        finally:
            fd = message.get("fd")
            if fd is not None and not message.get("fd_taken"):
                with contextlib.suppress(OSError):
                    socket.socket(fileno=fd).close()
        if rid is not None:
            self.tell({"answer_to": rid, "answer": answer})

    def _closed(self) -> None:
        with self._calls_lock:
            if self.closed.is_set():
                return
            self.closed.set()
            pending = list(self._calls.values())
        for future in pending:
            if not future.done():
                future.set_exception(ChannelClosed(self.name))
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self._on_close()
        except Exception:
            log.exception("%s: closing failed", self.name)
