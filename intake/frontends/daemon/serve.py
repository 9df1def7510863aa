"""``intake serve``: start the front-ends, run until SIGTERM/SIGINT, stop cleanly.

Rules:
- Startup problems (port taken, unreadable key) are ``StartupError``: one line, exit 1.
- ``[server] workers`` (default: one per core) processes serve the sessions. With 1 this
  process serves them from its threads. With more, this process is the supervisor: the
  spawner is forked first (before any thread runs), the worker processes once the
  recovery is done; the supervisor binds, accepts and admits every connection (the one
  guard: blocks, scores, slots, waiting room) and hands it to a worker (``pool``); it
  alone runs the cataloguer's watch, the sweeper, the anchors, the alerts, the metrics
  endpoint (summing the workers') and the status file (listing them). SIGHUP is passed
  to every worker; a stop ends their sessions first (``STOP_TIMEOUT``).
- One ``serve`` per instance: ``state/serve.lock`` (``intake.adapters.locks``) is taken
  first, before anything else; a second ``serve`` says "already served by PID n" and exits
  1 having touched nothing.
- Then every port is bound (nothing accepted yet), and only then is the previous run
  recovered, under ``state/recovery.lock``: leftovers of uploads cut by a crash
  (``data/.staging``) are discarded (they were never received) and uploads still
  ``receiving`` in the catalog become interrupted. A port that cannot be bound fails the
  start before any recovery. Connections are accepted once the recovery is done.
- The cataloguer starts before any front-end: it is a file-events listener from the first
  connection on, watches ``data/``, and reconciles the catalog with the disk in the
  background (uploads are catalogued meanwhile). It stops after the front-ends, so the
  uploads they cut are recorded as interrupted.
- On SIGTERM/SIGINT every session is closed; uploads still open become
  ``upload.interrupted``; the process exits 0 once the sessions are gone.
- On SIGHUP accounts, policies and the TLS certificate are reloaded (accounts are read
  live from their store at every login, so nothing is cached to drop; the policies are
  read again and every live catalog entry's policy and ``expires_at`` recomputed, at start
  too; the certificate and key are read again for new FTPS connections, open sessions
  keep theirs). systemd hears ``RELOADING=1`` before and ``READY=1`` after. Signal
  handlers only set flags: the main loop acts, running the reload in a thread of its own
  so that the watchdog keeps being fed; a SIGHUP during a reload runs one more after it.
- Under systemd (``$NOTIFY_SOCKET``): ``READY=1`` once every port is bound,
  ``WATCHDOG=1`` from the main loop while every accept loop runs (``heartbeat``),
  ``STOPPING=1`` at stop. ``state/serve.json`` says the same to ``intake status``.
- ``[metrics] listen`` serves the metrics over HTTP (an accept thread, a bounded thread
  and deadline per scrape), started after the front-ends and stopped before them;
  ``[metrics] textfile`` is rewritten by the main loop.
- At SIGHUP every open session whose login no longer holds (account disabled or
  deleted, password changed, key removed) is ended: its open uploads become
  ``upload.interrupted`` with that reason.
- With ``[sweeper] interval`` set, a sweeper thread sweeps at start and then at that
  interval; it shares ``state/sweeper.lock`` with ``intake sweep`` (the systemd timer), so
  the two never overlap. It stops first, before the front-ends.
- With ``[audit] tsa_url`` or ``head_recipients``, the anchor thread
  (``intake.services.anchors``) time-stamps the signed head and mails it monthly, off
  the connection threads; it starts after the front-ends and stops after them (one last
  time-stamp), before the alert loop.
- The alert loop starts first (it delivers what earlier runs left queued) and stops last,
  so the front-ends' last alerts are queued, and sent if the mail server answers.
- Each front-end prints ``<name>: listening on HOST:PORT`` once it accepts connections
  (tests and operators read the real port when the config asks for port 0), then
  ``ready: serving ...`` once all of them do.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Protocol

from intake.adapters.locks import FileLock, LockBusy, recovery_lock, serve_lock
from intake.adapters.logs import oplog
from intake.adapters.memory import bound_process_memory
from intake.adapters.systemd import Notifier
from intake.core.config import Listen
from intake.core.errors import ConfigError, StartupError, UsageError
from intake.frontends.daemon.heartbeat import Heartbeat
from intake.frontends.daemon.metrics_http import MetricsEndpoint
from intake.frontends.daemon.pool import WorkerPool
from intake.frontends.daemon.spawner import Spawner
from intake.frontends.daemon.worker import run_worker
from intake.frontends.ftps.server import FtpsService
from intake.frontends.sftp.server import SftpService
from intake.services.alerts.loop import AlertsLoop
from intake.services.anchors import Anchors, AnchorThread
from intake.services.cataloguer.cataloguer import Cataloguer
from intake.services.health import gauges
from intake.services.instance import Instance
from intake.services.retention import RetentionBook
from intake.services.sweeper.scheduler import SweeperThread

log = logging.getLogger("intake.daemon")
RECOVERY_WAIT = 120.0  # seconds a start waits for a running ``catalog scan`` to finish
STOP_TIMEOUT = 15.0  # seconds the worker processes have to end their sessions at a stop


class FrontEnd(Protocol):
    def bind(self, listen: Listen) -> tuple[str, int]: ...

    def start(self, listen: Listen) -> tuple[str, int]: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def alive(self) -> bool: ...


class Daemon:
    """The running front-ends of one instance."""

    def __init__(self, instance: Instance, workers: int | None = None) -> None:
        """``workers``: processes serving sessions (default ``[server] workers``); 1 serves
        them from this process's threads (the mode of an in-process test server)."""
        self.instance = instance
        self.workers = workers or instance.config.server.worker_count()
        self.frontends: dict[str, FrontEnd] = {}
        self.addresses: dict[str, tuple[str, int]] = {}
        self.cataloguer: Cataloguer | None = None
        self.sweeper: SweeperThread | None = None
        self.retention: RetentionBook | None = None
        self._lock: FileLock | None = None
        self.metrics_endpoint: MetricsEndpoint | None = None
        self.alerts: AlertsLoop | None = None
        self.anchors: AnchorThread | None = None
        self.spawner: Spawner | None = None
        self.pool: WorkerPool | None = None

    def reload_policies(self) -> None:
        """Read the policies again and re-date every live entry (start, SIGHUP)."""
        if self.retention is None:
            return
        try:
            self.retention.reload()
            changed = self.retention.reassess()
        except (ConfigError, UsageError) as exc:
            log.error("policies not reloaded: %s", exc)
            return
        if changed:
            log.info("retention: %d catalog entries got a new policy or end date", changed)

    def start(self) -> dict[str, tuple[str, int]]:
        cfg = self.instance.config
        inst = self.instance
        self._lock = serve_lock(cfg.state_dir)
        try:
            self._lock.acquire()
        except LockBusy as exc:
            self._lock = None
            raise StartupError(f"{cfg.root}: already served by PID {exc.holder}") from None
        plans: list[tuple[str, Listen]] = [("sftp", cfg.sftp.listen), ("ftps", cfg.ftps.listen)]
        try:
            bound: list[tuple[str, FrontEnd, Listen]] = []
            workers = self.workers
            if workers > 1:  # forked first, while this process runs no thread
                self.spawner = Spawner(lambda index, fd: run_worker(cfg, index, fd))
                self.spawner.start([self._lock.fileno()])
                self.pool = WorkerPool(inst, workers, self.spawner)
            self.alerts = AlertsLoop(inst.alerts, inst.budget.reserve)
            self.alerts.start()
            for name, listen in plans:
                if not listen.enabled:
                    continue
                frontend = self._build(name)
                self.frontends[name] = frontend
                self.addresses[name] = frontend.bind(listen)
                bound.append((name, frontend, listen))
            recovery = recovery_lock(cfg.state_dir)
            try:
                recovery.acquire(wait=RECOVERY_WAIT)
            except LockBusy as exc:
                raise StartupError(
                    f"{cfg.root}: a catalog scan (pid {exc.holder}) still runs; try again"
                ) from None
            try:
                leftovers = inst.storage.clear_staging()
                if leftovers:
                    log.warning(
                        "discarded %d partial upload(s) left by a previous run", len(leftovers)
                    )
                self.retention = RetentionBook(inst.catalog, cfg.policies_dir, inst.accounts)
                self.reload_policies()
                self.cataloguer = Cataloguer(
                    inst.catalog, inst.storage, inst.audit, inst.clock, retention=self.retention
                )
                self.cataloguer.start()
            finally:
                recovery.release()
            inst.listeners.append(self.cataloguer)
            if self.pool is not None:
                self.pool.settle_orphans_with(self.cataloguer.settle_orphans)
                self.pool.start()
                inst.metrics.add_peers(self.pool.samples)
            for name, frontend, listen in bound:
                self.addresses[name] = frontend.start(listen)
            gauges.register(inst.metrics, cfg, inst.catalog, inst.clock)
            if cfg.metrics.listen.enabled:
                self.metrics_endpoint = MetricsEndpoint(inst.metrics)
                self.addresses["metrics"] = self.metrics_endpoint.start(cfg.metrics.listen)
            interval = cfg.audit.checkpoint_interval
            if interval:
                inst.audit.start_checkpoint_timer(min(60.0, max(1.0, interval / 4)))
            if cfg.sweeper.interval:
                self.sweeper = SweeperThread(inst, cfg.sweeper.interval)
                self.sweeper.start()
            if cfg.audit.tsa_url or cfg.audit.head_recipients:
                self.anchors = AnchorThread(Anchors(inst))
                self.anchors.start()
        except BaseException:
            self.stop()
            raise
        return self.addresses

    def _build(self, name: str) -> FrontEnd:
        hand_off = self.pool.hand_off_to(name) if self.pool is not None else None
        if name == "sftp":
            return SftpService(self.instance, self.instance.config.sftp, hand_off)
        return FtpsService(self.instance, self.instance.config.ftps, hand_off)

    def alive(self) -> bool:
        """Every front-end (and the metrics endpoint) still accepts connections."""
        if self.metrics_endpoint is not None and not self.metrics_endpoint.alive():
            return False
        return all(frontend.alive() for frontend in self.frontends.values())

    def reload(self) -> None:
        """SIGHUP: end the sessions whose login no longer holds; read the policies
        (re-dating live entries) and the TLS pair again."""
        if self.pool is not None:
            self.pool.reload()
        ended = self.instance.sessions.revalidate(self.instance.accounts)
        if ended:
            log.info("ended %d session(s) whose login no longer holds", ended)
        self.reload_policies()
        if self.sweeper is not None:
            self.sweeper.reload()
        ftps = self.frontends.get("ftps")
        if isinstance(ftps, FtpsService):
            try:
                fingerprint = ftps.reload_tls()
            except StartupError as exc:
                log.error("%s; the certificate in use is kept", exc)
            else:
                log.info("ftps: certificate reloaded (SHA256 %s) for new connections", fingerprint)

    def stop(self) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
            self.sweeper = None
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()
            self.metrics_endpoint = None
        for name, frontend in list(self.frontends.items()):
            frontend.stop()
            del self.frontends[name]
        if self.pool is not None:  # no connection comes in any more: end the sessions
            self.pool.stop(STOP_TIMEOUT)
            self.pool = None
            self.instance.guard.digest.flush(everything=True)
        if self.spawner is not None:
            self.spawner.stop()
            self.spawner = None
        if self.cataloguer is not None:
            if self.cataloguer in self.instance.listeners:
                self.instance.listeners.remove(self.cataloguer)
            self.cataloguer.stop()
            self.cataloguer = None
        if self.anchors is not None:  # after the front-ends: their last records get stamped
            self.anchors.stop()
            self.anchors = None
        if self.alerts is not None:
            self.alerts.stop()
            self.alerts = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def serve(instance: Instance) -> int:
    """Run until a stop signal; returns the exit code."""
    bound_process_memory()  # before any session thread: see intake.adapters.memory
    daemon = Daemon(instance)
    notifier = Notifier.from_environ(os.environ)
    stop = threading.Event()
    reload = threading.Event()

    def on_stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    def on_reload(_signum: int, _frame: object) -> None:
        reload.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    instance.audit.observe(oplog.audit_observer)
    listening: dict[str, str] = {}
    for name, (host, port) in daemon.start().items():
        shown = f"[{host}]" if ":" in host else host
        listening[name] = f"{shown}:{port}"
        print(f"{name}: listening on {shown}:{port}", flush=True)
    served = ", ".join(daemon.frontends) or "nothing"
    if not daemon.frontends:
        log.warning("every front-end is turned off in %s", instance.config.file)
    cfg = instance.config
    heartbeat = Heartbeat(
        cfg.state_dir,
        instance.metrics,
        notifier,
        daemon.alive,
        listening,
        cfg.resolve(cfg.metrics.textfile) if cfg.metrics.textfile else None,
        daemon.pool.describe if daemon.pool is not None else None,
    )
    heartbeat.beat()  # state/serve.json exists before anyone hears "ready"
    print(f"ready: serving {served}", flush=True)
    notifier.ready(f"serving {served}")
    reloader: threading.Thread | None = None
    try:
        while not stop.is_set():
            if reloader is not None and not reloader.is_alive():
                reloader = None
                notifier.ready(f"serving {served}")
            if reload.is_set() and reloader is None:
                # In a thread: re-dating a large catalog must not starve the watchdog.
                reload.clear()
                notifier.reloading()
                log.info("received SIGHUP: reloading sessions, policies and certificate")
                reloader = threading.Thread(target=daemon.reload, name="reload", daemon=True)
                reloader.start()
            heartbeat.beat()
            stop.wait(heartbeat.tick)
        if reloader is not None:
            reloader.join(30)
        notifier.stopping()
        daemon.stop()
        heartbeat.stopped()
        log.info("stopped")
    finally:
        notifier.close()
    return 0
