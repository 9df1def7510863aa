"""A worker process's side of what the supervisor owns: the guard, the budget, the slots.

Rules:
- The supervisor owns the one ``Guard`` (slots, waiting room, scores, blocks) and the one
  ``Budget`` (open files and quota of each account) of the service; a worker asks
  through its channel, so a limit holds over every process exactly as over every
  thread of one.
- Questions whose answer decides (``banned``, ``account_delay``, ``open_file``, a quota
  lease) are calls; a supervisor that does not answer (gone) is answered on the safe
  side: blocked, the attack delay, no file, the quota refused.
- Facts (a failure, a connection that logged in or ended, a file closed, an upload
  settled) are one-way messages, sent in order on the one channel, so the supervisor
  counts a failure before it answers this worker's next ``banned``.
- The quota is counted in leases: an upload takes ``LEASE`` bytes (or what it needs)
  from the supervisor's ``Budget`` at a time and counts its writes against its lease
  locally; the unused rest goes back when an upload of the account settles. The
  supervisor's count is therefore never below what arrived (the safe side), and at most
  one lease per account and worker above it.
- Password hashes: each worker runs at most its share of ``max_concurrent_hashes``
  (rounded up), so the whole service runs about that many.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import defaultdict
from collections.abc import Iterator

from intake.adapters.diskspace import DiskReserve, DiskSpace
from intake.core.config import LimitsSection
from intake.frontends.daemon.channel import Channel, ChannelClosed
from intake.services.access.budget import Budget
from intake.services.access.guard import Cost, Slot

LEASE = 4 << 20  # bytes of quota an upload takes from the supervisor at a time


class RemoteGate:
    """``Gate`` for a worker: the supervisor's guard answers."""

    def __init__(self, channel: Channel, limits: LimitsSection, workers: int) -> None:
        self._channel = channel
        self._limits = limits
        self._hashing = threading.BoundedSemaphore(
            max(1, math.ceil(limits.max_concurrent_hashes / max(1, workers)))
        )

    def banned(self, ip: str) -> bool:
        try:
            return bool(self._channel.call("banned", ip=ip))
        except ChannelClosed:
            return True

    def account_delay(self, account: str) -> float:
        try:
            return float(self._channel.call("account_delay", account=account))
        except ChannelClosed:
            return float(self._limits.account_attack_delay)

    @contextlib.contextmanager
    def hashing(self) -> Iterator[None]:
        with self._hashing:
            yield

    def login_failed(
        self, ip: str, protocol: str, cost: int = Cost.AUTHFAIL, account: str | None = None
    ) -> None:
        fields = {"ip": ip, "protocol": protocol, "cost": int(cost), "account": account}
        self._channel.tell({"op": "login_failed", **fields})

    def ended_before_login(self, ip: str, protocol: str, reason: str, evicted: bool) -> None:
        fields = {"ip": ip, "protocol": protocol, "reason": reason, "evicted": evicted}
        self._channel.tell({"op": "ended", **fields})


class RemoteSlots:
    """The ``SlotKeeper`` of the slots a worker serves: it tells the supervisor."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._slots: dict[int, Slot] = {}
        self._ids: dict[int, int] = {}  # id(slot) -> the supervisor's slot id

    def add(self, slot_id: int, slot: Slot) -> None:
        with self._lock:
            self._slots[slot_id] = slot
            self._ids[id(slot)] = slot_id

    def evict(self, slot_id: int) -> None:
        """The supervisor evicts it: marked first, then its connection is shut."""
        with self._lock:
            slot = self._slots.get(slot_id)
        if slot is not None:
            slot.evicted = True
            slot.evict()

    def count(self) -> int:
        with self._lock:
            return len(self._slots)

    def slot_logged_in(self, slot: Slot) -> None:
        if slot.authenticated:
            return
        slot.authenticated = True
        with self._lock:
            slot_id = self._ids.get(id(slot))
        if slot_id is not None:
            self._channel.tell({"op": "logged_in", "id": slot_id})

    def slot_released(self, slot: Slot) -> None:
        with self._lock:
            slot_id = self._ids.pop(id(slot), None)
            if slot_id is not None:
                self._slots.pop(slot_id, None)
        if slot_id is not None:
            self._channel.tell({"op": "released", "id": slot_id})


class RemoteBudget:
    """``AccountBudget`` for a worker: the supervisor's ``Budget`` counts, the disk
    reserve is measured here (the disk is the same for every process)."""

    def __init__(self, channel: Channel, local: Budget) -> None:
        self._channel = channel
        self._local = local
        self.limits = local.limits
        self.reserve: DiskReserve | None = local.reserve
        self._lock = threading.Lock()
        self._lease: dict[str, int] = defaultdict(int)

    def open_file(self, account: str) -> bool:
        try:
            return bool(self._channel.call("open_file", account=account))
        except ChannelClosed:
            return False

    def close_file(self, account: str) -> None:
        self._channel.tell({"op": "close_file", "account": account})

    def measure(self, account: str, owner: str, area: str) -> None:
        if self.limits.account_quota:
            self._channel.tell({"op": "measure", "account": account, "owner": owner, "area": area})

    def arrive(self, account: str, grown: int) -> str | None:
        if not self.limits.account_quota or grown <= 0:
            return None
        with self._lock:
            held = self._lease[account]
            if held >= grown:
                self._lease[account] = held - grown
                return None
            need = grown - held
            for ask in dict.fromkeys((max(need, LEASE), need)):
                try:
                    refusal = self._channel.call("arrive", account=account, grown=ask)
                except ChannelClosed:
                    return "the server is stopping"
                if refusal is None:
                    self._lease[account] = held + ask - grown
                    return None
            return str(refusal)

    def settle(self, account: str, arrived: int, kept: bool) -> None:
        if not self.limits.account_quota:
            return
        with self._lock:
            unused = self._lease.pop(account, 0)
        self._channel.tell(
            {
                "op": "settle",
                "account": account,
                "arrived": arrived,
                "kept": kept,
                "unused": unused,
            }
        )

    def below_reserve(self, grown: int, now: bool = False) -> DiskSpace | None:
        return self._local.below_reserve(grown, now)
