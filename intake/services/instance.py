"""Instances: which one a command uses, creating one, and opening its parts.

Rules:
- Resolution order: ``--config FILE``, else ``$INTAKE_CONFIG``, else ``./intake.toml``,
  else the embedded default instance ``./var/`` (created on first use).
- ``init`` creates what is missing and never overwrites a file: keys, config, policies.
- Opening an instance makes ``log/reports/`` if missing (the auditor's ``/audit/reports/``
  is there before the first monthly report).
- Opening an instance builds each shared part once (accounts, storage, audit, guard,
  alerts); front-ends and commands receive them, never build their own.
- The alerts dispatcher watches the audit log from the moment it is opened, in every
  process (``serve`` and each command), so no incident goes unnoticed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from intake.adapters import keys
from intake.adapters.accounts import AccountStore
from intake.adapters.audit import signing
from intake.adapters.audit.writer import AuditLog
from intake.adapters.bans import BANS_DB, BanStore
from intake.adapters.catalog.catalog import Catalog
from intake.adapters.diskspace import DiskReserve
from intake.adapters.storage import Storage
from intake.core import config as config_mod
from intake.core.clock import Clock, SystemClock
from intake.core.config import Config
from intake.core.errors import UsageError
from intake.services.access.budget import AccountBudget, Budget
from intake.services.access.guard import Guard
from intake.services.access.login import Authenticator
from intake.services.access.sessions import Sessions
from intake.services.alerts.alerter import Alerts
from intake.services.documents.receipts import Receipts
from intake.services.files import FileEvents
from intake.services.metrics import Metrics

DEFAULT_INSTANCE = "var"
CONFIG_NAME = "intake.toml"
REPORTS_FOLDER = "reports"  # log/reports/: the auditor's /audit/reports/, there from the start


def shipped_policies_dir() -> Path:
    """The policies shipped with intake: in the wheel, or the repository's ``policies/``."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_shipped" / "policies", package.parent / "policies"):
        if candidate.is_dir():
            return candidate
    raise UsageError("the shipped policies are missing from this installation")


@dataclass(frozen=True)
class InitResult:
    root: Path
    created: list[Path]


def init_instance(root: Path, clock: Clock, hostname: str = "localhost") -> InitResult:
    """Create (or complete) an instance at ``root``; existing files are left untouched."""
    created: list[Path] = []
    root.mkdir(parents=True, exist_ok=True)
    for sub, mode in (
        ("keys", 0o700),
        ("policies", 0o755),
        ("data", 0o750),
        ("state", 0o700),
        ("log", 0o750),
    ):
        path = root / sub
        if not path.exists():
            path.mkdir(mode=mode)
            created.append(path)
    config_file = root / CONFIG_NAME
    if not config_file.exists():
        text = config_mod.TEMPLATE.replace('hostname = "localhost"', f'hostname = "{hostname}"', 1)
        fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        created.append(config_file)
    cfg = config_mod.load(config_file)
    created += keys.ensure_host_keys(cfg.keys_dir)
    created += keys.ensure_tls_certificate(cfg.keys_dir, cfg.server.hostname, clock.now())
    created += signing.ensure_audit_key(cfg.keys_dir)
    for policy in sorted(shipped_policies_dir().glob("*.toml")):
        target = cfg.policies_dir / policy.name
        if not target.exists():
            shutil.copyfile(policy, target)
            created.append(target)
    Storage(cfg.data_dir, cfg.log_dir)  # lays out data/members, data/outbox, data/.staging
    return InitResult(root, created)


def resolve_config_file(explicit: str | None, environ: dict[str, str], cwd: Path) -> Path | None:
    """The config file a command uses, or None for the embedded default instance."""
    if explicit:
        return Path(explicit)
    if environ.get("INTAKE_CONFIG"):
        return Path(environ["INTAKE_CONFIG"])
    local = cwd / CONFIG_NAME
    return local if local.exists() else None


def load_config(explicit: str | None, environ: dict[str, str], cwd: Path, clock: Clock) -> Config:
    file = resolve_config_file(explicit, environ, cwd)
    if file is None:
        root = cwd / DEFAULT_INSTANCE
        if not (root / CONFIG_NAME).exists():
            init_instance(root, clock)
        file = root / CONFIG_NAME
    return config_mod.load(file)


@dataclass
class Instance:
    """The shared parts of one open instance."""

    config: Config
    clock: Clock
    accounts: AccountStore
    storage: Storage
    audit: AuditLog
    guard: Guard
    auth: Authenticator
    catalog: Catalog
    budget: AccountBudget
    alerts: Alerts
    listeners: list[FileEvents] = field(default_factory=list)
    receipts: Receipts | None = None  # members' ``/.receipts/``
    metrics: Metrics = field(default_factory=Metrics)
    sessions: Sessions = field(default_factory=Sessions)
    closed: bool = False

    def close(self) -> None:
        """Close once: the audit log signs what this process wrote (a clean stop)."""
        if self.closed:
            return
        self.closed = True
        self.audit.close()
        self.catalog.close()


def open_instance(cfg: Config, clock: Clock) -> Instance:
    for sub in (cfg.state_dir, cfg.log_dir, cfg.data_dir):
        if not sub.is_dir():
            raise UsageError(
                f"{cfg.root}: not an intake instance (no {sub.name}/); run intake init"
            )
    with contextlib.suppress(OSError):  # the auditor's ``ls /audit/reports`` works at once
        (cfg.log_dir / REPORTS_FOLDER).mkdir(mode=0o750, exist_ok=True)
    accounts = AccountStore(cfg.state_dir / "accounts.db", clock)
    # The audit trail says when things were written, whatever clock a run simulates
    # (``sweep --now``): its files stay in time order and never name a future month.
    audit = AuditLog(
        cfg.log_dir,
        SystemClock(),
        cfg.keys_dir / signing.AUDIT_KEY_FILE,
        cfg.audit.checkpoint_every,
        cfg.audit.checkpoint_interval,
    )
    guard = Guard(cfg.limits, clock, audit, BanStore(cfg.state_dir / BANS_DB))
    storage = Storage(cfg.data_dir, cfg.log_dir)
    catalog = Catalog(cfg.state_dir / "catalog.db", clock, storage.data_dir)
    metrics = Metrics()
    audit.observe(metrics.observe_audit)
    alerts = Alerts(cfg, audit, SystemClock())
    audit.observe(alerts.observe)
    return Instance(
        config=cfg,
        clock=clock,
        accounts=accounts,
        storage=storage,
        audit=audit,
        guard=guard,
        auth=Authenticator(accounts, guard, audit),
        catalog=catalog,
        receipts=Receipts(cfg, catalog),
        metrics=metrics,
        budget=Budget(
            cfg.limits, DiskReserve(cfg.data_dir, cfg.limits.min_free_space), catalog.usage
        ),
        alerts=alerts,
    )
