"""``intake audit certificates|certificate|verify-document``: signed documents on the host.

Rules:
- ``certificates`` lists the destruction certificates the sweeper issued (``--json``: the
  signed documents themselves, an array).
- ``certificate ID --out FILE`` writes one, exactly as issued, to FILE (``-`` or no
  ``--out``: stdout), replacing FILE atomically. An ID that is not a destroyed entry's
  is exit 2, one line on stderr.
- ``verify-document FILE --public-key KEY`` needs nothing from the instance: exit 0 and
  one line saying what the document is and what it is about; exit 1 and one line on
  stderr saying why when it is not valid (altered, another key, not a document, a member
  twice or one its kind does not have: ``documents.parse`` and ``check`` are strict);
  exit 2 when FILE or KEY cannot be read.
- Human output escapes every stored string (no client string drives the terminal).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from intake.adapters.audit import signing
from intake.adapters.audit.writer import display
from intake.core.errors import UsageError
from intake.core.paths import check_account_name
from intake.frontends.cli import common
from intake.services.documents import signed as documents

MAX_DOCUMENT_BYTES = 1 << 20


def cmd_certificates(args: argparse.Namespace) -> int:
    if args.account is not None:
        check_account_name(args.account)
    since = common.time_arg(args.since, "--since")
    kept = common.open_instance(args).catalog.certificates(args.account, since)
    docs = [json.loads(k.document) for k in kept]
    if args.json:
        print(json.dumps(docs, indent=2, ensure_ascii=True))
        return 0
    if not docs:
        print("no destruction certificate" + (f" for {args.account}" if args.account else ""))
        return 0
    header = ("ID", "DESTROYED (UTC)", "ACCOUNT", "SIZE", "INTEGRITY", "POLICY", "PATH")
    rows = [
        (
            str(d.get("entry")),
            display(str(d.get("destroyed_at", "")))[:19] + "Z",
            display(d.get("account", "")),
            str(d.get("size", "")),
            display(d.get("integrity", "")),
            display(d.get("policy", "")),
            display(d.get("path", "")),
        )
        for d in docs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(docs)} certificate(s); export one with: intake audit certificate ID --out FILE")
    return 0


def _write_atomically(target: Path, data: bytes) -> None:
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_certificate(args: argparse.Namespace) -> int:
    try:
        entry_id = int(args.id)
    except ValueError:
        raise UsageError(f"not a catalog entry id: {args.id!r}") from None
    kept = common.open_instance(args).catalog.certificate(entry_id)
    if kept is None:
        raise UsageError(f"no destruction certificate for entry {entry_id}")
    data = documents.render(json.loads(kept.document))
    if args.out in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out: {out} is a folder")
    if not out.parent.is_dir():
        raise UsageError(f"--out: no folder {out.parent}")
    _write_atomically(out, data)
    print(f"certificate of entry {entry_id} written to {out}", file=sys.stderr)
    return 0


def _read_document(path: Path) -> tuple[Any, str]:
    """The document in FILE, read strictly, or (None, why not)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        return None, "not a JSON document (too large)"
    return documents.parse(data)


def cmd_verify_document(args: argparse.Namespace) -> int:
    verifier = signing.load_verifier(Path(args.public_key))
    document, reason = _read_document(Path(args.file))
    if document is None:
        valid = False
    else:
        valid, reason = documents.check(document, verifier)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": valid,
                    "reason": reason,
                    "kind": document.get("kind") if isinstance(document, dict) else None,
                    "key_id": verifier.key_id,
                    "document": document if valid else None,
                },
                indent=2,
                ensure_ascii=True,
            )
        )
        return 0 if valid else 1
    if not valid:
        print(f"intake: error: {display(args.file)}: NOT VALID: {reason}", file=sys.stderr)
        return 1
    print(f"VALID {display(documents.describe(document))}; signed by {verifier.key_id}")
    return 0


def register(audit_sub: Any, add: common.Add) -> None:
    """Add ``certificates``, ``certificate`` and ``verify-document`` under ``intake audit``."""
    p = add(audit_sub, "certificates", cmd_certificates, "list the destruction certificates")
    p.add_argument("--account", metavar="NAME")
    p.add_argument("--since", metavar="T", help="destroyed at or after T (ISO-8601)")
    p.add_argument("--json", action="store_true")
    p = add(
        audit_sub,
        "certificate",
        cmd_certificate,
        "export one destruction certificate (ID: the catalog entry id)",
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: stdout)")
    p = add(
        audit_sub,
        "verify-document",
        cmd_verify_document,
        "verify a destruction certificate or a receipt offline",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--public-key", required=True, metavar="FILE", help="the audit public key")
    p.add_argument("--json", action="store_true")
