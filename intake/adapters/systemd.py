"""systemd's service protocol, written by hand (no libsystemd): sd_notify and the watchdog.

Rules:
- ``$NOTIFY_SOCKET`` names a unix datagram socket (a path, or ``@name`` for the abstract
  namespace); each message is one datagram of ``KEY=VALUE`` lines (sd_notify(3)). Without
  the variable every call is a no-op, so ``intake serve`` runs the same from a terminal.
- The variables are taken out of the environment when read (sd_notify's
  ``unset_environment``): a child process (an alert ``command``) never inherits them.
- ``$WATCHDOG_USEC`` asks for ``WATCHDOG=1`` more often than that; honoured only when
  ``$WATCHDOG_PID`` is unset or names this process.
- A datagram that cannot be sent is dropped silently: systemd not listening never
  stops the server (a missed ``WATCHDOG=1`` is systemd's to judge).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import MutableMapping


class Notifier:
    """Talks to the service manager; every method is a no-op when not under systemd."""

    def __init__(self, address: str = "", watchdog_usec: int = 0) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> Notifier:
        address = environ.pop("NOTIFY_SOCKET", "")
        usec_text = environ.pop("WATCHDOG_USEC", "")
        pid_text = environ.pop("WATCHDOG_PID", "")
        usec = int(usec_text) if usec_text.isdigit() else 0
        if pid_text and pid_text != str(os.getpid()):
            usec = 0
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between two ``WATCHDOG=1`` (half of what systemd allows), or None."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec else None

    def notify(self, **fields: str | int) -> None:
        """Send one message: ``notify(READY=1, STATUS="serving")``."""
        if self._sock is None:
            return
        text = "\n".join(f"{key}={value}" for key, value in fields.items())
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with contextlib.suppress(OSError):
            self._sock.sendto(text.encode("utf-8", "replace"), target)

    def ready(self, status: str) -> None:
        self.notify(READY=1, STATUS=status, MAINPID=os.getpid())

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd >= 253 tell this reload from an earlier one.
        self.notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> None:
        self.notify(STOPPING=1, STATUS="stopping")

    def watchdog(self) -> None:
        self.notify(WATCHDOG=1)

    def status(self, text: str) -> None:
        self.notify(STATUS=text)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
