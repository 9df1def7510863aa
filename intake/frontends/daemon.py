"""``intake serve``: start the front-ends, run until SIGTERM/SIGINT, stop cleanly.

Rules:
- Startup problems (port taken, unreadable key) are ``StartupError``: one line, exit 1.
- Leftovers of uploads cut by a crash (``data/.staging``) are discarded at start: they
  were never received.
- On SIGTERM/SIGINT every session is closed; uploads still open become
  ``upload.interrupted``; the process exits 0 once the sessions are gone.
- On SIGHUP accounts and policies are reloaded (accounts are read live from their
  store at every login, so nothing is cached to drop).
- Each front-end prints ``<name>: listening on HOST:PORT`` once it accepts connections
  (tests and operators read the real port when the config asks for port 0).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Protocol

from intake.core.config import Listen
from intake.services.instance import Instance

log = logging.getLogger("intake.daemon")


class FrontEnd(Protocol):
    def start(self, listen: Listen) -> tuple[str, int]: ...

    def stop(self, timeout: float = 10.0) -> None: ...


def configure_logging() -> None:
    """Operational log on stderr; libraries kept at WARNING (before any server starts)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("paramiko", "pyftpdlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Daemon:
    """The running front-ends of one instance."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.frontends: dict[str, FrontEnd] = {}
        self.addresses: dict[str, tuple[str, int]] = {}

    def start(self) -> dict[str, tuple[str, int]]:
        cfg = self.instance.config
        leftovers = self.instance.storage.clear_staging()
        if leftovers:
            log.warning("discarded %d partial upload(s) left by a previous run", len(leftovers))
        plans: list[tuple[str, Listen]] = [("sftp", cfg.sftp.listen), ("ftps", cfg.ftps.listen)]
        try:
            for name, listen in plans:
                if not listen.enabled:
                    continue
                frontend = self._build(name)
                if frontend is None:
                    continue
                self.addresses[name] = frontend.start(listen)
                self.frontends[name] = frontend
        except BaseException:
            self.stop()
            raise
        return self.addresses

    def _build(self, name: str) -> FrontEnd | None:
        if name == "sftp":
            from intake.frontends.sftp import SftpService

            return SftpService(self.instance, self.instance.config.sftp)
        try:
            from intake.frontends import ftps  # type: ignore[attr-defined]
        except ImportError:
            log.warning("ftps: not available in this version; only SFTP is served")
            return None
        return ftps.FtpsService(self.instance, self.instance.config.ftps)  # type: ignore[no-any-return]

    def stop(self) -> None:
        for name, frontend in list(self.frontends.items()):
            frontend.stop()
            del self.frontends[name]


def serve(instance: Instance) -> int:
    """Run until a stop signal; returns the exit code."""
    daemon = Daemon(instance)
    stop = threading.Event()

    def on_stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    def on_reload(_signum: int, _frame: object) -> None:
        log.info("received SIGHUP: accounts are read live; policies reload at the next sweep")

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    for name, (host, port) in daemon.start().items():
        shown = f"[{host}]" if ":" in host else host
        print(f"{name}: listening on {shown}:{port}", flush=True)
    if not daemon.frontends:
        log.warning("every front-end is turned off in %s", instance.config.file)
    while not stop.wait(0.5):
        pass
    daemon.stop()
    log.info("stopped")
    return 0
