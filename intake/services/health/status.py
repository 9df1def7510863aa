"""``intake status``: is the instance healthy, and if not, what is wrong.

One read-only look at an instance from outside the server: the state files ``serve``
and the sweeps leave (``status_files``), the catalog, the disk, the retry book, the
audit chain and the alert queue. Nothing here writes.

Rules:
- Healthy means: ``serve`` is running and refreshing its status, the last sweep (if any)
  succeeded and is recent, no forward keeps failing, no outbox file waits too long for
  a configured vendor, and the data volume has more free space than the reserve.
  Each breach is one ``problem`` line an operator can act on; any problem = degraded.
- "Recent" for a sweep: within twice ``[sweeper] interval`` (or two days when the
  nightly timer sweeps) plus an hour; an instance that never swept is not degraded.
- The parts other modules own are read through one function each: ``audit_chain``
  (head and last checkpoint, read not verified), ``alerts_status`` (the alert queue; an
  alert undelivered for 15 minutes is a problem) and ``disk_space`` (free space against
  ``limits.min_free_space``).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from intake.adapters.alerting.queue import queue_status
from intake.adapters.audit.chain import chain_state
from intake.adapters.catalog.catalog import Catalog
from intake.adapters.diskspace import DiskReserve, DiskSpace
from intake.core.clock import isoformat, parse_iso
from intake.core.config import Config
from intake.services.status_files import (
    LAST_SWEEP_NAME,
    SERVE_NAME,
    pid_alive,
    read_json,
    serve_lock_holder,
)
from intake.services.sweeper.retry import RetryBook

PUBLISH_SECONDS = 5  # serve rewrites state/serve.json this often
STALE_SECONDS = 30  # ... and is "not responding" when it has not for this long
FORWARD_FAILING_ATTEMPTS = 3  # a forward failing this many times in a row is a problem
FORWARD_LATE_SECONDS = 24 * 3600  # an outbox file waiting longer (vendor configured) is one
NIGHTLY = 24 * 3600
ALERT_LATE_SECONDS = 15 * 60  # an alert still queued after this is a problem


@dataclass
class Health:
    """The whole status: ``doc`` for ``--json``, ``problems`` for the exit code."""

    doc: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def _when(seconds: object) -> str | None:
    if not isinstance(seconds, int | float):
        return None
    return isoformat(_dt.datetime.fromtimestamp(seconds, _dt.UTC))


def _serve(cfg: Config, wall: float, health: Health) -> dict[str, Any]:
    doc = read_json(cfg.state_dir / SERVE_NAME) or {}
    pid = doc.get("pid")
    lock_pid = serve_lock_holder(cfg.state_dir)
    alive = pid_alive(pid) and doc.get("state") == "running"
    section: dict[str, Any] = {
        "state": "stopped",
        "pid": None,
        "started_at": _when(doc.get("started_at")),
        "updated_at": _when(doc.get("updated_at")),
        "listening": doc.get("listening") or {},
        "sessions_open": None,
    }
    if alive:
        age = wall - float(doc.get("updated_at") or 0)
        section.update(pid=pid, sessions_open=doc.get("sessions_open") or {})
        workers = doc.get("workers")
        if isinstance(workers, list):
            section["workers"] = workers
            wanted = cfg.server.worker_count()
            if len(workers) < wanted:
                health.problems.append(
                    f"serve runs {len(workers)} of its {wanted} worker processes "
                    "(a worker ended and is being started again)"
                )
        if age <= STALE_SECONDS:
            section["state"] = "running"
        else:
            section["state"] = "not responding"
            health.problems.append(
                f"serve (pid {pid}) has not refreshed its status for {int(age)} s: hung?"
            )
        return section
    if lock_pid is not None:
        section.update(state="running", pid=lock_pid)
        return section
    if doc.get("state") == "running":
        health.problems.append(f"serve is not running (pid {pid} ended without stopping)")
    else:
        health.problems.append("serve is not running")
    section["stopped_at"] = _when(doc.get("stopped_at"))
    return section


def _sweep(cfg: Config, wall: float, health: Health) -> dict[str, Any] | None:
    doc = read_json(cfg.state_dir / LAST_SWEEP_NAME)
    if doc is None:
        return None
    ended = doc.get("ended_at")
    section = {
        "ended_at": _when(ended),
        "duration": doc.get("duration"),
        "ok": bool(doc.get("ok")),
        "error": doc.get("error"),
        "destroyed": doc.get("destroyed", 0),
        "forwarded": doc.get("forwarded", 0),
        "waiting": doc.get("waiting", 0),
        "failures": doc.get("failures", 0),
    }
    if not section["ok"]:
        detail = doc.get("error") or f"{section['failures']} failure(s)"
        health.problems.append(f"the last sweep failed: {detail} (see intake audit show)")
    expected = cfg.sweeper.interval or NIGHTLY
    if isinstance(ended, int | float) and wall - ended > 2 * expected + 3600:
        hours = (wall - ended) / 3600
        health.problems.append(
            f"no sweep for {hours:.0f} h (is intake-sweep.timer or [sweeper] interval on?)"
        )
    return section


def _forwards(cfg: Config, catalog: Catalog, now: _dt.datetime, health: Health) -> dict[str, Any]:
    pending, oldest = catalog.forward_queue()
    book = RetryBook.of_state(cfg.state_dir)
    failing = [r for r in book.items.values() if r.attempts >= FORWARD_FAILING_ATTEMPTS]
    section: dict[str, Any] = {
        "vendor": f"{cfg.vendor.host}:{cfg.vendor.port}" if cfg.vendor.host else None,
        "pending": pending,
        "oldest": isoformat(oldest) if oldest else None,
        "retrying": len(book.items),
        "last_error": max(book.items.values(), key=lambda r: r.attempts).error
        if book.items
        else None,
    }
    if failing:
        health.problems.append(
            f"{len(failing)} forward(s) failed {FORWARD_FAILING_ATTEMPTS}+ times in a row:"
            f" {section['last_error']}"
        )
    elif cfg.vendor.host and oldest and (now - oldest).total_seconds() > FORWARD_LATE_SECONDS:
        health.problems.append(
            f"an outbox file has waited for the vendor since {isoformat(oldest)}"
        )
    return section


def disk_space(cfg: Config) -> DiskSpace:
    """Free space on ``data/`` and the reserve uploads leave (``limits.min_free_space``)."""
    return DiskReserve(cfg.data_dir, cfg.limits.min_free_space).measure()


def _disk(cfg: Config, health: Health) -> dict[str, Any]:
    space = disk_space(cfg)
    if space.low:
        health.problems.append(
            f"disk: {space.free} bytes free on {cfg.data_dir}, below the reserve of"
            f" {space.reserve} (limits.min_free_space): uploads are refused"
        )
    return {
        "path": str(cfg.data_dir),
        "free": space.free,
        "total": space.total,
        "reserve": space.reserve,
    }


def audit_chain(cfg: Config) -> dict[str, Any] | None:
    """The audit chain's head and last signed checkpoint (read, not verified: that is
    ``intake audit verify``'s job)."""
    state = chain_state(cfg.log_dir)
    checkpoint = state.checkpoint
    return {
        "head": {"seq": state.seq, "hash": state.hash, "file": state.file},
        "checkpoint": None
        if checkpoint is None
        else {"seq": checkpoint.seq, "head": checkpoint.head, "ts": checkpoint.ts},
    }


