"""Checking an audit log: chain, sequence, checkpoint signatures, trusted keys, tail.

Needs nothing but the log files and the public key(s) to trust, so it runs on a copy of
``log/`` on another machine. The format is ``chain``'s docstring.

Rules:
- Lines are read in file-name order as one log, each strictly (``signing.loads_strict``:
  no member twice, no float). The first problem is the answer (what follows a break
  cannot be trusted); it names the file and line (1-based) of the record most likely at
  fault: an altered record is the one whose hash the next record no longer matches, an
  inserted one is the one the next record chains over, a removal is named where the
  sequence jumps.
- A checkpoint record holds exactly its members, its ``ts`` is its document's, and its
  document holds exactly its own, signs exactly the head before it and carries a valid
  signature by the key it names. The first checkpoint's key is the log's key; it changes
  only through a checkpoint's ``next_public_key`` (rotation): a checkpoint by any other
  key is tampering.
- Trust flows only from the keys the caller holds, and only forward: a checkpoint counts
  when its key is trusted, i.e. given by the caller or introduced (``next_public_key``)
  by a checkpoint that counts. A counted checkpoint vouches for every record before it
  (it signs their hash chain). Checkpoints before the first counted one (the key before
  a rotation when only the new one is given) are checked but prove nothing; a log with
  checkpoints and none counted fails.
- A signed head kept earlier (``--since-head``) and the log's own ``audit-head.json`` are
  read strictly and must be signed by a trusted key (as it stands after the walk), then
  still be in the log byte for byte (a log shorter than it was cut; a different record
  means it was rewritten); then they vouch for the records up to theirs as well.
- Records after the last one vouched for are "not yet signed", which only the newest may
  be: the writer signs a record within ``checkpoint_interval`` (the ``interval`` of the
  last counted checkpoint; for older checkpoints, ``default_interval``). A record
  followed by records written more than that plus ``MARGIN`` after it was left unsigned:
  a failure (checkpoints were removed, or the server could not sign). 0: by count only.
- ``require_signed`` (a key given on the command line): a log in which no record is
  vouched for fails (no checkpoint, only lines without ``seq``, an empty log).
- Time-stamp tokens (``timestamp`` records) are checked by ``stamps`` (its rules): with
  the TSA's CA certificates given, every token must verify and every record older than
  twice the time-stamp interval must be covered by one; without, they are reported.
- Never raises on hostile input: every problem is a finding.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from intake.adapters.audit import signing, stamps
from intake.adapters.audit.chain import (
    CHECKPOINT_KIND,
    CHECKPOINT_MEMBERS,
    CHECKPOINT_OPTIONAL,
    CHECKPOINT_RECORD_MEMBERS,
    GENESIS,
    HEAD_NAME,
    CheckpointInfo,
    checkpoint_info,
    line_hash,
    log_files,
)
from intake.core.clock import parse_iso
from intake.core.errors import UsageError

DEFAULT_INTERVAL = 300  # seconds: [audit] checkpoint_interval's default, for old checkpoints
MARGIN = 120  # seconds beyond the interval: serve's timer period (at most 60 s) and slack
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Finding:
    message: str
    file: str | None = None
    line: int | None = None
    seq: int | None = None

    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Report:
    """What ``verify_log`` found; ``problem`` is None when nothing was tampered with."""

    records: int = 0  # the whole log; when reading stopped at a problem, the records before it
    complete: bool = False  # the whole log was read
    files: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoints: int = 0  # checkpoints by a trusted key: the ones that count
    untrusted_checkpoints: int = 0  # valid, by a key not trusted (before the first counted)
    signed_seq: int = 0  # the last record vouched for by a trusted signature (0: none)
    last_checkpoint: dict[str, Any] | None = None  # the last one that counts
    unsigned: int = 0
    unsigned_since: str | None = None  # the time of the first record not yet signed
    interval: int = DEFAULT_INTERVAL  # how long a record may wait for its checkpoint
    legacy: int = 0
    keys: list[str] = field(default_factory=list)  # the log's keys, in order (rotations)
    trusted: list[str] = field(default_factory=list)  # the keys the caller gave
    since_head: int | None = None
    timestamps: stamps.StampReport = field(default_factory=stamps.StampReport)
    problem: Finding | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        return doc


class _Tampered(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def _public_key(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _is_int(value: Any) -> bool:
    return type(value) is int and value >= 0


def _document_problem(document: dict[str, Any]) -> str | None:
    """Why a checkpoint document does not hold exactly its members, each of its type."""
    reason = signing.check_members(document, CHECKPOINT_MEMBERS, CHECKPOINT_OPTIONAL)
    if reason is not None:
        return reason
    head = document["head"]
    if not _is_int(document["seq"]):
        return "seq is not a record number"
    if not (isinstance(head, str) and _HEX64.fullmatch(head)):
        return "head is not a SHA-256 in hex"
    if not isinstance(document["ts"], str):
        return "ts is not a time"
    if _public_key(document["public_key"]) is None:
        return "no valid public_key"
    if "next_public_key" in document and _public_key(document["next_public_key"]) is None:
        return "next_public_key is not an Ed25519 key"
    if "interval" in document and not _is_int(document["interval"]):
        return "interval is not a number of seconds"
    return None


def check_head_document(document: Any) -> tuple[CheckpointInfo | None, str]:
    """A checkpoint document (or a kept head) checked against the key it carries: exactly
    its members, a valid signature. Whether that key is trusted is the caller's question."""
    if not isinstance(document, dict) or document.get("kind") != CHECKPOINT_KIND:
        return None, "not an audit checkpoint"
    problem = _document_problem(document)
    if problem is not None:
        return None, problem
    raw = _public_key(document["public_key"])
    if raw is None:  # (_document_problem checked it; never trust an assert to)
        return None, "no valid public key"
    valid, reason = signing.verify_document(document, signing.verifier_from_raw(raw))
    info = checkpoint_info(document) if valid else None
    return (info, "valid") if info is not None else (None, reason)


