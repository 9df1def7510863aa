"""The metrics of one process: one registry, fed from few places, rendered for Prometheus.

Rules:
- Every metric is declared once in ``DECLARED`` (name, type, help); using an undeclared
  name is a programming error (``KeyError``), so no metric appears by accident.
- Counters are fed from the audit stream (``observe_audit``, the one subscriber of
  ``AuditLog``): what the audit log says happened is what the counters count, and no
  front-end increments a counter of its own. Sessions open are counted by the listener
  (``session_opened``/``session_closed``), the only thing the audit log does not say.
- Gauges that describe state outside the process (catalog counts, forward queue, disk
  free, last sweep) are computed when scraped, by the collectors ``serve`` registers
  (``add_collector``); a failing collector drops its samples and sets
  ``intake_collector_errors_total``, never the scrape.
- With worker processes, the supervisor's registry adds every worker's samples to its
  own (``add_peers``): a counter is the sum over the processes of the service.
- The rendering is the Prometheus text exposition format 0.0.4: ``# HELP``, ``# TYPE``,
  then ``name{label="value"} number`` lines; label values escaped (backslash, quote,
  newline). Label values come from our own vocabulary (protocols, states, results).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DECLARED: dict[str, tuple[str, str]] = {
    "intake_uploads_total": ("counter", "Uploads received whole, by protocol."),
    "intake_upload_bytes_total": ("counter", "Bytes of uploads received whole, by protocol."),
    "intake_uploads_interrupted_total": ("counter", "Uploads cut before the close, by protocol."),
    "intake_downloads_total": ("counter", "Files downloaded, by protocol."),
    "intake_logins_total": ("counter", "Successful logins, by protocol."),
    "intake_login_failures_total": ("counter", "Failed logins, by protocol."),
    "intake_bans_total": ("counter", "Addresses banned after failed logins, by protocol."),
    "intake_denied_total": ("counter", "Operations refused to a client, by protocol."),
    "intake_sessions_total": ("counter", "Connections admitted, by protocol."),
    "intake_sessions_open": ("gauge", "Connections open now, by protocol."),
    "intake_integrity_events_total": (
        "counter",
        "Catalogued files found vanished or altered (event label).",
    ),
    "intake_forward_results_total": ("counter", "Forwards to the vendor, by result."),
    "intake_sweeps_total": ("counter", "Sweeps run by this process, by result."),
    "intake_sweep_duration_seconds": ("gauge", "Duration of the last sweep (any process)."),
    "intake_sweep_last_timestamp_seconds": ("gauge", "When the last sweep ended (Unix time)."),
    "intake_sweep_last_success": ("gauge", "1 if the last sweep had no failure, else 0."),
    "intake_catalog_entries": ("gauge", "Catalog entries, by state."),
    "intake_forward_queue": ("gauge", "Outbox files waiting to be forwarded to the vendor."),
    "intake_forward_queue_oldest_seconds": (
        "gauge",
        "Age of the oldest outbox file waiting to be forwarded (0 if none).",
    ),
    "intake_disk_free_bytes": ("gauge", "Free bytes on the data volume (for the service user)."),
    "intake_disk_reserve_bytes": ("gauge", "The free space uploads must leave (min_free_space)."),
    "intake_alerts_queued": ("gauge", "Alerts waiting to be delivered."),
    "intake_start_time_seconds": ("gauge", "When this serve process started (Unix time)."),
    "intake_collector_errors_total": ("counter", "Scrapes where a collector failed, by name."),
}

# audit event -> (counter, how much: 1 or the record's field named here)
_AUDIT_COUNTERS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "upload.complete": (("intake_uploads_total", None), ("intake_upload_bytes_total", "size")),
    "upload.interrupted": (("intake_uploads_interrupted_total", None),),
    "download": (("intake_downloads_total", None),),
    "login.ok": (("intake_logins_total", None),),
    "login.failed": (("intake_login_failures_total", None),),
    "banned": (("intake_bans_total", None),),
    "denied": (("intake_denied_total", None),),
}
_PROTOCOLS = frozenset({"sftp", "ftps", "cli", "sweeper"})

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: a declared name, its labels, a value."""

    name: str
    value: float
    labels: Labels = ()

    @staticmethod
    def of(name: str, value: float, **labels: str) -> Sample:
        if name not in DECLARED:
            raise KeyError(f"undeclared metric {name!r}")
        return Sample(name, float(value), tuple(sorted(labels.items())))


