"""``intake audit show|verify|head`` and the audit key commands of ``intake keys``.

Rules:
- ``audit verify`` exits 0 when nothing was tampered with (the newest records not yet
  signed are reported, not failed), 1 when something was (the first bad record named by
  file and line, also on stderr), 2 on bad usage. Only the keys given (``--public-key``,
  repeatable) or, without one, the instance's own keys are trusted; with a key given, a
  log in which no record is signed by a trusted key fails. With ``--public-key`` and
  ``--log-dir`` it reads nothing else: no instance is opened or created. Its first line
  says how far it read: a tampered log is never summed up as an empty one.
- ``audit verify --tsa-ca-file FILE`` checks every time-stamp token against that CA and
  requires every record older than twice the time-stamp interval to be covered by one
  (``intake.adapters.audit.stamps``); without it, tokens are reported, not required. It
  says up to which record the log is proven to have existed, and when.
- ``audit head`` signs the records not yet signed (when it can), then prints the latest
  signed head: the JSON a data-protection officer keeps for ``verify --since-head``.
  ``--send`` mails it to ``[audit] head_recipients`` (``intake.services.anchors``: with a
  fresh time-stamp when an authority is configured); a mail that fails is exit 1.
- The text view of ``audit show`` quotes every value holding a space, ``=`` or a quote
  (after escaping control and non-ASCII characters), so no client-chosen string can
  pose as another field; ``--json`` prints the records as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from intake.adapters.audit import signing, stamps, tsa
from intake.adapters.audit import verify as audit_verify
from intake.adapters.audit import writer as audit_mod
from intake.adapters.audit.chain import CheckpointInfo, last_checkpoint
from intake.core.clock import SystemClock, parse_iso
from intake.core.config import Config
from intake.core.errors import IntakeError, NotFound, UsageError
from intake.frontends.cli import common
from intake.frontends.cli.common import time_arg
from intake.services.alerts.alerter import Alerts
from intake.services.anchors import Anchors
from intake.services.instance import Instance

Open = Callable[[argparse.Namespace], Instance]
Load = Callable[[argparse.Namespace], Config]


def quote(value: Any) -> str:
    """One field value for the text view: escaped, and quoted when it could mislead."""
    text = audit_mod.display(value)
    if text == "" or any(c in text for c in ' ="'):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def _fields(record: dict[str, Any]) -> list[tuple[str, Any]]:
    if record.get("event") == "checkpoint" and isinstance(record.get("checkpoint"), dict):
        doc = record["checkpoint"]
        signature = doc.get("signature")
        shown: list[tuple[str, Any]] = [
            ("reason", record.get("reason")),
            ("signs", doc.get("seq")),
            ("head", doc.get("head")),
            ("key", signature.get("key_id") if isinstance(signature, dict) else None),
        ]
        if doc.get("next_public_key"):
            shown.append(("next_key", doc["next_public_key"]))
        shown.append(("seq", record.get("seq")))
        return [(k, v) for k, v in shown if v is not None]
    if record.get("event") == "timestamp":  # the token itself is for machines (--json)
        return [(k, v) for k, v in record.items() if k not in ("ts", "event", "prev", "response")]
    return [(k, v) for k, v in record.items() if k not in ("ts", "event", "prev")]


def cmd_show(args: argparse.Namespace, load: Load) -> int:
    since = time_arg(args.since, "--since")
    until = time_arg(args.until, "--until")
    if args.event and args.event not in audit_mod.EVENTS:
        raise UsageError(f"--event: unknown event {args.event!r}")
    cfg = load(args)
    shown = 0
    for record in audit_mod.read_records(cfg.log_dir):
        if args.account and record.get("account") != args.account:
            continue
        if args.event and record.get("event") != args.event:
            continue
        if since or until:
            try:
                ts = parse_iso(str(record.get("ts", "")))
            except ValueError:
                continue
            if (since and ts < since) or (until and ts > until):
                continue
        shown += 1
        if args.json:
            print(json.dumps(record, ensure_ascii=True))
            continue
        rest = " ".join(f"{audit_mod.display(k)}={quote(v)}" for k, v in _fields(record))
        print(
            f"{audit_mod.display(record.get('ts', '?'))}  "
            f"{audit_mod.display(record.get('event', '?')):<18} {rest}"
        )
    if not shown and not args.json:
        print("no matching audit record", file=sys.stderr)
    return 0


# -- verify ------------------------------------------------------------------------------


def _summary(report: audit_verify.Report, log_dir: Path) -> str:
    """The first line: what was read (never a count the check did not reach)."""
    if report.complete:
        return (
            f"audit log {log_dir}: {report.records} record(s) in {report.files} file(s), "
            f"head at record {report.head_seq}"
        )
    problem = report.problem
    at = problem.seq if problem is not None and problem.seq else report.records + 1
    return (
        f"audit log {log_dir}: {report.files} file(s); reading stopped at record {at}, "
        f"the first problem: records 1-{at - 1} before it chain, nothing after it was checked"
        if at > 1
        else f"audit log {log_dir}: {report.files} file(s); reading stopped at record 1, "
        "the first problem: nothing was checked"
    )


def _print_report(report: audit_verify.Report, log_dir: Path) -> None:
    print(_summary(report, log_dir))
    if report.complete:
        _print_details(report)
    for note in report.notes:
        print(f"  note: {note}")
    if report.problem is None:
        if report.signed_seq:
            print(
                "verified: the chain is whole and records "
                f"1-{report.signed_seq} are signed by a trusted key"
            )
        else:
            print("verified: the chain is whole; no record is signed by a trusted key yet")
    else:
        where = report.problem.where()
        print(f"TAMPERED: {where + ': ' if where else ''}{report.problem.message}")


def _print_details(report: audit_verify.Report) -> None:
    if report.legacy:
        print(f"  {report.legacy} record(s) written before the chain existed (not covered)")
    cp = report.last_checkpoint
    if cp:
        print(
            f"  signed: records 1-{cp['seq']} by {report.checkpoints} checkpoint(s) of a "
            f"trusted key; the last at {cp['file']}:{cp['line']} ({cp['ts']}, key {cp['key_id']})"
        )
    if report.signed_seq > (cp["seq"] if cp else 0):
        print(f"  signed: records 1-{report.signed_seq} by a kept head of a trusted key")
    if not report.signed_seq and report.records:
        print("  signed: nothing by a trusted key")
    if report.untrusted_checkpoints:
        print(
            f"  {report.untrusted_checkpoints} checkpoint(s) by a key not trusted here: "
            "checked, not counted"
        )
    if len(report.keys) > 1:
        print(f"  keys (rotations): {' -> '.join(report.keys)}")
    print(f"  trusted: {', '.join(report.trusted)}")
    if report.unsigned > 0:
        since = f" since {report.unsigned_since}" if report.unsigned_since else ""
        wait = f"; the writer signs within {report.interval} s" if report.interval else ""
        print(
            f"  not yet signed: {report.unsigned} record(s) after the last signed one{since}{wait}"
        )
    if report.since_head is not None and report.ok:
        print(f"  extends the kept head at record {report.since_head}")
    _print_stamps(report.timestamps)


def _print_stamps(stamps: stamps.StampReport) -> None:
    if not stamps.tokens:
        if stamps.checked:
            print("  time-stamped: no token yet")
        return
    if not stamps.checked:
        print(
            f"  time-stamps: {stamps.tokens} token(s), not checked (no --tsa-ca-file); the "
            f"latest says records 1-{stamps.stamped_seq} existed at {stamps.stamped_at}"
        )
        return
    print(
        f"  time-stamped: records 1-{stamps.stamped_seq} existed at {stamps.stamped_at} "
        f"(proven by {stamps.tokens} token(s) of {audit_mod.display(stamps.authority)}, "
        f"checked against the TSA CA; one every {stamps.interval} s)"
    )


def cmd_verify(args: argparse.Namespace, load: Load) -> int:
    cfg: Config | None = None
    if args.log_dir is None or not args.public_key:
        cfg = load(args)
    log_dir = Path(args.log_dir) if args.log_dir else cfg.log_dir if cfg else Path(".")
    if not log_dir.is_dir():
        raise UsageError(f"--log-dir: {log_dir} is not a folder")
    if args.public_key:
        trusted = [signing.load_verifier(Path(path)) for path in args.public_key]
    else:
        if cfg is None:
            raise UsageError("--public-key FILE is needed when no instance is given")
        trusted = signing.instance_verifiers(cfg.keys_dir)
        if not trusted:
            raise UsageError(
                "this instance has no audit key yet (intake init DIR or intake serve creates "
                "it); or pass --public-key FILE"
            )
    since = audit_verify.load_head(Path(args.since_head)) if args.since_head else None
    interval = cfg.audit.checkpoint_interval if cfg else audit_verify.DEFAULT_INTERVAL
    roots = tsa.load_roots(Path(args.tsa_ca_file)) if args.tsa_ca_file else None
    report = audit_verify.verify_log(
        log_dir,
        trusted,
        since,
        require_signed=bool(args.public_key),
        default_interval=interval,
        tsa_roots=roots,
        timestamp_interval=(cfg.audit.timestamp_interval if cfg else stamps.DEFAULT_INTERVAL),
    )
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        _print_report(report, log_dir)
    if report.problem is not None:
        where = report.problem.where()
        if cfg is not None and log_dir.resolve() == cfg.log_dir.resolve():
            # the log is not trusted: the alert is queued and sent, not audited in it
            Alerts(cfg, None, SystemClock()).audit_verification_failed(
                report.problem.message, where
            )
        print(
            f"intake: audit log tampered: {where + ': ' if where else ''}{report.problem.message}",
            file=sys.stderr,
        )
        return 1
    return 0


# -- head --------------------------------------------------------------------------------


def cmd_head(args: argparse.Namespace, open_: Open) -> int:
    inst = open_(args)
    info: CheckpointInfo | None
    if args.send:  # the head mailed is the one printed
        sent = Anchors(inst).send_head("cli")
        info = sent.head
        stamped = f", with the time-stamp of record {sent.stamp['stamps']}" if sent.stamp else ""
        print(
            f"signed head of record {info.seq} mailed to {len(sent.recipients)} "
            f"recipient(s){stamped}",
            file=sys.stderr if args.json else sys.stdout,
        )
    else:
        try:
            info = inst.audit.checkpoint("head")
        except IntakeError as exc:  # cannot sign now (no write access): the last signed head
            print(f"intake: note: {exc}; showing the last signed head", file=sys.stderr)
            info = last_checkpoint(inst.config.log_dir)
    if info is None:
        raise NotFound(
            "no signed head yet: the instance has no audit key (intake init DIR creates it)"
        )
    if args.json:
        print(json.dumps(info.document, indent=2))
        return 0
    print(f"signed head: record {info.seq}, SHA-256 {info.head}")
    print(f"  signed at {info.ts} by key {info.key_id}")
    print("keep it outside the server: intake audit head --json > head-YYYY-MM.json;")
    print("later, intake audit verify --since-head head-YYYY-MM.json proves the log extends it")
    return 0


# -- keys --------------------------------------------------------------------------------


def audit_key_summary(cfg: Config) -> dict[str, Any] | None:
    """``keys show --json``'s ``audit`` member (None when the instance has no key yet)."""
    path = cfg.keys_dir / signing.AUDIT_KEY_FILE
    if not path.exists():
        return None
    verifier = signing.load_signer(path).verifier
    return {
        "algorithm": "ed25519",
        "key_id": verifier.key_id,
        "public_key_pem": verifier.pem().decode(),
        "retired": [v.key_id for v in signing.retired_verifiers(cfg.keys_dir)],
    }