def alerts_status(cfg: Config) -> dict[str, Any]:
    """The alert queue: how many wait to be delivered, since when."""
    queue = queue_status(cfg.state_dir)
    return {
        "configured": bool(cfg.alerts.smtp_host or cfg.alerts.command),
        "queued": queue.count,
        "oldest": isoformat(queue.oldest) if queue.oldest else None,
        "unreadable": queue.bad,
    }


def _alerts(cfg: Config, now: _dt.datetime, health: Health) -> dict[str, Any]:
    section = alerts_status(cfg)
    oldest = section["oldest"]
    if oldest and (now - parse_iso(oldest)).total_seconds() > ALERT_LATE_SECONDS:
        health.problems.append(
            f"{section['queued']} alert(s) undelivered since {oldest}: is the mail server"
            " (or the alert command) working? (intake alert test)"
        )
    if section["unreadable"]:
        health.problems.append(f"{section['unreadable']} unreadable alert file(s) in state/alerts")
    return section


def check(cfg: Config, catalog: Catalog, now: _dt.datetime, wall: float) -> Health:
    """The status of the instance of ``cfg``; ``wall`` is the Unix time (state files use it)."""
    health = Health()
    serve = _serve(cfg, wall, health)
    health.doc = {
        "instance": str(cfg.root),
        "checked_at": isoformat(now),
        "serve": serve,
        "sessions_open": serve.pop("sessions_open"),
        "sweep": _sweep(cfg, wall, health),
        "forwards": _forwards(cfg, catalog, now, health),
        "disk": _disk(cfg, health),
        "audit": audit_chain(cfg),
        "alerts": _alerts(cfg, now, health),
        "catalog": catalog.counts_by_state(),
    }
    health.doc["healthy"] = health.healthy
    health.doc["problems"] = list(health.problems)
    return health
