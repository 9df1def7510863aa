"""The supervisor's worker processes: hand connections out, answer them, replace the dead.

Rules:
- ``[server] workers`` processes (``ServerSection.worker_count``) are forked by the
  spawner at start. A connection the supervisor's listener admitted is handed
  (``hand_off``) to the ready worker serving fewest connections (each in turn among
  equals), with its descriptor (the supervisor keeps no copy); the guard's slot stays
  here, counted open in the metrics until the worker says it was released.
- The supervisor answers each worker's questions from the one ``Guard`` and the one
  ``Budget`` (``remote`` is the worker's side); an eviction decided by the guard is sent
  to the worker holding the connection.
- A worker that ends (killed, crashed) loses its connections: their slots are released
  here, so are the open files and quota leases it held (counted per worker here), and
  the uploads it was receiving are settled (``_settle_orphans``): received if
  the file was in place, else ``upload.interrupted`` and its staging file removed. It is
  forked again at once, or after a delay that doubles (up to ``RESTART_MAX``) while
  workers keep dying young; logged as an error.
- ``reload`` (SIGHUP) and ``stop`` are sent to every worker; ``stop`` waits for them (their
  sessions end, open uploads are interrupted) up to its timeout, then kills what is left.
- ``samples`` sums the workers' metrics into the supervisor's registry; ``describe``
  says what ``intake status`` shows (pid, connections, start, restarts of each worker).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from intake.adapters.catalog.model import Entry
from intake.core.clock import isoformat
from intake.core.errors import StartupError
from intake.frontends.daemon import channel as channels
from intake.frontends.daemon.channel import Channel, ChannelClosed, Message
from intake.frontends.daemon.spawner import Spawner
from intake.services.access.guard import Slot
from intake.services.instance import Instance
from intake.services.metrics import Sample

log = logging.getLogger("intake.workers")
RESTART_MAX = 30.0  # seconds: the longest wait before forking a worker again
YOUNG = 10.0  # seconds: a worker that dies younger than this delays the next restart
READY_WAIT = 30.0  # seconds a start waits for every worker to be ready
ORPHANED = "the worker process receiving it ended"
BUDGET_OPS = frozenset({"open_file", "close_file", "measure", "arrive", "settle"})
SettleOrphans = Callable[[list[Entry], str], tuple[int, int]]


@dataclass
class WorkerState:
    """One worker process, as the supervisor sees it."""

    index: int
    pid: int
    channel: Channel
    started: float = field(default_factory=time.monotonic)
    started_at: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.UTC))
    ready: threading.Event = field(default_factory=threading.Event)
    slots: dict[int, tuple[str, Slot]] = field(default_factory=dict)
    open_files: Counter[str] = field(default_factory=Counter)  # per account, held here
    arriving: Counter[str] = field(default_factory=Counter)  # quota bytes leased, per account


class WorkerPool:
    """The worker processes of one ``serve`` and what they share through it."""

    def __init__(self, instance: Instance, count: int, spawner: Spawner) -> None:
        self._instance = instance
        self._count = count
        self._spawner = spawner
        self._lock = threading.Lock()
        self._workers: dict[int, WorkerState] = {}
        self._ids = itertools.count(1)
        self._turns = itertools.count()
        self._stopping = threading.Event()
        self._restarts: dict[int, int] = {}
        self._delay: dict[int, float] = {}
        self._settle: SettleOrphans | None = None

    def settle_orphans_with(self, settle: SettleOrphans) -> None:
        """Who records what a dead worker left receiving (the supervisor's cataloguer)."""
        self._settle = settle

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Fork every worker and wait until each is ready (``StartupError`` if not)."""
        for index in range(self._count):
            self._spawn(index)
        deadline = time.monotonic() + READY_WAIT
        for state in list(self._workers.values()):
            if not state.ready.wait(max(0.0, deadline - time.monotonic())):
                raise StartupError(f"workers: worker {state.index} did not start")

    def _spawn(self, index: int) -> None:
        mine, theirs = channels.pair()
        try:
            pid = self._spawner.spawn(index, theirs)
        finally:
            theirs.close()
        holder: list[WorkerState] = []  # the channel's callbacks run once it is started
        chan = Channel(
            mine,
            f"worker-{index}",
            lambda _chan, message: self._handle(holder[0], message),
            on_close=lambda: self._ended(holder[0]),
        )
        state = WorkerState(index, pid, chan)
        holder.append(state)
        with self._lock:
            self._workers[index] = state
        chan.start()
        log.info("worker %d started (pid %d)", index, pid)

    def alive(self) -> bool:
        """Every worker is running (a dead one is being replaced: not alive yet)."""
        with self._lock:
            states = list(self._workers.values())
        return len(states) == self._count and all(not s.channel.closed.is_set() for s in states)

    def stop(self, timeout: float) -> None:
        """Stop every worker; wait up to ``timeout`` for their sessions, then kill."""
        self._stopping.set()
        with self._lock:
            states = list(self._workers.values())
        for state in states:
            state.channel.tell({"op": "stop"})
        deadline = time.monotonic() + timeout
        for state in states:
            state.channel.closed.wait(max(0.0, deadline - time.monotonic()))
            if not state.channel.closed.is_set():
                log.error("worker %d (pid %d) did not stop in time: killed", state.index, state.pid)
                with contextlib.suppress(OSError):
                    os.kill(state.pid, signal.SIGKILL)
                state.channel.close()
            state.channel.join(5)

    def reload(self) -> None:
        with self._lock:
            states = list(self._workers.values())
        for state in states:
            state.channel.tell({"op": "reload"})

    def _ended(self, state: WorkerState) -> None:
        """A worker's channel ended: release its slots; fork it again unless stopping."""
        with self._lock:
            slots = list(state.slots.values())
            state.slots.clear()
            if self._workers.get(state.index) is state:
                del self._workers[state.index]
        for front, slot in slots:
            self._instance.metrics.session_closed(front)
            slot.release()
        budget = self._instance.budget
        for account, count in state.open_files.items():
            for _ in range(count):
                budget.close_file(account)
        for account, leased in state.arriving.items():
            budget.settle(account, leased, False)
        state.open_files.clear()
        state.arriving.clear()
        if self._stopping.is_set():
            return
        lived = time.monotonic() - state.started
        log.error(
            "worker %d (pid %d) ended after %.1f s with %d connection(s); starting it again",
            state.index,
            state.pid,
            lived,
            len(slots),
        )
        delay = self._delay.get(state.index, 0.0)
        delay = min(RESTART_MAX, max(1.0, delay * 2)) if lived < YOUNG else 0.0
        self._delay[state.index] = delay
        self._restarts[state.index] = self._restarts.get(state.index, 0) + 1

        def restart() -> None:
            self._settle_orphans(state)
            if self._stopping.wait(delay):
                return
            try:
                self._spawn(state.index)
            except StartupError as exc:
                log.error("%s", exc)

        threading.Thread(target=restart, name=f"restart-{state.index}", daemon=True).start()

    def _settle_orphans(self, dead: WorkerState) -> None:
        """The uploads ``dead`` was receiving: the catalog's ``receiving`` entries (read
        first) that no live worker holds (asked next: an upload that starts meanwhile is
        not in the first list, one that ends is no longer receiving)."""
        if self._settle is None:
            return
        try:
            entries = self._instance.catalog.receiving()
            if not entries:
                return
            held: set[tuple[str, str, str]] = set()
            with self._lock:
                live = [s for s in self._workers.values() if s is not dead and s.ready.is_set()]
            for state in live:
                held |= {(str(a), str(b), str(c)) for a, b, c in state.channel.call("uploads")}
            orphans = [e for e in entries if (e.account, e.area, e.path) not in held]
            received, interrupted = self._settle(orphans, ORPHANED)
        except ChannelClosed:
            log.error("worker %d: its uploads are left to the next start to settle", dead.index)
            return
        except Exception:
            log.exception("worker %d: settling its uploads failed", dead.index)
            return
        if received or interrupted:
            log.warning(
                "worker %d had %d upload(s) in flight: %d were in place (received), %d cut",
                dead.index,
                received + interrupted,
                received,
                interrupted,
            )

    # -- connections -------------------------------------------------------------------

    def hand_off_to(self, front: str) -> Callable[[socket.socket, Slot], None]:
        """The ``hand_off`` of the ``front`` listener."""
        return lambda client, slot: self._hand_off(front, client, slot)

    def _hand_off(self, front: str, client: socket.socket, slot: Slot) -> None:
        with self._lock:
            ready = [s for s in self._workers.values() if s.ready.is_set()]
            turn = next(self._turns)  # among equals, each worker in turn
            state = min(
                ready,
                key=lambda s: (len(s.slots), (s.index - turn) % self._count),
                default=None,
            )
            slot_id = next(self._ids)
            if state is not None:
                state.slots[slot_id] = (front, slot)
        if state is None:
            slot.release()
            client.close()
            log.error("%s: no worker ready: connection from %s closed", front, slot.ip)
            return
        chan = state.channel
        slot.hand_over(lambda: self._evict(chan, slot_id))
        self._instance.metrics.session_opened(front)
        message = {
            "op": "conn",
            "id": slot_id,
            "front": front,
            "ip": slot.ip,
            "network": slot.network,
            "accepted": slot.accepted,
        }
        try:
            chan.send(message, fd=client.fileno())
        except ChannelClosed:
            self._released(state, slot_id)
        finally:
            client.close()

    def _evict(self, chan: Channel, slot_id: int) -> None:
        chan.tell({"op": "evict", "id": slot_id})

    def _released(self, state: WorkerState, slot_id: int) -> None:
        with self._lock:
            held = state.slots.pop(slot_id, None)
        if held is not None:
            front, slot = held
            self._instance.metrics.session_closed(front)
            slot.release()

    # -- the workers' messages -----------------------------------------------------------

    def _handle(self, state: WorkerState, message: Message) -> Any:
        """One message of ``state``'s worker; for a call, the answer."""
        op = message.get("op")
        guard = self._instance.guard
        if op == "ready":
            state.ready.set()
        elif op == "logged_in":
            with self._lock:
                held = state.slots.get(int(message["id"]))
            if held is not None:
                held[1].logged_in()
        elif op == "released":
            self._released(state, int(message["id"]))
        elif op == "login_failed":
            guard.login_failed(
                str(message["ip"]),
                str(message["protocol"]),
                int(message["cost"]),
                account=message.get("account"),
            )
        elif op == "ended":
            guard.ended_before_login(
                str(message["ip"]),
                str(message["protocol"]),
                str(message["reason"]),
                bool(message["evicted"]),
            )
        elif op == "banned":
            return guard.banned(str(message["ip"]))
        elif op == "account_delay":
            return guard.account_delay(str(message["account"]))
        elif op in BUDGET_OPS:
            return self._budget(state, op, message)
        return None

    def _budget(self, state: WorkerState, op: str, message: Message) -> Any:
        """The worker's budget question, answered and counted against it, so that what a
        dead worker held (open files, quota leases) is given back (``_ended``)."""
        budget = self._instance.budget
        account = str(message["account"])
        if op == "open_file":
            taken = budget.open_file(account)
            if taken:
                state.open_files[account] += 1
            return taken
        if op == "close_file":
            if state.open_files[account] > 0:
                state.open_files[account] -= 1
                budget.close_file(account)
        elif op == "measure":
            budget.measure(account, str(message["owner"]), str(message["area"]))
        elif op == "arrive":
            grown = int(message["grown"])
            refusal = budget.arrive(account, grown)
            if refusal is None:
                state.arriving[account] += grown
            return refusal
        elif op == "settle":
            arrived, unused = int(message["arrived"]), int(message["unused"])
            budget.settle(account, arrived, bool(message["kept"]))
            budget.settle(account, unused, False)
            state.arriving[account] = max(0, state.arriving[account] - arrived - unused)
        return None

    # -- what the supervisor shows -------------------------------------------------------

    def samples(self) -> list[Sample]:
        """Every worker's metrics (``Metrics.add_peers``)."""
        with self._lock:
            states = [s for s in self._workers.values() if s.ready.is_set()]
        found: list[Sample] = []
        for state in states:
            try:
                rows = state.channel.call("metrics", timeout=5.0)
            except ChannelClosed:
                continue
            for name, labels, value in rows:
                found.append(
                    Sample(str(name), float(value), tuple((str(k), str(v)) for k, v in labels))
                )
        return found

    def describe(self) -> list[dict[str, Any]]:
        """Each worker for ``state/serve.json``: index, pid, connections, start, restarts."""
        with self._lock:
            states = sorted(self._workers.values(), key=lambda s: s.index)
            return [
                {
                    "index": s.index,
                    "pid": s.pid,
                    "connections": len(s.slots),
                    "started": isoformat(s.started_at),
                    "restarts": self._restarts.get(s.index, 0),
                }
                for s in states
            ]
