"""The gauges ``serve`` computes at each scrape: catalog, forward queue, disk, last sweep.

Rules:
- Read from the same places as ``intake status`` (``intake.services.health.status``), so the
  two never disagree; each collector is cheap (one indexed query, one ``statvfs``, one
  small file) because a scraper may call every few seconds.
- A collector reads in the caller's thread: the catalog gives each thread its own
  connection, so the metrics endpoint runs in one thread only (not one per request).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from intake.adapters.catalog.catalog import Catalog
from intake.core.clock import Clock
from intake.core.config import Config
from intake.services.health import status as health
from intake.services.metrics import Metrics, Sample
from intake.services.status_files import LAST_SWEEP_NAME, read_json


def register(metrics: Metrics, cfg: Config, catalog: Catalog, clock: Clock) -> None:
    """Add the instance's collectors to ``metrics`` (once, at serve start)."""

    def catalog_gauges() -> Iterator[Sample]:
        for state, count in catalog.counts_by_state().items():
            yield Sample.of("intake_catalog_entries", count, state=state)
        pending, oldest = catalog.forward_queue()
        yield Sample.of("intake_forward_queue", pending)
        age = (clock.now() - oldest).total_seconds() if oldest else 0.0
        yield Sample.of("intake_forward_queue_oldest_seconds", max(0.0, age))

    def disk_gauges() -> Iterator[Sample]:
        space = health.disk_space(cfg)
        yield Sample.of("intake_disk_free_bytes", space.free)
        yield Sample.of("intake_disk_reserve_bytes", space.reserve)

    def sweep_gauges() -> Iterator[Sample]:
        doc = read_json(cfg.state_dir / LAST_SWEEP_NAME)
        if doc is None:
            return
        for name, key in (
            ("intake_sweep_duration_seconds", "duration"),
            ("intake_sweep_last_timestamp_seconds", "ended_at"),
        ):
            if isinstance(doc.get(key), int | float):
                yield Sample.of(name, doc[key])
        yield Sample.of("intake_sweep_last_success", 1 if doc.get("ok") else 0)

    def alert_gauges() -> Iterator[Sample]:
        yield Sample.of("intake_alerts_queued", health.alerts_status(cfg)["queued"])

    metrics.set("intake_start_time_seconds", time.time())
    metrics.add_collector("catalog", catalog_gauges)
    metrics.add_collector("disk", disk_gauges)
    metrics.add_collector("sweep", sweep_gauges)
    metrics.add_collector("alerts", alert_gauges)