def _lines(files: list[Path]) -> Iterator[tuple[str, int, bytes]]:
    for path in files:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                yield path.name, number, raw


@dataclass
class _Line:
    file: str
    number: int
    raw: bytes
    hash: str


class _Walk:
    """One pass over the log."""

    def __init__(
        self,
        log_dir: Path,
        trusted: list[signing.Verifier],
        default_interval: int,
        stamp_check: stamps.StampCheck,
    ) -> None:
        self.files = log_files(log_dir)
        self.stamps = stamp_check
        self.report = Report(
            files=len(self.files),
            trusted=[v.key_id for v in trusted],
            interval=default_interval,
            timestamps=stamp_check.report,
        )
        self.default_interval = default_interval
        self.trusted = {v.raw for v in trusted}  # grows forward, through counted checkpoints
        self._key: bytes | None = None
        self._key_raws: list[bytes] = []
        self.signers: dict[bytes, None] = {}  # the keys that signed checkpoints, in order
        self.first_untrusted: Finding | None = None
        self.first_chained: Finding | None = None
        self.covered = 0  # the last line vouched for (a counted checkpoint's own line)
        self.tail_first: tuple[str, Finding] | None = None  # the first record after it
        self.tail_latest: str | None = None  # the latest time after it
        self.hashes: dict[int, tuple[str, str, int]] = {}  # wanted seq -> (hash, file, line)
        self.wanted: set[int] = set()

    def run(self) -> None:
        it = _lines(self.files)
        upcoming = next(it, None)
        before: _Line | None = None  # the line before the previous one
        previous: _Line | None = None
        chained = False
        position = 0
        while upcoming is not None:
            file, number, raw = upcoming
            upcoming = next(it, None)
            position += 1
            here = Finding("", file, number, position)
            self.report.records = position - 1
            if not raw.endswith(b"\n"):
                if upcoming is None:
                    self.report.notes.append(
                        f"{file}:{number}: an incomplete last line (an interrupted write; "
                        "not a record)"
                    )
                    position -= 1
                    break
                raise _Tampered(_at(here, "an incomplete line inside the log"))
            digest = line_hash(raw)
            record, why = _parse(raw)
            if record is None:
                raise _Tampered(_at(here, why))
            seq = record.get("seq")
            if seq is None and not chained:
                self.report.legacy += 1
                before, previous = previous, _Line(file, number, raw, digest)
                continue
            if not chained:
                chained, self.first_chained = True, here
            prev = record.get("prev")
            if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev, str):
                raise _Tampered(_at(here, "a record without a valid seq and prev"))
            expected_prev = previous.hash if previous else GENESIS
            inserted = before is not None and prev == before.hash and seq == position - 1
            if inserted and previous is not None:
                where = Finding("", previous.file, previous.number, position - 1)
                raise _Tampered(
                    _at(where, "a record was inserted here (the next record chains over it)")
                )
            if seq != position:
                raise _Tampered(_at(here, self._sequence_problem(seq, position, upcoming)))
            if prev != expected_prev:
                raise _Tampered(self._chain_problem(here, record, previous, digest, upcoming))
            if position in self.wanted:
                self.hashes[position] = (digest, file, number)
            event = record.get("event")
            if event == "timestamp":
                stamp_problem = self.stamps.token(record, position)
                if stamp_problem is not None:
                    raise _Tampered(_at(here, stamp_problem.message))
            if self.stamps.required:
                cover = event != "checkpoint" and event != "timestamp"
                self.stamps.see(record.get("ts"), position, cover)
            if event == "checkpoint" and self._checkpoint(here, record, prev):
                self.tail_first = self.tail_latest = None
            else:
                ts = record.get("ts")
                if isinstance(ts, str):
                    if self.tail_first is None:
                        self.tail_first = (ts, here)
                    if self.tail_latest is None or ts > self.tail_latest:
                        self.tail_latest = ts
            before, previous = previous, _Line(file, number, raw, digest)
        self.report.records = position
        self.report.complete = True
        if previous is not None:
            self.report.head_seq, self.report.head_hash = position, previous.hash

    @staticmethod
    def _sequence_problem(seq: int, position: int, upcoming: tuple[str, int, bytes] | None) -> str:
        following = _parse(upcoming[2])[0] if upcoming else None
        if following is not None and following.get("seq") == position:
            return f"records {position} and {seq} are out of order (swapped with the next line)"
        if seq > position:
            return (
                f"expected record {position}, found {seq}: "
                f"{seq - position} record(s) removed before this line"
            )
        return f"expected record {position}, found {seq}: a record repeated or moved here"

    @staticmethod
    def _chain_problem(
        here: Finding,
        record: dict[str, Any],
        previous: _Line | None,
        digest: str,
        upcoming: tuple[str, int, bytes] | None,
    ) -> Finding:
        following = _parse(upcoming[2])[0] if upcoming else None
        intact = following is not None and following.get("prev") == digest
        if record.get("event") == "checkpoint":  # its signature vouches for its prev
            info, _ = check_head_document(record.get("checkpoint"))
            intact = intact or (info is not None and info.head == record.get("prev"))
        if previous is not None and intact:
            # this line is what the next one expects: the line before it changed
            where = Finding("", previous.file, previous.number, (here.seq or 1) - 1)
            return _at(where, "this record was altered (the next record's prev no longer matches)")
        return _at(here, "this record was altered or forged (its prev does not match the chain)")

    def _checkpoint(self, here: Finding, record: dict[str, Any], prev: str) -> bool:
        """Check a checkpoint record; True when it counts (signed by a trusted key)."""
        problem = signing.check_members(record, CHECKPOINT_RECORD_MEMBERS)
        if problem is None and not isinstance(record["reason"], str):
            problem = "reason is not text"
        if problem is not None:
            raise _Tampered(_at(here, f"checkpoint record: {problem}"))
        document = record["checkpoint"]
        info, reason = check_head_document(document)
        if info is None:
            raise _Tampered(_at(here, f"checkpoint: {reason}"))
        if info.seq != (here.seq or 0) - 1 or info.head != prev:
            raise _Tampered(_at(here, "checkpoint signs another head than the record before it"))
        if record["ts"] != info.ts:
            raise _Tampered(_at(here, "checkpoint record: its ts is not the time it signs"))
        raw = _public_key(document["public_key"])
        if raw is None:  # (check_head_document checked it; never trust an assert to)
            raise _Tampered(_at(here, "checkpoint: no valid public key"))
        if self._key is None:
            self._key = raw
            self._key_raws.append(raw)
        elif raw != self._key:
            raise _Tampered(
                _at(
                    here,
                    f"checkpoint signed by key {info.key_id}, which no rotation introduced "
                    f"(the log's key is {signing.key_id(self._key)})",
                )
            )
        self.signers[raw] = None
        self.stamps.signed(info.seq, info.head)
        following = _public_key(document.get("next_public_key"))
        counts = raw in self.trusted
        if counts:
            if following is not None:
                self.trusted.add(following)  # trust moves forward, never back
            self.report.checkpoints += 1
            self.report.signed_seq = info.seq
            self.covered = here.seq or 0
            self.report.interval = document.get("interval", self.default_interval)
            self.report.last_checkpoint = {
                "seq": info.seq,
                "head": info.head,
                "ts": info.ts,
                "key_id": info.key_id,
                "file": here.file,
                "line": here.line,
            }
        else:
            self.report.untrusted_checkpoints += 1
            if self.first_untrusted is None:
                self.first_untrusted = here
        if following is not None:
            self._key = following
            self._key_raws.append(following)
        return counts

    def trusted_names(self) -> str:
        keys = self.report.trusted
        return f"the trusted key{'s' if len(keys) > 1 else ''} {', '.join(keys)}"

    def key_ids(self) -> list[str]:
        return [signing.key_id(k) for k in self._key_raws]

    def check_trust(self) -> None:
        """Checkpoints, and none by a trusted key: the log was signed by someone else."""
        if self.report.checkpoints or self.first_untrusted is None:
            return
        signers = ", ".join(signing.key_id(k) for k in self.signers)
        raise _Tampered(
            _at(
                self.first_untrusted,
                f"the checkpoints are signed by {signers}, not by {self.trusted_names()} "
                "nor by a key introduced by one: nothing in this log is signed by a trusted key",
            )
        )

    def check_kept_head(self, info: CheckpointInfo, source: str) -> None:
        """A signed head kept earlier must be a trusted key's and still be in the log, byte
        for byte; it then vouches for the records up to its own."""
        raw = _public_key(info.document.get("public_key"))
        if raw is None or raw not in self.trusted:
            own = source == HEAD_NAME  # then the finding names the file
            raise _Tampered(
                Finding(
                    f"{'signed' if own else source + ' is signed'} by key {info.key_id}, "
                    f"not by {self.trusted_names()} nor by a key introduced by one",
                    HEAD_NAME if own else None,
                )
            )
        if info.seq > self.report.records:
            last = self.files[-1].name if self.files else None
            raise _Tampered(
                Finding(
                    f"the log ends at record {self.report.records} but {source} holds a head "
                    f"signed at record {info.seq}: the log was cut",
                    last,
                    None,
                    self.report.records,
                )
            )
        if info.seq == 0:
            return
        found = self.hashes.get(info.seq)
        if found is None or found[0] != info.head:
            file, line = (found[1], found[2]) if found else (None, None)
            raise _Tampered(
                Finding(
                    f"record {info.seq} is not the one {source} signed: "
                    "the log was rewritten from there or before",
                    file,
                    line,
                    info.seq,
                )
            )
        if info.seq > self.covered:
            self.covered = info.seq
            self.report.signed_seq = max(self.report.signed_seq, info.seq)
            self._tail_after(info.seq)

    def _tail_after(self, seq: int) -> None:
        """The first and latest times of the records after ``seq`` (a second, partial read:
        only when a kept head vouches for more than the checkpoints do)."""
        self.tail_first = self.tail_latest = None
        for position, (file, number, raw) in enumerate(_lines(self.files), 1):
            if position <= seq or position > self.report.records:
                continue
            record, _ = _parse(raw)
            ts = record.get("ts") if record is not None else None
            if isinstance(ts, str):
                if self.tail_first is None:
                    self.tail_first = (ts, Finding("", file, number, position))
                if self.tail_latest is None or ts > self.tail_latest:
                    self.tail_latest = ts

    def check_signed(self, require_signed: bool) -> None:
        """With a key given: some record must be vouched for."""
        if not require_signed or self.covered:
            return
        chained = self.report.records - self.report.legacy
        if self.report.records == 0:
            detail = "the log holds no record"
        elif chained == 0:
            detail = f"its {self.report.legacy} line(s) have no seq, as if written before the chain"
        else:
            detail = f"{chained} record(s) and no checkpoint"
        first = self.first_chained or Finding("", self.files[0].name if self.files else None)
        raise _Tampered(_at(first, f"no record is signed by a trusted key ({detail})"))

    def check_stamps(self) -> None:
        """Records no time-stamp token covers (``stamps.StampCheck.finish``)."""
        problem = self.stamps.finish()
        if problem is not None:
            raise _Tampered(self._located(problem))

    def _located(self, problem: stamps.Problem) -> Finding:
        """A finding at record ``problem.seq`` (a second, partial read for its line)."""
        for position, (file, number, _) in enumerate(_lines(self.files), 1):
            if position == problem.seq:
                return Finding(problem.message, file, number, position)
        return Finding(problem.message, None, None, problem.seq)

    def check_tail(self) -> None:
        """Only the newest records may wait for a checkpoint (see the module docstring)."""
        records = self.report.records
        self.report.unsigned = records - (self.covered or self.report.legacy)
        if self.report.unsigned <= 0 or self.tail_first is None or self.tail_latest is None:
            return
        first_ts, where = self.tail_first
        self.report.unsigned_since = first_ts
        interval = self.report.interval
        if not interval:
            return
        try:
            waited = (parse_iso(self.tail_latest) - parse_iso(first_ts)).total_seconds()
        except ValueError:
            return
        if waited > interval + MARGIN:
            raise _Tampered(
                _at(
                    where,
                    f"record {where.seq} was left unsigned: records written {waited:.0f} s "
                    f"after it follow, but the writer signs within {interval} s (+{MARGIN} s): "
                    "checkpoints after it were removed, or the server could not sign",
                )
            )