def print_audit_key(cfg: Config) -> None:
    summary = audit_key_summary(cfg)
    print("Audit signing key (Ed25519; auditors check the audit log with its public half):")
    if summary is None:
        print("  none yet: intake serve creates it, or now: intake init <instance folder>")
        return
    print(f"  {summary['key_id']}")
    print("  export it: intake keys export-audit-public FILE")
    for old in summary["retired"]:
        print(f"  retired: {old}")


def cmd_export_public(args: argparse.Namespace, load: Load) -> int:
    cfg = load(args)
    path = cfg.keys_dir / signing.AUDIT_KEY_FILE
    if not path.exists():
        raise NotFound("this instance has no audit key yet (intake init DIR or serve creates it)")
    pem = signing.load_signer(path).verifier.pem()
    target = Path(args.file)
    if args.file == "-":
        sys.stdout.write(pem.decode())
        return 0
    try:
        target.write_bytes(pem)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    print(f"audit public key {signing.key_id(signing.verifier_from_pem(pem).raw)} -> {target}")
    return 0


def cmd_rotate(args: argparse.Namespace, open_: Open) -> int:
    inst = open_(args)
    keys_dir = inst.config.keys_dir
    new = signing.generate_signer()
    stamp = inst.clock.now().strftime("%Y%m%dT%H%M%SZ")

    def install() -> None:
        signing.install_audit_key(keys_dir, new, stamp)

    first, second = inst.audit.chain.rotate(new, install)
    print(f"audit key rotated: {first.key_id} -> {second.key_id}")
    print(f"  introduced by the checkpoint signing record {first.seq} with the old key")
    print("  the old public key stays in keys/ (old checkpoints still verify);")
    print("  give auditors the new one: intake keys export-audit-public FILE")
    return 0


