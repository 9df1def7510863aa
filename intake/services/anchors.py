"""Anchors outside the server: the signed head time-stamped by an RFC 3161 authority, and
mailed to the data-protection officer.

Entry points: ``Anchors`` (``stamp``, ``send_head``, ``send_monthly``) and
``AnchorThread`` (``serve``'s).

Rules:
- ``stamp``: a checkpoint signs the pending records, the authority (``[audit] tsa_url``)
  stamps that checkpoint's head (``intake.adapters.audit.tsa``: a timeout, a bounded
  reply, checked against ``tsa_ca_file`` when set), and the token is kept in the log as
  a ``timestamp`` record (format: ``intake.adapters.audit.stamps``). A failure is one
  ``IntakeError``; then nothing is written.
- ``AnchorThread`` runs in ``serve``, off the connection threads: an upload never waits
  on the authority, and an authority that is down never refuses anything (a time-stamp
  is proof added afterwards, not a gate). It stamps at start, then every
  ``timestamp_interval``; a failed request is tried again after ``RETRY_BASE`` s,
  doubling, at most the interval and ``RETRY_MAX``; after ``ALERT_AFTER`` failures in a
  row one ``timestamp.failing`` alert is raised, and no other until a token came. At
  stop it tries once more (``STOP_TIMEOUT``), so the last events before a stop are
  covered.
- Monthly: with ``[audit] head_recipients``, the thread mails the signed head once per
  calendar month (UTC); the month sent is kept in ``state/head-sent.json``, so a restart
  does not send it twice; a mail that failed is tried again with the same backoff.
- ``send_head`` (also ``intake audit head --send``): a fresh time-stamp first when an
  authority is configured (one try; without it the log's latest token goes), then ONE
  mail to ``head_recipients`` through ``[alerts]``' SMTP settings, with the head
  document as ``audit-head-<seq>.json`` (exactly what ``audit head --json`` prints: what
  ``verify --since-head`` reads) and, when there is one, the ``timestamp`` record as
  ``audit-timestamp-<seq>.json``; audited ``head.sent``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from intake.adapters.alerting.smtp import Attachment, send_mail
from intake.adapters.audit import stamps, tsa
from intake.adapters.audit.chain import CheckpointInfo
from intake.core.alerts import Alert, one_line
from intake.core.clock import isoformat
from intake.core.errors import IntakeError, NotFound, UsageError
from intake.services.instance import Instance
from intake.services.status_files import read_json, write_json

log = logging.getLogger("intake.anchors")
REQUEST_TIMEOUT = 10.0  # seconds to connect to the authority, and for each read
STOP_TIMEOUT = 5.0
RETRY_BASE = 5.0
RETRY_MAX = 600.0
ALERT_AFTER = 3
MONTH_CHECK = 60.0  # seconds between two looks at the calendar
HEAD_SENT_NAME = "head-sent.json"


@dataclass(frozen=True)
class Sent:
    head: CheckpointInfo
    stamp: dict[str, Any] | None  # the timestamp record mailed with it
    recipients: tuple[str, ...]


class Anchors:
    """Time-stamps and head mails of one open instance; see the module rules."""

    def __init__(self, instance: Instance) -> None:
        self.inst = instance
        self.audit_cfg = instance.config.audit
        ca_file = self.audit_cfg.tsa_ca_file
        # UsageError: an unreadable CA file is the operator's mistake, said at start
        self.roots = tsa.load_roots(instance.config.resolve(ca_file)) if ca_file else None

    @property
    def stamping(self) -> bool:
        return bool(self.audit_cfg.tsa_url)

    def stamp(
        self, timeout: float = REQUEST_TIMEOUT, info: CheckpointInfo | None = None
    ) -> tuple[CheckpointInfo, dict[str, Any]] | None:
        """Sign (unless ``info``, a head just signed, is given), have the head time-stamped,
        keep the token; None when the log holds nothing to stamp yet (no record, no audit
        key); ``IntakeError`` if it failed."""
        if not self.stamping:
            raise UsageError("no time-stamping authority: [audit] tsa_url is empty")
        if info is None:
            info = self.inst.audit.checkpoint("timestamp")
        if info is None or info.seq == 0:
            return None
        token = tsa.request(self.audit_cfg.tsa_url, info.head, timeout, self.roots)
        fields: dict[str, Any] = {
            "stamps": info.seq,
            "head": info.head,
            "tsa": token.authority,
            "gen_time": isoformat(token.gen_time),
            "interval": self.audit_cfg.timestamp_interval,
            "response": base64.b64encode(token.response).decode("ascii"),
        }
        self.inst.audit.record(stamps.EVENT, **fields)
        return info, fields

    # -- the head by mail --------------------------------------------------------------

    def send_head(self, protocol: str | None = None) -> Sent:
        """Mail the signed head (see the rules); ``IntakeError`` if it could not be sent."""
        recipients = self.audit_cfg.head_recipients
        if not recipients:
            raise UsageError("[audit] head_recipients is empty: nobody to send the head to")
        # forced when the log holds no checkpoint yet: an empty log has a head too
        info = self.inst.audit.checkpoint("head") or self.inst.audit.checkpoint("head", True)
        stamp: dict[str, Any] | None = None
        if self.stamping and info is not None:
            try:
                stamped = self.stamp(info=info)
            except IntakeError as exc:
                log.warning("audit head: no fresh time-stamp (%s); the latest one goes", exc)
            else:
                stamp = stamped[1] if stamped is not None else None
        if stamp is None:
            stamp = stamps.last_timestamp(self.inst.config.log_dir)
        if info is None:
            raise NotFound("no signed head yet: the instance has no audit key")
        attachments = [
            Attachment(
                f"audit-head-{info.seq}.json", (json.dumps(info.document, indent=2) + "\n").encode()
            )
        ]
        if stamp is not None:
            record = json.dumps(stamp, indent=2, ensure_ascii=True) + "\n"
            attachments.append(
                Attachment(f"audit-timestamp-{stamp.get('stamps')}.json", record.encode())
            )
        settings = self.inst.alerts.smtp_settings(recipients)
        subject, body = self._mail(info, stamp)
        send_mail(settings, subject, body, attachments)
        self.inst.audit.record(
            "head.sent",
            signs=info.seq,
            head=info.head,
            recipients=list(recipients),
            stamps=stamp.get("stamps") if stamp else None,
            protocol=protocol,
        )
        return Sent(info, stamp, recipients)

    def _mail(self, info: CheckpointInfo, stamp: dict[str, Any] | None) -> tuple[str, str]:
        cfg = self.inst.config
        server = one_line(cfg.server.hostname, 80)
        subject = f"[intake {server}] Tête signée du journal d'audit (audit head) : {info.seq}"
        lines = [
            f"La tête signée du journal d'audit de {server} (instance {one_line(cfg.root)}),",
            "à garder hors du serveur : elle prouve plus tard que le journal n'a pas été",
            "réécrit jusqu'à elle.",
            "",
            f"Enregistrement : {info.seq}",
            f"SHA-256 : {info.head}",
            f"Signée le : {info.ts} par la clé {info.key_id}",
        ]
        if stamp is not None:
            lines.append(
                f"Horodatage RFC 3161 : les enregistrements 1-{stamp.get('stamps')} "
                f"existaient le {one_line(stamp.get('gen_time'))} "
                f"({one_line(stamp.get('tsa'))})"
            )
        else:
            lines.append("Horodatage RFC 3161 : aucun (pas d'autorité configurée)")
        name = f"audit-head-{info.seq}.json"
        lines += [
            "",
            "Pour vérifier, sur une copie du dossier log/ et la clé publique d'audit :",
            f"  intake audit verify --public-key audit.pub --log-dir COPIE --since-head {name}",
            "  (avec --tsa-ca-file CA.pem : les jetons d'horodatage aussi)",
        ]
        if stamp is not None:
            lines += [
                "Le jeton seul, avec openssl :",
                f"  jq -r .response audit-timestamp-{stamp.get('stamps')}.json"
                " | base64 -d > jeton.tsr",
                f"  printf %s {stamp.get('head')} | xxd -r -p > tete.bin",
                "  openssl ts -verify -data tete.bin -in jeton.tsr -CAfile CA.pem",
            ]
        lines += [
            "",
            "-- ",
            "Message automatique d'intake ; chaque envoi est inscrit au journal "
            "d'audit (événement head.sent).",
        ]
        return subject, "\n".join(lines) + "\n"

    def send_monthly(self) -> Sent | None:
        """Mail the head if it was not sent this calendar month (UTC)."""
        if not self.audit_cfg.head_recipients:
            return None
        month = self.inst.clock.now().strftime("%Y-%m")
        path = self.inst.config.state_dir / HEAD_SENT_NAME
        done = read_json(path)
        if done is not None and done.get("month") == month:
            return None
        sent = self.send_head()
        write_json(
            path, {"month": month, "signs": sent.head.seq, "at": isoformat(self.inst.clock.now())}
        )
        return sent


class AnchorThread:
    """``serve``'s time-stamping and monthly mail (see the module rules)."""

    def __init__(self, anchors: Anchors) -> None:
        self.anchors = anchors
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._failing_since = ""
        self._alerted = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-anchors", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT * 2 + 5)
            self._thread = None
        if self.anchors.stamping:
            try:
                self.anchors.stamp(STOP_TIMEOUT)
            except IntakeError as exc:
                log.warning("time-stamp at stop: %s", exc)

    def _backoff(self, failures: int) -> float:
        interval = float(self.anchors.audit_cfg.timestamp_interval)
        return min(interval, RETRY_MAX, RETRY_BASE * 2.0 ** (failures - 1))

    def _stamp(self) -> float:
        """One try; the seconds until the next."""
        try:
            self.anchors.stamp()
        except IntakeError as exc:
            self._failed(str(exc))
            return self._backoff(self._failures)
        if self._alerted:
            log.info("time-stamping works again")
        self._failures, self._alerted = 0, False
        return float(self.anchors.audit_cfg.timestamp_interval)

    def _failed(self, reason: str) -> None:
        self._failures += 1
        if self._failures == 1:
            self._failing_since = isoformat(self.anchors.inst.clock.now())
        log.warning("time-stamp failed (attempt %d): %s", self._failures, reason)
        if self._failures >= ALERT_AFTER and not self._alerted:
            self._alerted = True
            details = {
                "reason": reason,
                "failing_since": self._failing_since,
                "attempt": str(self._failures),
            }
            alerts = self.anchors.inst.alerts
            alerts.raise_alert(Alert("timestamp.failing", alerts.clock.now(), details=details))

    def _run(self) -> None:
        stamping = self.anchors.stamping
        mailing = bool(self.anchors.audit_cfg.head_recipients)
        next_stamp = next_mail = time.monotonic()
        mail_failures = 0
        while True:
            try:
                if stamping and time.monotonic() >= next_stamp:
                    next_stamp = time.monotonic() + self._stamp()
                if mailing and time.monotonic() >= next_mail:
                    try:
                        self.anchors.send_monthly()
                    except IntakeError as exc:
                        mail_failures += 1
                        log.warning("audit head not mailed (attempt %d): %s", mail_failures, exc)
                        next_mail = time.monotonic() + self._backoff(mail_failures)
                    else:
                        mail_failures = 0
                        next_mail = time.monotonic() + MONTH_CHECK
            except Exception:  # the thread never dies: serve goes on without anchors
                log.exception("audit anchors: unexpected failure")
                next_stamp = next_mail = time.monotonic() + RETRY_BASE
            due = min(
                next_stamp if stamping else float("inf"), next_mail if mailing else float("inf")
            )
            if self._stop.wait(max(0.05, min(due - time.monotonic(), MONTH_CHECK))):
                return