def _at(where: Finding, message: str) -> Finding:
    return Finding(message, where.file, where.line, where.seq)


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """A log line read strictly, or (None, why not)."""
    try:
        value = signing.loads_strict(raw)
    except signing.DocumentError as exc:
        return None, f"not a valid record ({exc})"
    except ValueError:
        return None, "not a JSON record"
    return (value, "") if isinstance(value, dict) else (None, "not a JSON record")


def _read_head(path: Path) -> tuple[CheckpointInfo | None, str]:
    """(the signed head in ``path``, "valid") or (None, why not); OSError if unreadable."""
    try:
        document = signing.loads_strict(path.read_bytes())
    except signing.DocumentError as exc:
        return None, str(exc)
    except ValueError:
        return None, "not JSON"
    return check_head_document(document)


def load_head(path: Path) -> CheckpointInfo:
    """A kept head file (``intake audit head --json``), read strictly and checked against
    the key it carries; ``UsageError`` if it is not one. Whether that key is trusted is
    ``verify_log``'s question."""
    try:
        info, reason = _read_head(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if info is None:
        raise UsageError(f"{path}: not a signed audit head ({reason})")
    return info


def verify_log(
    log_dir: Path,
    trusted: list[signing.Verifier],
    since_head: CheckpointInfo | None = None,
    require_signed: bool = False,
    default_interval: int = DEFAULT_INTERVAL,
    tsa_roots: list[x509.Certificate] | None = None,
    timestamp_interval: int = stamps.DEFAULT_INTERVAL,
) -> Report:
    """Check the whole log under ``log_dir``; see the module docstring. ``tsa_roots``:
    the time-stamping authority's CA certificates (tokens then checked and required)."""
    walk = _Walk(
        log_dir, trusted, default_interval, stamps.StampCheck(tsa_roots, timestamp_interval)
    )
    kept: list[tuple[CheckpointInfo, str]] = []
    if since_head is not None:
        kept.append((since_head, "the kept head"))
        walk.report.since_head = since_head.seq
    head_file = log_dir / HEAD_NAME
    own: tuple[CheckpointInfo | None, str] | None = None
    if head_file.exists():
        try:
            own = _read_head(head_file)
        except OSError as exc:
            own = (None, f"unreadable ({exc.strerror})")
        if own[0] is not None:
            kept.append((own[0], HEAD_NAME))
    walk.wanted = {info.seq for info, _ in kept}
    try:
        walk.run()
        walk.check_trust()
        if own is not None and own[0] is None:
            raise _Tampered(Finding(f"not a signed audit head ({own[1]})", HEAD_NAME))
        for info, source in kept:
            walk.check_kept_head(info, source)
        walk.check_signed(require_signed)
        walk.check_tail()
        walk.check_stamps()
    except _Tampered as exc:
        walk.report.problem = exc.finding
    walk.report.keys = walk.key_ids()
    return walk.report