Collector = Callable[[], Iterable[Sample]]


class Metrics:
    """The registry: counters and gauges held here, plus collectors read at each scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, Labels], float] = {}
        self._collectors: list[tuple[str, Collector]] = []
        self._peers: Collector | None = None

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (Sample.of(name, 0, **labels).name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        sample = Sample.of(name, value, **labels)
        with self._lock:
            self._values[(sample.name, sample.labels)] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The held value (0 when never set); collectors are not consulted."""
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str) -> float:
        """The sum of a held metric over all its labels."""
        with self._lock:
            return sum(v for (n, _), v in self._values.items() if n == name)

    # -- the few feeding points ------------------------------------------------------------

    def observe_audit(self, event: str, fields: Mapping[str, Any]) -> None:
        """The audit log's subscriber: count what was recorded."""
        protocol = str(fields.get("protocol") or "")
        labels = {"protocol": protocol if protocol in _PROTOCOLS else "other"}
        for name, field_name in _AUDIT_COUNTERS.get(event, ()):
            amount = 1
            if field_name is not None:
                raw = fields.get(field_name)
                amount = raw if isinstance(raw, int) and raw >= 0 else 0
            self.inc(name, amount, **labels)
        if event in ("vanished", "altered"):
            self.inc("intake_integrity_events_total", event=event)
        elif event == "forwarded":
            self.inc("intake_forward_results_total", result="ok")
        elif event == "forward.failed":
            self.inc("intake_forward_results_total", result="failed")

    def session_opened(self, protocol: str) -> None:
        with self._lock:
            for name, delta in (("intake_sessions_total", 1), ("intake_sessions_open", 1)):
                key = (name, (("protocol", protocol),))
                self._values[key] = self._values.get(key, 0.0) + delta

    def session_closed(self, protocol: str) -> None:
        self.inc("intake_sessions_open", -1, protocol=protocol)

    def sessions_open(self) -> dict[str, int]:
        with self._lock:
            return {
                dict(labels)["protocol"]: int(v)
                for (n, labels), v in self._values.items()
                if n == "intake_sessions_open"
            }

    def add_collector(self, name: str, collector: Collector) -> None:
        """``collector`` is called at every scrape for fresh gauge samples."""
        with self._lock:
            self._collectors.append((name, collector))

    def add_peers(self, peers: Collector) -> None:
        """``peers`` gives the samples of the other processes of the service (the worker
        processes): at each scrape each is added to this registry's sample of the same
        name and labels (counters and open sessions sum over processes)."""
        self._peers = peers

    # -- reading --------------------------------------------------------------------------

    def samples(self) -> list[Sample]:
        with self._lock:
            held = [Sample(n, v, labels) for (n, labels), v in self._values.items()]
            collectors = list(self._collectors)
        for name, collector in collectors:
            try:
                held.extend(collector())
            except Exception:
                self.inc("intake_collector_errors_total", collector=name)
                held.append(
                    Sample(
                        "intake_collector_errors_total",
                        self.value("intake_collector_errors_total", collector=name),
                        (("collector", name),),
                    )
                )
        if self._peers is None:
            return held
        try:
            theirs = list(self._peers())
        except Exception:
            self.inc("intake_collector_errors_total", collector="workers")
            theirs = []
        summed: dict[tuple[str, Labels], float] = {}
        for sample in held:  # this process's own: one value per key (the last read)
            summed[(sample.name, sample.labels)] = sample.value
        for sample in theirs:
            key = (sample.name, sample.labels)
            summed[key] = summed.get(key, 0.0) + sample.value
        return [Sample(name, value, labels) for (name, labels), value in summed.items()]

    def render(self) -> str:
        return render(self.samples())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def render(samples: Iterable[Sample]) -> str:
    """The text exposition format: one HELP and TYPE per metric, samples grouped under it."""
    grouped: dict[str, dict[Labels, float]] = {}
    for sample in samples:
        grouped.setdefault(sample.name, {})[sample.labels] = sample.value
    lines: list[str] = []
    for name in sorted(grouped):
        kind, help_text = DECLARED[name]
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in sorted(grouped[name].items()):
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(
                f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"
