"""Group commit: which of one process's audit records are durable (``chain.ChainWriter``).

Every record a process writes to the log gets a ticket, 1, 2, 3... in write order (per
process: a forked child starts its own ``Tickets``). A record is durable once an fsync that
started after it was written returned without error. One fsync at a time runs per process
(the "syncer"); the records written while it runs wait for the next one, so a burst of
records costs a few fsyncs instead of one each: the grouping.

Rules:
- ``issue`` runs under the writer's mutex, right after the record's ``os.write``: tickets
  follow the file's order, and an fsync whose target was taken (``begin``) after ticket T
  was issued covers every ticket up to T (they are on the same open file: the writer
  settles every ticket before it closes or changes its file).
- Outcomes are settled in ticket order (``settled``): ``finish`` after a successful fsync
  settles up to its target; after a failed one it fails every ticket issued so far (more
  than its target: after an fsync error, Linux may have dropped pages that a record written
  meanwhile shares, and a later fsync may succeed without writing them), and that range
  stays failed: a later success never covers it.
- A caller asks ``failure(since, ticket)``: the reason if any ticket in ``(since,
  ticket]`` failed. At most ``MAX_RANGES`` failed ranges are kept; beyond that the two
  oldest merge into one (more tickets count as failed, never fewer: fail closed).
- Lock order: the writer's mutex (then its ``flock``), then this condition's lock, which
  is innermost: nothing takes the mutex or the ``flock`` while holding it. ``begin`` and
  ``issue`` are called under the mutex; waiting (``wait``) may hold the mutex too (a
  checkpoint, a file change), since the syncer in flight never takes the mutex between
  ``begin`` and ``finish``.
"""

from __future__ import annotations

import threading

MAX_RANGES = 64


class Tickets:
    """The durability state of one process's records: tickets, the fsync in flight, outcomes."""

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._issued = 0
        self._settled = 0
        self._syncing = False
        self._failed: list[tuple[int, int, str]] = []  # (after, through, reason), in order

    @property
    def issued(self) -> int:
        with self._cv:
            return self._issued

    def issue(self) -> int:
        """A ticket for the record just written (the caller holds the writer's mutex)."""
        with self._cv:
            self._issued += 1
            return self._issued

    def pending(self) -> bool:
        """Is a record written and not yet settled, or an fsync in flight?"""
        with self._cv:
            return self._syncing or self._settled < self._issued

    def wait(self, ticket: int) -> bool:
        """Wait while an fsync is in flight and ``ticket`` is not settled; True once it is
        settled, False when it is not and no fsync runs (the caller may become the syncer)."""
        with self._cv:
            while self._syncing and self._settled < ticket:
                self._cv.wait()
            return self._settled >= ticket

    def begin(self) -> int | None:
        """Become the syncer (the caller holds the writer's mutex): the target ticket the
        fsync about to start covers, or None when one is in flight or nothing is unsettled."""
        with self._cv:
            if self._syncing or self._settled >= self._issued:
                return None
            self._syncing = True
            return self._issued

    def finish(self, target: int, error: str | None) -> None:
        """Publish the syncer's outcome and wake every waiter."""
        with self._cv:
            if error is None:
                self._settled = max(self._settled, target)
            elif self._issued > self._settled:
                after, through = self._settled, self._issued
                last = self._failed[-1] if self._failed else None
                if last is not None and last[1] == after:
                    self._failed[-1] = (last[0], through, error)
                else:
                    self._failed.append((after, through, error))
                if len(self._failed) > MAX_RANGES:
                    (a, _, _), (_, t, why) = self._failed[:2]
                    self._failed[:2] = [(a, t, why)]
                self._settled = through
            self._syncing = False
            self._cv.notify_all()

    def failure(self, since: int, ticket: int) -> str | None:
        """Why a ticket in ``(since, ticket]`` failed, or None if none did."""
        with self._cv:
            for after, through, reason in reversed(self._failed):
                if after < ticket and through > since:
                    return reason
                if through <= since:
                    break
            return None
