"""Alerts: incidents become e-mails (or a command's input), at most one per kind at a time.

How an alert is raised:
- By watching the audit trail (``observe``, registered on the instance's ``AuditLog``):
  ``vanished``, ``altered``, ``banned``, ``account.attacked``; ``forward.failed`` once the
  same file has been failing for ``[alerts] forward_failing``; an upload refused or cut
  at the disk reserve (records carrying ``reserve``).
- Explicitly, for what is not an audit record: ``disk_low`` (serve's loop measures the
  free space), ``audit_verification_failed`` (``intake audit verify``), ``digest_due``.

Rules:
- ``raise_alert`` first stores the alert in the queue on disk (fsynced), then audits it
  (``alert``, ``status: raised``), then wakes the deliverer: an alert is never lost to a
  mail server that is down, a crash or a restart.
- ``deliver`` sends what is queued, grouped by key (kind, and subject when there is
  one): one message per group, and at most one per key every ``throttle`` (the rest wait
  and go out together, counted, in the next). Every configured channel (SMTP, command)
  must take a message; one that did is not asked again. A failure keeps everything
  queued and waits ``retry`` before the next try. Each message sent is
  audited (``alert``, ``status: sent``).
- ``serve`` delivers in its loop (``intake.services.alerts.loop``); a CLI command that
  raised alerts tries once before it exits (``deliver_raised``), so a nightly sweep's
  alerts go out even when ``serve`` is not running. Only one process delivers at a time.
- Nothing here ever stops what raised the alert: failures are logged, not raised.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from intake.adapters.alerting.queue import AlertQueue, Queued, QueueStatus, parse_time, queue_status
from intake.adapters.audit.writer import AuditLog
from intake.adapters.secrets import load_secret
from intake.core.alerts import Alert, Message, compose
from intake.core.clock import Clock, isoformat
from intake.core.config import Config
from intake.core.errors import IntakeError

if TYPE_CHECKING:
    from intake.adapters.alerting.smtp import SmtpSettings

__all__ = ["Alerts", "QueueStatus", "deliver_raised", "queue_status"]

log = logging.getLogger("intake.alerts")
GATHER = 5.0  # seconds an alert waits for the rest of its burst before it is sent ...
MAX_GATHER = 60.0  # ... but a burst that goes on is sent after this all the same
_FILE_EVENTS = ("vanished", "altered")
_UNSENT: set[Alerts] = set()  # raised outside serve: a command sends them before it exits


def _file_label(fields: Mapping[str, Any]) -> str:
    label = f"{fields.get('account', '?')} {fields.get('path', '?')}"
    if fields.get("entry") is not None:
        label += f" (entrée {fields['entry']})"
    return label


def _details(fields: Mapping[str, Any], *names: str) -> dict[str, str]:
    return {n: str(fields[n]) for n in names if fields.get(n) is not None}


@dataclass
class Delivery:
    """What one ``deliver`` did."""

    sent: int = 0  # messages
    alerts: int = 0  # alerts in them
    waiting: int = 0
    error: str = ""
    busy: bool = False  # another process is delivering


class Alerts:
    """The alerts of one open instance; see the module rules."""

    def __init__(self, cfg: Config, audit: AuditLog | None, clock: Clock) -> None:
        """``audit`` None: alerts are not audited (``audit verify`` found the log broken)."""
        self.cfg = cfg
        self.settings = cfg.alerts
        self.audit = audit
        self.clock = clock
        self.queue = AlertQueue(cfg.state_dir)
        self.wake = threading.Event()
        self.in_serve = False
        self._disk_alerted: _dt.datetime | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def status(self) -> QueueStatus:
        return self.queue.status()

    # -- raising ---------------------------------------------------------------------

    def raise_alert(self, alert: Alert) -> None:
        """Queue ``alert`` durably, audit it, wake the deliverer (see the rules)."""
        if not self.enabled:
            return
        try:
            self.queue.put(alert)
        except OSError as exc:
            log.error("alerts: cannot queue a %s alert: %s", alert.kind, exc)
            return
        self._audit(
            kind=alert.kind,
            status="raised",
            alert_id=alert.id,
            account=alert.details.get("account"),
            path=alert.details.get("path"),
            reason=alert.details.get("reason"),
        )
        log.warning("alert raised: %s %s", alert.kind, alert.subject or "")
        self.wake.set()
        if not self.in_serve:
            _UNSENT.add(self)

    def _audit(self, **fields: Any) -> None:
        """An ``alert`` record; an audit log that cannot be written never stops an alert."""
        if self.audit is None:
            return
        try:
            self.audit.record("alert", **fields)
        except IntakeError as exc:
            log.error("alerts: not audited: %s", exc)

    def observe(self, event: str, fields: Mapping[str, Any]) -> None:
        """The audit observer: turn the records that are incidents into alerts."""
        if not self.enabled or event == "alert":
            return
        try:
            self._observe(event, fields)
        except Exception:
            log.exception("alerts: could not handle the %s record", event)

    def _observe(self, event: str, fields: Mapping[str, Any]) -> None:
        now = self.clock.now()
        if event in _FILE_EVENTS:
            details = _details(
                fields, "account", "path", "entry", "size", "sha256", "actual_sha256", "reason"
            )
            self.raise_alert(Alert(event, now, files=(_file_label(fields),), details=details))
        elif event == "banned":
            details = _details(fields, "ip", "network", "protocol", "reason", "until")
            self.raise_alert(Alert("banned", now, details=details))
        elif event == "account.attacked":
            details = _details(
                fields, "account", "ip", "protocol", "failures", "addresses", "reason"
            )
            subject = str(fields.get("account", ""))
            self.raise_alert(Alert("account.attacked", now, subject=subject, details=details))
        elif event == "forward.failed":
            self._forward_failed(fields, now)
        elif event in ("forwarded", "destroyed") and fields.get("entry") is not None:
            self._forward_recovered(str(fields["entry"]))
        elif event in ("upload.interrupted", "denied") and "reserve" in fields:
            self.disk_low(int(fields.get("free", 0)), int(fields["reserve"]), refused=fields)

    def _forward_failed(self, fields: Mapping[str, Any], now: _dt.datetime) -> None:
        entry = fields.get("entry")
        if entry is None:
            return
        key = str(entry)
        with self.queue.changing_state() as state:
            first = parse_time(state.forwards.setdefault(key, isoformat(now))) or now
            failing = (now - first).total_seconds()
            if failing < self.settings.forward_failing or key in state.forwards_alerted:
                return
            state.forwards_alerted[key] = isoformat(now)
        details = _details(fields, "account", "path", "entry", "reason", "attempt")
        details["failing_since"] = isoformat(first)
        self.raise_alert(
            Alert("forward.failing", now, files=(_file_label(fields),), details=details)
        )

    def _forward_recovered(self, key: str) -> None:
        state = self.queue.read_state()
        if key not in state.forwards and key not in state.forwards_alerted:
            return
        with self.queue.changing_state() as changing:
            changing.forwards.pop(key, None)
            changing.forwards_alerted.pop(key, None)

    def disk_low(self, free: int, reserve: int, refused: Mapping[str, Any] | None = None) -> None:
        """The data folder is below its reserve: one alert per ``throttle`` at most (the
        queue would otherwise grow with every refused upload)."""
        now = self.clock.now()
        window = _dt.timedelta(seconds=max(self.settings.throttle, 60))
        with self._lock:
            if self._disk_alerted is not None and now - self._disk_alerted < window:
                return
            self._disk_alerted = now
        details = {"free": str(free), "reserve": str(reserve), "path": str(self.cfg.data_dir)}
        files: tuple[str, ...] = ()
        if refused is not None:
            details["reason"] = f"upload refused ({refused.get('reason', '')})"
            files = (_file_label(refused),)
        self.raise_alert(Alert("disk", now, files=files, details=details))

    def disk_ok(self) -> None:
        """The free space is back above the reserve: the next shortage alerts at once."""
        with self._lock:
            self._disk_alerted = None

    def audit_verification_failed(self, detail: str, first_bad: str = "") -> None:
        """The seam for ``intake audit verify``: its failure becomes an alert."""
        details = {"reason": detail}
        if first_bad:
            details["first_bad"] = first_bad
        self.raise_alert(Alert("audit.verify", self.clock.now(), details=details))

    # -- delivering ------------------------------------------------------------------

    def _smtp(self) -> SmtpSettings:
        return self.smtp_settings()

    def smtp_settings(self, recipients: tuple[str, ...] | None = None) -> SmtpSettings:
        """``[alerts]``' SMTP settings, to the on-call ``recipients`` unless others are given
        (the audit head's ``[audit] head_recipients``)."""
        from intake.adapters.alerting.smtp import SmtpSettings  # smtplib and email: only to send

        s = self.settings
        password = None
        if s.smtp_password_file:
            password = load_secret(
                s.smtp_password_file, self.cfg.root, self.cfg.file, "alerts.smtp_password_file"
            )
        return SmtpSettings(
            host=s.smtp_host,
            port=s.port,
            tls=s.smtp_tls,
            sender=s.sender or f"intake@{self.cfg.server.hostname}",
            recipients=s.recipients if recipients is None else recipients,
            user=s.smtp_user,
            password=password,
            ca_file=self.cfg.resolve(s.smtp_ca_file) if s.smtp_ca_file else None,
            timeout=float(s.smtp_timeout),
            helo_name=self.cfg.server.hostname,
        )

    def channels(self) -> list[str]:
        found = []
        if self.settings.smtp_host and self.settings.recipients:
            found.append("smtp")
        if self.settings.command:
            found.append("command")
        return found

    def _send(self, channel: str, message: Message) -> None:
        from intake.adapters.alerting.hook import run_hook
        from intake.adapters.alerting.smtp import send_mail

        if channel == "smtp":
            send_mail(self._smtp(), message.subject, message.body)
        else:
            run_hook(
                self.settings.command, message.payload_bytes(), float(self.settings.command_timeout)
            )

    def compose(self, alerts: list[Alert]) -> Message:
        return compose(alerts, self.cfg.server.hostname, str(self.cfg.root))

    def send_test(self) -> list[tuple[str, str]]:
        """``intake alert test``: one test message through every channel, now, not queued.
        Returns (channel, error or "") for each."""
        message = self.compose([Alert("test", self.clock.now())])
        results = []
        for channel in self.channels():
            try:
                self._send(channel, message)
                results.append((channel, ""))
            except IntakeError as exc:
                results.append((channel, str(exc)))
        failed = [f"{c}: {e}" for c, e in results if e]
        self._audit(
            kind="test",
            status="failed" if failed else "sent",
            via=",".join(c for c, _ in results),
            reason="; ".join(failed) or None,
            protocol="cli",
        )
        return results

    def deliver(self, gather: float = GATHER, force: bool = False) -> Delivery:
        """Send what is due (see the rules); never raises for a delivery problem."""
        result = Delivery()
        if not self.enabled:
            return result
        with self.queue.delivering() as mine:
            if not mine:
                result.busy = True
                return result
            self._deliver(result, gather, force)
        return result

    def _deliver(self, result: Delivery, gather: float, force: bool) -> None:
        now = self.clock.now()
        state = self.queue.read_state()
        retry_at = parse_time(state.next_try)
        items = self.queue.items()
        if not items or (not force and retry_at is not None and now < retry_at):
            result.waiting = len(items)
            return
        groups: dict[str, list[Queued]] = {}
        for queued in items:
            groups.setdefault(queued.alert.key, []).append(queued)
        throttle = _dt.timedelta(seconds=self.settings.throttle)
        sent: list[tuple[str, list[Queued], Message]] = []
        channels = self.channels()
        for key, group in groups.items():
            last = parse_time(state.last_sent.get(key, ""))
            kind = group[0].alert.kind
            throttled = last is not None and now - last < throttle and kind != "digest"
            settling = (now - group[-1].alert.at).total_seconds() < gather
            if throttled or (settling and (now - group[0].alert.at).total_seconds() < MAX_GATHER):
                result.waiting += len(group)
                continue
            message = self.compose([q.alert for q in group])
            try:
                for channel in channels:
                    if all(channel in q.done for q in group):
                        continue
                    self._send(channel, message)
                    if len(channels) > 1:
                        for q in group:
                            self.queue.mark_done(q, channel)
            except IntakeError as exc:
                result.error = str(exc)
                result.waiting = len(items) - result.alerts
                break
            for q in group:
                self.queue.remove(q)
            sent.append((key, group, message))
            result.sent += 1
            result.alerts += len(group)
        self._after(result, sent, now)

    def _after(
        self, result: Delivery, sent: list[tuple[str, list[Queued], Message]], now: _dt.datetime
    ) -> None:
        with self.queue.changing_state() as state:
            horizon = now - _dt.timedelta(seconds=self.settings.throttle)
            state.last_sent = {
                k: v
                for k, v in state.last_sent.items()
                if (parse_time(v) or now) > horizon  # forget keys whose window is over
            }
            for key, _group, _message in sent:
                state.last_sent[key] = isoformat(now)
            if result.error:
                state.failures += 1
                delay = self.settings.retry
                state.next_try = isoformat(now + _dt.timedelta(seconds=delay))
                state.last_error = result.error
            elif sent:
                state.failures, state.next_try, state.last_error = 0, "", ""
        for _key, group, message in sent:
            first = group[0].alert
            self._audit(
                kind=first.kind,
                status="sent",
                count=len(group),
                via=",".join(self.channels()),
                subject=message.subject,
                alert_ids=[q.alert.id for q in group],
            )
            log.info("alert sent: %s", message.subject)
        if result.error:
            log.warning(
                "alerts: delivery failed (%s); %d alert(s) wait in the queue",
                result.error,
                result.waiting,
            )


def deliver_raised(timeout_gather: float = 0.0) -> None:
    """A CLI command's last act: try once to deliver the alerts it raised (the serve loop
    or the next command delivers them otherwise)."""
    for alerts in list(_UNSENT):
        _UNSENT.discard(alerts)
        try:
            alerts.deliver(gather=timeout_gather, force=True)
        except Exception:
            log.exception("alerts: delivering at exit failed")