# -- parser ------------------------------------------------------------------------------


def register(sub: Any, keys_sub: Any, add: common.Add) -> Any:
    """Add ``audit show|verify|head`` and ``keys export-audit-public|rotate-audit``;
    returns the ``audit`` sub-parsers (other modules add theirs)."""
    open_, load, parser_class = common.open_instance, common.config, common.Parser
    audit = sub.add_parser("audit", help="read and verify the audit log")
    aud = audit.add_subparsers(dest="audit_command", required=True, parser_class=parser_class)
    p = add(aud, "show", lambda a: cmd_show(a, load), "print audit records, oldest first")
    p.add_argument("--since", metavar="T")
    p.add_argument("--until", metavar="T")
    p.add_argument("--account", metavar="NAME")
    p.add_argument("--event", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p = add(
        aud,
        "verify",
        lambda a: cmd_verify(a, load),
        "check the audit log: hash chain, sequence, signed checkpoints (exit 1: tampered)",
    )
    p.add_argument(
        "--public-key",
        metavar="FILE",
        action="append",
        help="an audit public key (PEM) to trust; again for another (the key before a "
        "rotation). Default: the instance's own keys",
    )
    p.add_argument("--log-dir", metavar="DIR", help="the log folder (a copy will do)")
    p.add_argument("--since-head", metavar="FILE", help="a head kept earlier (audit head --json)")
    p.add_argument(
        "--tsa-ca-file",
        metavar="FILE",
        help="the time-stamping authority's CA certificate(s), PEM: check every time-stamp "
        "token and require them",
    )
    p.add_argument("--json", action="store_true")
    p = add(aud, "head", lambda a: cmd_head(a, open_), "sign and print the latest chain head")
    p.add_argument("--json", action="store_true")
    p.add_argument("--send", action="store_true", help="mail it to [audit] head_recipients as well")

    p = add(
        keys_sub,
        "export-audit-public",
        lambda a: cmd_export_public(a, load),
        "write the audit public key (PEM SubjectPublicKeyInfo) to FILE (- for stdout)",
    )
    p.add_argument("file")
    add(
        keys_sub,
        "rotate-audit",
        lambda a: cmd_rotate(a, open_),
        "replace the audit key; the old key signs the introduction of the new one",
    )
    return aud
