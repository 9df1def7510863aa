"""Destruction: a catalogued file is removed once, write-ahead, and certified once.

Rules:
- The order, for each file: the file is still there (else ``vanished``, nothing
  destroyed); ``record_destroy_intent``; re-hash (a mismatch is recorded as ``altered``
  and the certificate says so); room in the audit log for the ``destroyed`` record
  (``AuditLog.reserve``: ``RECORD_ROOM`` bytes allocated to the log file before the
  unlink, so a log that fills meanwhile cannot refuse it); unlink and fsync the folder
  (``storage.destroy_file``); the ``destroyed`` audit record (the certificate: entry,
  account, path, size, sha256, received_at, destroyed_at, policy, integrity);
  ``record_destroyed``.
- No file is unlinked unless its record can be written: a log without that room stops
  the run (``AuditUnavailable``) with the file still on disk. A run cut by a full log
  leaves every file on disk or with its ``destroyed`` record. (What the reservation
  cannot cover: other processes appending more than ``RECORD_ROOM`` in the few
  milliseconds between it and the record, or the record falling into a new month's
  file; a kill at that instant is covered by the intent, as below.)
- The certificate is a signed document (``intake.services.documents.signed``) kept in the
  catalog before the ``destroyed`` record is written; that record carries its
  fingerprint. The audit key is loaded before anything is destroyed.
- A run killed at any instant leaves an intent that the next run finishes (``recover``):
  the file is destroyed once, and the certificate is signed and written once (the kept
  certificate and the audit log are checked before writing either again).
- A file is unlinked only if it is a regular file inside ``data/`` reached without a
  symlink; anything else is refused and reported.
- A problem with one file is a failure in the report; the run goes on. Except the audit
  log: when it cannot be written (``AuditUnavailable``) the run stops at once.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from typing import Any

from intake.adapters.audit import signing
from intake.adapters.audit import writer as audit_mod
from intake.adapters.catalog.catalog import Entry
from intake.adapters.storage import destroy_file, sha256_file
from intake.core.clock import isoformat, parse_iso
from intake.core.errors import AuditUnavailable, IntakeError
from intake.core.model import ArrivalState
from intake.core.paths import is_within
from intake.services.documents import signed as documents
from intake.services.instance import Instance
from intake.services.sweeper.report import SweepReport, describe, record_entry

log = logging.getLogger("intake.sweeper")
# Room kept in the audit log before each unlink: a ``destroyed`` record (about 1 KiB,
# at most a few with the longest names allowed) and a checkpoint, with a wide margin
# for what other processes append meanwhile.
RECORD_ROOM = 64 * 1024


class Destroyer:
    """Destroys the catalogued files of one open instance, each with its certificate."""

    def __init__(self, instance: Instance) -> None:
        self.cfg = instance.config
        self.catalog = instance.catalog
        self.audit = instance.audit
        self.clock = instance.clock
        # Loaded before anything is destroyed: no key, no destruction (fail closed).
        self.signer = documents.audit_signer(self.cfg)

    def recover(self, report: SweepReport) -> None:
        """Finish the destructions a killed run recorded the intent of."""
        for entry in self.catalog.pending_destroy_intents():
            log.warning("finishing the destruction of entry %d left by a previous run", entry.id)
            report.recovered += 1
            self.destroy(entry, entry.destroy_intent or "?", report)

    def destroy(self, entry: Entry, policy: str, report: SweepReport) -> None:
        """Destroy one file; a problem with it is a reported failure, the run goes on."""
        try:
            self._destroy_one(entry, policy, report)
        except AuditUnavailable:
            raise  # fail closed: the run stops before destroying anything more
        except (IntakeError, OSError) as exc:
            report.fail(entry, "destroy", str(exc))

    def _destroy_one(self, entry: Entry, policy: str, report: SweepReport) -> None:
        path = entry.disk_path
        data_dir = os.path.realpath(self.cfg.data_dir)
        if os.path.realpath(path) != os.path.normpath(path) or not is_within(data_dir, path):
            report.fail(entry, "destroy", "not a plain path inside data/: refused")
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if entry.destroy_intent is not None:  # unlinked by a run that was then killed
                verified = entry.state is not ArrivalState.ALTERED
                self._certify(entry, policy, verified, "", 0, report, recovering=True)
                return
            reason = "gone before its destruction"
            if self.catalog.record_vanished(entry.id, path, reason):
                record_entry(self.audit, "vanished", entry, "sweeper", reason=reason)
            report.fail(entry, "destroy", "the file is missing: recorded as vanished")
            return
        if not stat.S_ISREG(st.st_mode):
            report.fail(entry, "destroy", "not a regular file: refused")
            return
        if entry.destroy_intent is None:
            self.catalog.record_destroy_intent(entry.id, policy)
        actual = sha256_file(path)
        verified = actual == entry.sha256
        if not verified and entry.state is not ArrivalState.ALTERED:
            self.catalog.record_altered(entry.id, actual)
            record_entry(
                self.audit,
                "altered",
                entry,
                "sweeper",
                sha256=entry.sha256,
                actual_sha256=actual,
                reason="found when destroying",
            )
        self.audit.reserve(RECORD_ROOM)  # AuditUnavailable: stop with the file still here
        destroy_file(path)
        report.bytes_freed += st.st_size
        # The certificate is written after the unlink: with the file still here, none was.
        self._certify(entry, policy, verified, actual, st.st_size, report, recovering=False)

    def _already_certified(self, entry_id: int) -> dict[str, Any] | None:
        for record in audit_mod.read_records(self.cfg.log_dir):
            if record.get("event") == "destroyed" and record.get("entry") == entry_id:
                return record
        return None

    def _certificate(
        self,
        entry: Entry,
        policy: str,
        verified: bool,
        actual: str,
        size: int,
        earlier: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The signed certificate of this destruction: the one kept, or a new one kept now.

        A run cut after the ``destroyed`` record but before the catalog kept a certificate
        signs one from that record (same time, policy, integrity), so the two agree.
        """
        kept = self.catalog.certificate(entry.id)
        if kept is not None:
            document: dict[str, Any] = json.loads(kept.document)
            return document
        if earlier is not None:
            body = documents.certificate_body(
                self.cfg,
                entry,
                str(earlier.get("destroyed_at") or earlier["ts"]),
                str(earlier.get("policy") or policy),
                str(earlier.get("integrity") or ("verified" if verified else "altered")),
                earlier.get("actual_sha256"),
                earlier.get("actual_size"),
            )
        else:
            body = documents.certificate_body(
                self.cfg,
                entry,
                isoformat(self.clock.now()),
                policy,
                "verified" if verified else "altered",
                None if verified or not actual else actual,
                size if size and size != entry.size else None,
            )
        signed = signing.sign_document(body, self.signer)
        text = json.dumps(signed, sort_keys=True, ensure_ascii=False)
        kept = self.catalog.store_certificate(entry.id, entry.account, body["destroyed_at"], text)
        document = json.loads(kept.document)
        return document

    def _certify(
        self,
        entry: Entry,
        policy: str,
        verified: bool,
        actual: str,
        size: int,
        report: SweepReport,
        recovering: bool,
    ) -> None:
        earlier = self._already_certified(entry.id) if recovering else None
        document = self._certificate(entry, policy, verified, actual, size, earlier)
        at = parse_iso(str(document["destroyed_at"]))
        certificate = {
            "protocol": "sweeper",
            "entry": entry.id,
            "account": entry.account,
            "area": entry.area,
            "path": entry.path,
            "size": entry.size,
            "sha256": entry.sha256,
            "received_at": document["received_at"],
            "destroyed_at": document["destroyed_at"],
            "policy": document["policy"],
            "integrity": document["integrity"],
            "actual_sha256": document.get("actual_sha256"),
            "actual_size": document.get("actual_size"),
            "forwarded_at": document.get("forwarded_at"),
            "remote_path": document.get("remote_path"),
            "certificate": documents.fingerprint(document),
        }
        if earlier is None:
            self.audit.record("destroyed", **certificate)
        else:
            certificate = {**describe(entry), **certificate}
        self.catalog.record_destroyed(entry.id, at, str(document["policy"]), verified)
        report.destroyed.append(
            {"id": entry.id, **{k: v for k, v in certificate.items() if v is not None}}
        )
