"""Checking the time-stamp tokens of an audit log, record by record (``verify``'s helper).

A ``timestamp`` record holds exactly ``ts``, ``event``, ``stamps`` (S), ``head`` (H),
``tsa``, ``gen_time``, ``interval``, ``response``, ``seq`` and ``prev``: ``response`` is
the base64 of the authority's DER ``TimeStampResp`` whose token stamps H (``tsa``), the
head a checkpoint earlier in the log signed at record S; ``interval`` is the writer's
``timestamp_interval`` in seconds; ``tsa`` and ``gen_time`` only repeat what the token
says, for a reader.

Rules:
- Always: a timestamp record holds exactly its members, and H is the head a checkpoint
  of this log signed at S (a fact of the log itself, no key needed).
- With CA certificates given (without, tokens are counted and reported, not checked nor
  required): every token must verify (``tsa.check``: signature, chain to a given CA,
  message imprint = H); a token proves records 1..S existed at its time.
- A record is covered by the first token whose S reaches it. Checkpoint and timestamp
  records carry no event of their own (a signature, a token) and need no cover.
- A record covered by a token more than twice ``interval`` younger than the record's own
  ``ts`` fails, except before the first token (the log may predate time-stamping): a
  record backdated by whoever re-signed the log, or time-stamping that failed for
  longer than that (the authority unreachable).
- A record no token covers fails when the log goes on more than twice ``interval`` after
  it (its latest record time or token time): its time-stamps were removed, or never
  made. ``interval`` is the one the latest timestamp record states (before any: the
  caller's default).
- Never raises on hostile input: a problem is returned to ``verify`` as a ``Problem``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from intake.adapters.audit import signing, tsa
from intake.adapters.audit.chain import log_files, reverse_lines
from intake.core.clock import isoformat, parse_iso

EVENT = "timestamp"
DEFAULT_INTERVAL = 3600  # seconds: [audit] timestamp_interval's default
MEMBERS = frozenset(
    {"ts", "event", "stamps", "head", "tsa", "gen_time", "interval", "response", "seq", "prev"}
)
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Problem:
    message: str
    seq: int  # the record at fault


@dataclass
class StampReport:
    """What the tokens prove; ``verify.Report`` carries it as ``timestamps``."""

    tokens: int = 0  # timestamp records
    checked: bool = False  # checked against a CA given
    interval: int = DEFAULT_INTERVAL
    stamped_seq: int = 0  # records 1..stamped_seq existed at stamped_at (0: none)
    stamped_at: str | None = None
    authority: str | None = None
    first_at: str | None = None  # the first token's time


def _when(text: str) -> _dt.datetime | None:
    try:
        return parse_iso(text)
    except ValueError:
        return None


class StampCheck:
    """One pass's state; ``verify`` calls ``see``, ``signed``, ``token``, ``finish``."""

    def __init__(self, roots: list[x509.Certificate] | None, default_interval: int) -> None:
        self.roots = roots
        self.report = StampReport(checked=roots is not None, interval=default_interval)
        self.heads: dict[int, str] = {}  # checkpoint heads: seq -> hash
        self._open: tuple[str, int] | None = None  # oldest (ts, seq) since the last head
        self._segments: list[tuple[int, str, int]] = []  # (head seq, oldest ts, its seq)
        self._latest = ""  # the latest record time seen
        self._latest_token: _dt.datetime | None = None

    @property
    def required(self) -> bool:
        return self.roots is not None

    def see(self, ts: Any, seq: int, cover: bool) -> None:
        """A record's time (only called when tokens are required); ``cover``: it needs a
        token (not a checkpoint nor a timestamp record)."""
        if not isinstance(ts, str):
            return
        if cover and (self._open is None or ts < self._open[0]):
            self._open = (ts, seq)
        if ts > self._latest:
            self._latest = ts

    def signed(self, seq: int, head: str) -> None:
        """A checkpoint signed ``head`` at record ``seq``: the records so far form a segment."""
        self.heads[seq] = head
        if self._open is not None:
            self._segments.append((seq, *self._open))
            self._open = None

    def token(self, record: dict[str, Any], seq: int) -> Problem | None:
        """A timestamp record at ``seq``; a problem, or None."""
        problem = signing.check_members(record, MEMBERS)
        if problem is not None:
            return Problem(f"timestamp record: {problem}", seq)
        stamps, head, interval = record["stamps"], record["head"], record["interval"]
        if type(stamps) is not int or not 0 < stamps < seq:
            return Problem("timestamp record: stamps is not an earlier record", seq)
        if not (isinstance(head, str) and _HEX64.fullmatch(head)):
            return Problem("timestamp record: head is not a SHA-256 in hex", seq)
        if type(interval) is not int or interval <= 0:
            return Problem("timestamp record: interval is not a number of seconds", seq)
        try:
            response = base64.b64decode(str(record["response"]), validate=True)
        except (binascii.Error, ValueError):
            return Problem("timestamp record: response is not base64", seq)
        self.report.tokens += 1
        if self.heads.get(stamps) != head:
            return Problem(
                f"time-stamp token for record {stamps}: the log holds no checkpoint signing "
                "that head there (the records it stamped were rewritten)",
                seq,
            )
        if self.roots is None:
            moment = tsa.gen_time(response)
            if moment is not None and stamps > self.report.stamped_seq:
                self._stamped(stamps, moment, str(record["tsa"]))
            return None
        moment, why = tsa.check(response, head, self.roots)
        if moment is None:
            return Problem(f"time-stamp token for record {stamps}: {why}", seq)
        first = self.report.first_at is None
        limit = _dt.timedelta(seconds=2 * interval)
        while self._segments and self._segments[0][0] <= stamps:
            _, oldest, at = self._segments.pop(0)
            written = _when(oldest)
            if not first and written is not None and moment - written > limit:
                return Problem(
                    f"record {at} ({oldest}) was first time-stamped at {isoformat(moment)}, "
                    f"more than twice the time-stamp interval ({interval} s) after it: "
                    "its time was changed, or time-stamping failed that long",
                    at,
                )
        self.report.interval = interval
        if stamps > self.report.stamped_seq:
            self._stamped(stamps, moment, str(record["tsa"]))
        return None

    def _stamped(self, stamps: int, moment: _dt.datetime, authority: str) -> None:
        report = self.report
        report.stamped_seq, report.stamped_at = stamps, isoformat(moment)
        report.authority = authority[:200]
        report.first_at = report.first_at or report.stamped_at
        if self._latest_token is None or moment > self._latest_token:
            self._latest_token = moment

    def finish(self) -> Problem | None:
        """The records no token covers (see the rules)."""
        if not self.required:
            return None
        pending = [(ts, seq) for _, ts, seq in self._segments]
        if self._open is not None:
            pending.append(self._open)
        if not pending:
            return None
        oldest, at = min(pending)
        written = _when(oldest)
        ends = [m for m in (_when(self._latest) if self._latest else None, self._latest_token) if m]
        if written is None or not ends:
            return None
        end = max(ends)
        interval = self.report.interval
        if (end - written).total_seconds() > 2 * interval:
            return Problem(
                f"record {at} ({oldest}) is covered by no time-stamp token, and the log goes "
                f"on until {isoformat(end)}, more than twice the time-stamp interval "
                f"({interval} s) later: its time-stamps were removed, or never made",
                at,
            )
        return None


def last_timestamp(log_dir: Path, max_bytes: int = 64 << 20) -> dict[str, Any] | None:
    """The log's last ``timestamp`` record (reading back at most ``max_bytes``); unverified."""
    budget = max_bytes
    for path in reversed(log_files(log_dir)):
        for _, line in reverse_lines(path, budget):
            budget -= len(line)
            if b'"timestamp"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == EVENT:
                return record
        if budget <= 0:
            break
    return None
