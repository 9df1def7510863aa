"""Checking an audit log: chain, sequence, checkpoint signatures, keys, tail.

Needs nothing but the log files and the public key(s) to trust, so it runs on a copy of
``log/`` on another machine. The format is ``chain``'s docstring.

Rules:
- Lines are read in file-name order as one log. The first problem is the answer (what
  follows a break cannot be trusted); it names the file and line (1-based) of the record
  most likely at fault: an altered record is the one whose hash the next record no longer
  matches, an inserted one is the one the next record chains over, a removal is named
  where the sequence jumps.
- Every checkpoint must sign exactly the head before it, with a valid signature by the
  key it carries; that key must be the log's current key, which changes only through a
  checkpoint's ``next_public_key`` (rotation). At least one key of that sequence must be
  one the caller trusts.
- Records after the last checkpoint are "not yet signed": reported, not tampering. A
  torn last line is an interrupted write, reported. A signed head kept earlier
  (``--since-head``, and the log's own ``audit-head.json``) must still be in the log,
  byte for byte: a log shorter than it was cut, a different record means it was rewritten.
- Never raises on hostile input: every problem is a finding.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from intake.adapters.audit import signing
from intake.adapters.audit.chain import (
    GENESIS,
    HEAD_NAME,
    CheckpointInfo,
    checkpoint_info,
    line_hash,
    log_files,
)
from intake.core.errors import UsageError


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

    records: int = 0
    files: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoints: int = 0
    signed_seq: int = 0  # the last record a checkpoint signs (0: none)
    last_checkpoint: dict[str, Any] | None = None
    unsigned: int = 0
    legacy: int = 0
    keys: list[str] = field(default_factory=list)
    trusted: list[str] = field(default_factory=list)
    since_head: int | None = None
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


def check_head_document(document: Any) -> tuple[CheckpointInfo | None, str]:
    """A checkpoint document (or a kept head) checked against the key it carries."""
    info = checkpoint_info(document)
    if info is None:
        return None, "not an audit checkpoint"
    raw = _public_key(info.document.get("public_key"))
    if raw is None:
        return None, "no valid public_key"
    if info.document.get("next_public_key") is not None and (
        _public_key(info.document.get("next_public_key")) is None
    ):
        return None, "next_public_key is not an Ed25519 key"
    valid, reason = signing.verify_document(document, signing.verifier_from_raw(raw))
    return (info, "valid") if valid else (None, reason)


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

    def __init__(self, log_dir: Path, trusted: list[signing.Verifier]) -> None:
        self.files = log_files(log_dir)
        self.report = Report(files=len(self.files), trusted=[v.key_id for v in trusted])
        self._trusted = {v.raw for v in trusted}
        self._key: bytes | None = None
        self._key_raws: list[bytes] = []
        self._first_checkpoint: Finding | None = None
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
            record = _parse(raw)
            if record is None:
                raise _Tampered(_at(here, "not a JSON record"))
            seq = record.get("seq")
            if seq is None and not chained:
                self.report.legacy += 1
                before, previous = previous, _Line(file, number, raw, digest)
                continue
            chained = True
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
            if record.get("event") == "checkpoint":
                self._checkpoint(here, record, prev)
            before, previous = previous, _Line(file, number, raw, digest)
        self.report.records = position
        if previous is not None:
            self.report.head_seq, self.report.head_hash = position, previous.hash
        if self.report.checkpoints:
            self.report.unsigned = position - (self.report.signed_seq + 1)
        else:
            self.report.unsigned = position - self.report.legacy

    @staticmethod
    def _sequence_problem(seq: int, position: int, upcoming: tuple[str, int, bytes] | None) -> str:
        following = _parse(upcoming[2]) if upcoming else None
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
        following = _parse(upcoming[2]) if upcoming else None
        intact = following is not None and following.get("prev") == digest
        if record.get("event") == "checkpoint":  # its signature vouches for its prev
            info, _ = check_head_document(record.get("checkpoint"))
            intact = intact or (info is not None and info.head == record.get("prev"))
        if previous is not None and intact:
            # this line is what the next one expects: the line before it changed
            where = Finding("", previous.file, previous.number, (here.seq or 1) - 1)
            return _at(where, "this record was altered (the next record's prev no longer matches)")
        return _at(here, "this record was altered or forged (its prev does not match the chain)")

    def _checkpoint(self, here: Finding, record: dict[str, Any], prev: str) -> None:
        document = record.get("checkpoint")
        info, reason = check_head_document(document)
        if info is None:
            raise _Tampered(_at(here, f"checkpoint: {reason}"))
        if info.seq != (here.seq or 0) - 1 or info.head != prev:
            raise _Tampered(_at(here, "checkpoint signs another head than the record before it"))
        raw = _public_key(info.document["public_key"])
        if raw is None:
            raise _Tampered(_at(here, "checkpoint: unreadable public key"))
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
        following = _public_key(info.document.get("next_public_key"))
        if following is not None:
            self._key = following
            self._key_raws.append(following)
        if self._first_checkpoint is None:
            self._first_checkpoint = here
        self.report.checkpoints += 1
        self.report.signed_seq = info.seq
        self.report.last_checkpoint = {
            "seq": info.seq,
            "head": info.head,
            "ts": info.ts,
            "key_id": info.key_id,
            "file": here.file,
            "line": here.line,
        }

    def check_trust(self) -> None:
        self.report.keys = [signing.key_id(k) for k in self._key_raws]
        if not self._key_raws or not self._trusted:
            return
        if not self._trusted & set(self._key_raws):
            first = self._first_checkpoint or Finding("")
            raise _Tampered(
                _at(
                    first,
                    f"checkpoints are signed by {', '.join(self.report.keys)}, "
                    f"not by the trusted key {', '.join(self.report.trusted)}",
                )
            )

    def check_kept_head(self, info: CheckpointInfo, source: str) -> None:
        """A signed head kept earlier must still be in the log, byte for byte."""
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


def _at(where: Finding, message: str) -> Finding:
    return Finding(message, where.file, where.line, where.seq)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def load_head(path: Path) -> CheckpointInfo:
    """A kept head file (``intake audit head --json``); ``UsageError`` if it is not one."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"{path}: not JSON") from None
    info, reason = check_head_document(document)
    if info is None:
        raise UsageError(f"{path}: not a signed audit head ({reason})")
    return info


def verify_log(
    log_dir: Path, trusted: list[signing.Verifier], since_head: CheckpointInfo | None = None
) -> Report:
    """Check the whole log under ``log_dir``; see the module docstring."""
    walk = _Walk(log_dir, trusted)
    kept: list[tuple[CheckpointInfo, str]] = []
    if since_head is not None:
        kept.append((since_head, "the kept head"))
        walk.report.since_head = since_head.seq
    head_file = log_dir / HEAD_NAME
    if head_file.exists():
        try:
            own = load_head(head_file)
        except UsageError as exc:
            walk.report.problem = Finding(f"{exc}", HEAD_NAME)
            return walk.report
        kept.append((own, HEAD_NAME))
    walk.wanted = {info.seq for info, _ in kept}
    try:
        walk.run()
        walk.check_trust()
        for info, source in kept:
            walk.check_kept_head(info, source)
    except _Tampered as exc:
        walk.report.problem = exc.finding
        walk.report.keys = walk.report.keys or [signing.key_id(k) for k in walk._key_raws]
    return walk.report
