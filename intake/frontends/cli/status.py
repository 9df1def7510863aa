"""``intake status [--json]``: the instance's health, for an operator or a monitoring probe.

Rules:
- Exit 0 when healthy, 1 when degraded (each problem one line, in the text and in
  ``problems`` of the JSON), 2 on bad usage. Nagios/Zabbix run it as is.
- Read-only: nothing is started, repaired or written (see ``intake.services.health.status``).
- ``--json`` prints one object: ``healthy``, ``problems``, ``serve``, ``sessions_open``,
  ``sweep``, ``forwards``, ``disk``, ``audit``, ``alerts``, ``catalog`` (times ISO-8601
  UTC, sizes in bytes; ``sweep`` is null before the first sweep, ``sessions_open`` while
  serve is not running; ``serve.workers`` lists the worker processes of a running serve:
  ``index``, ``pid``, ``connections``, ``started``, ``restarts``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from intake.adapters.audit.writer import display
from intake.frontends.cli import common
from intake.frontends.cli.catalog import human_size
from intake.services.health import status as health_mod


def _serve_line(serve: dict[str, Any]) -> str:
    state = serve["state"]
    where = ", ".join(f"{name} {addr}" for name, addr in sorted(serve["listening"].items()))
    if state == "stopped":
        since = f" since {serve['stopped_at']}" if serve.get("stopped_at") else ""
        return f"NOT RUNNING{since}"
    text = f"{state}, pid {serve['pid']}"
    if serve.get("started_at"):
        text += f", since {serve['started_at']}"
    workers = serve.get("workers")
    if workers:
        each = ", ".join(f"pid {w['pid']} {w['connections']} conn." for w in workers)
        text += f"; {len(workers)} workers ({each})"
    return f"{text}; {where}" if where else text


def _sweep_line(sweep: dict[str, Any] | None) -> str:
    if sweep is None:
        return "never (intake-sweep.timer or [sweeper] interval runs it)"
    result = "ok" if sweep["ok"] else "FAILED"
    duration = sweep.get("duration")
    took = f" in {duration:.1f} s" if isinstance(duration, int | float) else ""
    return (
        f"{sweep['ended_at']}, {result}{took}: {sweep['destroyed']} destroyed,"
        f" {sweep['forwarded']} forwarded, {sweep['waiting']} waiting,"
        f" {sweep['failures']} failure(s)"
    )


def _forwards_line(forwards: dict[str, Any]) -> str:
    text = f"{forwards['pending']} pending"
    if forwards["oldest"]:
        text += f", oldest received {forwards['oldest']}"
    text += f"; vendor {forwards['vendor']}" if forwards["vendor"] else "; vendor not configured"
    if forwards["retrying"]:
        text += f"; {forwards['retrying']} retrying (last error: {forwards['last_error']})"
    return text


def _disk_line(disk: dict[str, Any]) -> str:
    text = f"{human_size(disk['free'])} free of {human_size(disk['total'])} on {disk['path']}"
    return f"{text} (reserve {human_size(disk['reserve'])})"


def _audit_line(audit: dict[str, Any] | None) -> str:
    if audit is None:
        return "chain head not available"
    head = audit.get("head") or {}
    checkpoint = audit.get("checkpoint") or {}
    text = f"head seq {head.get('seq', '?')}"
    if head.get("hash"):
        text += f" ({str(head['hash'])[:16]}...)"
    if checkpoint:
        text += f"; last checkpoint seq {checkpoint.get('seq', '?')} at {checkpoint.get('ts', '?')}"
    else:
        text += "; no checkpoint yet"
    return text


def _alerts_line(alerts: dict[str, Any]) -> str:
    text = f"{alerts['queued']} queued"
    if alerts["oldest"]:
        text += f", oldest {alerts['oldest']}"
    return text if alerts["configured"] else f"{text} (off: set [alerts] smtp_host or command)"


def _sessions_line(sessions: dict[str, int] | None) -> str:
    if sessions is None:
        return "-"
    total = sum(sessions.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(sessions.items()))
    return f"{total} open" + (f" ({detail})" if detail else "")


def render_text(doc: dict[str, Any]) -> str:
    catalog = ", ".join(f"{n} {state}" for state, n in doc["catalog"].items())
    rows = [
        ("serve", _serve_line(doc["serve"])),
        ("sessions", _sessions_line(doc["sessions_open"])),
        ("last sweep", _sweep_line(doc["sweep"])),
        ("forwards", _forwards_line(doc["forwards"])),
        ("disk", _disk_line(doc["disk"])),
        ("audit", _audit_line(doc["audit"])),
        ("alerts", _alerts_line(doc["alerts"])),
        ("catalog", catalog),
    ]
    verdict = "healthy" if doc["healthy"] else f"DEGRADED ({len(doc['problems'])} problem(s))"
    lines = [f"intake {display(doc['instance'])}: {verdict}"]
    lines += [f"  {label:<11} {display(value)}" for label, value in rows]
    lines += [f"  problem: {display(p)}" for p in doc["problems"]]
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    inst = common.open_instance(args)
    try:
        health = health_mod.check(inst.config, inst.catalog, inst.clock.now(), time.time())
    finally:
        inst.close()
    if args.json:
        print(json.dumps(health.doc, indent=2, ensure_ascii=True))
    else:
        print(render_text(health.doc))
    return 0 if health.healthy else 1


def register(sub: Any, add: common.Add) -> None:
    p = add(sub, "status", cmd_status, "health: exit 0 healthy, 1 degraded")
    p.add_argument("--json", action="store_true")
