"""One worker process: serves the SFTP and FTPS sessions the supervisor hands it.

Rules:
- A worker is forked by the spawner (``spawner``); it opens the instance afresh (its own
  catalog connections, its own audit writer: the chain is shared through the log's lock)
  and asks the supervisor for everything shared (``remote``: the guard, the budget).
- It binds nothing. Each connection arrives on the channel (``conn``: the descriptor, the
  supervisor's slot id, the address, the accept time) and runs in a thread of this
  process, exactly as in a single-process server (``ThreadedListener.adopt``).
- It catalogues its own uploads (``Cataloguer.start_listening``) and answers ``uploads``
  (those it is receiving: ``InFlight``); the supervisor's cataloguer watches the disk,
  reconciles, and settles what a dead worker left receiving.
- ``reload`` (the supervisor's SIGHUP): the sessions whose login no longer holds end,
  the policies and the TLS pair are read again. ``evict``: a connection the guard evicts.
- It stops on ``stop``, on SIGTERM/SIGINT, or when the channel ends (the supervisor is
  gone): its sessions end (open uploads become interrupted, within ``STOP_TIMEOUT``), its
  audit writer signs what it wrote, and it exits 0.
- ``metrics`` answers its counters (what its audit records counted); the supervisor sums
  every worker's into its own for a scrape. Open sessions are counted by the supervisor.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any

from intake.adapters.logs import oplog
from intake.core.authz import Area
from intake.core.clock import SystemClock
from intake.core.config import Config
from intake.core.errors import ConfigError, StartupError, UsageError
from intake.frontends.daemon.channel import Channel, Message
from intake.frontends.daemon.remote import RemoteBudget, RemoteGate, RemoteSlots
from intake.frontends.ftps.server import FtpsService
from intake.frontends.sftp.server import SftpService
from intake.services.access.budget import Budget
from intake.services.access.guard import Slot
from intake.services.access.login import Authenticator
from intake.services.cataloguer.cataloguer import Cataloguer
from intake.services.files import Arrival
from intake.services.instance import Instance, open_instance
from intake.services.retention import RetentionBook

log = logging.getLogger("intake.worker")
STOP_TIMEOUT = 10.0
UNSUMMED = frozenset({"intake_sessions_open", "intake_start_time_seconds"})


class InFlight:
    """The uploads this worker is receiving, wrapped around its cataloguer: an upload is
    counted before its catalog entry says ``receiving`` and until after it says
    otherwise, so the supervisor (which reads the catalog first, then asks) never takes a
    live upload for a dead worker's (``WorkerPool`` settles those)."""

    def __init__(self, inner: Cataloguer) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str, str], int] = {}

    def uploads(self) -> list[list[str]]:
        with self._lock:
            return [list(key) for key in self._open]

    def _add(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._open[key] = self._open.get(key, 0) + 1

    def _remove(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            left = self._open.get(key, 0) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)

    def started(self, account: str, area: Area, path: str, protocol: str) -> None:
        key = (account, area.value, path)
        self._add(key)
        try:
            self._inner.started(account, area, path, protocol)
        except BaseException:
            self._remove(key)
            raise

    def received(self, arrival: Arrival) -> None:
        try:
            self._inner.received(arrival)
        finally:
            self._remove((arrival.account, arrival.area.value, arrival.path))

    def interrupted(self, account: str, area: Area, path: str, size: int, reason: str) -> None:
        try:
            self._inner.interrupted(account, area, path, size, reason)
        finally:
            self._remove((account, area.value, path))

    def renamed(
        self,
        account: str,
        area: Area,
        old_path: str,
        new_path: str,
        old_disk_path: str,
        new_disk_path: str,
    ) -> None:
        self._inner.renamed(account, area, old_path, new_path, old_disk_path, new_disk_path)

    def times_set(self, disk_path: str, before: os.stat_result, after: os.stat_result) -> None:
        self._inner.times_set(disk_path, before, after)


class Worker:
    """The parts of one worker process, built in ``run`` and stopped at its end."""

    def __init__(self, config: Config, index: int, sock: socket.socket) -> None:
        self.config = config
        self.index = index
        self.stop = threading.Event()
        self.channel = Channel(sock, f"worker-{index}", self._handle, on_close=self.stop.set)
        self.slots = RemoteSlots(self.channel)
        self.instance: Instance | None = None
        self.services: dict[str, SftpService | FtpsService] = {}
        self.retention: RetentionBook | None = None
        self.in_flight: InFlight | None = None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        inst = self.instance = self._open()
        cataloguer = Cataloguer(
            inst.catalog, inst.storage, inst.audit, inst.clock, retention=self.retention
        )
        cataloguer.start_listening()
        self.in_flight = InFlight(cataloguer)
        inst.listeners.append(self.in_flight)
        if self.config.sftp.listen.enabled:
            self.services["sftp"] = SftpService(inst, self.config.sftp)
        if self.config.ftps.listen.enabled:
            ftps = FtpsService(inst, self.config.ftps)
            ftps.prepare()
            self.services["ftps"] = ftps
        self.channel.start()
        try:
            self.channel.send({"op": "ready"})
            while not self.stop.wait(1.0):
                pass
        finally:
            for service in self.services.values():
                service.stop(STOP_TIMEOUT)
            inst.listeners.remove(self.in_flight)
            cataloguer.stop()
            inst.close()
            self.channel.close()
        return 0

    def _open(self) -> Instance:
        inst = open_instance(self.config, SystemClock())
        inst.audit.observe(oplog.audit_observer)  # audit events in the operational log too
        workers = self.config.server.worker_count()
        gate = RemoteGate(self.channel, self.config.limits, workers)
        inst.auth = Authenticator(inst.accounts, gate, inst.audit)
        local = inst.budget if isinstance(inst.budget, Budget) else Budget(self.config.limits)
        inst.budget = RemoteBudget(self.channel, local)
        self.retention = RetentionBook(inst.catalog, self.config.policies_dir, inst.accounts)
        self.retention.reload()
        return inst

    # -- the supervisor's messages -------------------------------------------------------

    def _handle(self, _channel: Channel, message: Message) -> Any:
        op = message.get("op")
        if op == "conn":
            return self._adopt(message)
        if op == "evict":
            self.slots.evict(int(message["id"]))
        elif op == "reload":
            threading.Thread(target=self._reload, name="reload", daemon=True).start()
        elif op == "stop":
            self.stop.set()
        elif op == "metrics":
            return self._metrics()
        elif op == "uploads":
            return self.in_flight.uploads() if self.in_flight is not None else []
        return None

    def _adopt(self, message: Message) -> None:
        fd = message.get("fd")
        service = self.services.get(str(message.get("front")))
        if fd is None or service is None or self.stop.is_set():
            if message.get("id") is not None:
                self.channel.send({"op": "released", "id": message["id"]})
            return
        message["fd_taken"] = True
        client = socket.socket(fileno=fd)
        slot = Slot(
            self.slots,
            str(message["ip"]),
            str(message["network"]),
            lambda: client.shutdown(socket.SHUT_RDWR),
            accepted=float(message["accepted"]),
        )
        self.slots.add(int(message["id"]), slot)
        service.adopt(client, slot)

    def _reload(self) -> None:
        inst = self.instance
        if inst is None:
            return
        ended = inst.sessions.revalidate(inst.accounts)
        if ended:
            log.info("ended %d session(s) whose login no longer holds", ended)
        if self.retention is not None:
            try:
                self.retention.reload()
            except (ConfigError, UsageError) as exc:
                log.error("policies not reloaded: %s", exc)
        ftps = self.services.get("ftps")
        if isinstance(ftps, FtpsService):
            try:
                ftps.reload_tls()
            except StartupError as exc:
                log.error("%s; the certificate in use is kept", exc)

    def _metrics(self) -> list[list[Any]]:
        inst = self.instance
        if inst is None:
            return []
        return [
            [sample.name, [list(pair) for pair in sample.labels], sample.value]
            for sample in inst.metrics.samples()
            if sample.name not in UNSUMMED
        ]


def run_worker(config: Config, index: int, fd: int) -> int:
    """The body of a forked worker process; its exit code."""
    try:
        return Worker(config, index, socket.socket(fileno=fd)).run()
    except Exception:
        log.exception("worker %d failed", index)
        return 1
