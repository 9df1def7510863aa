"""``intake report``: the auditor's report, one self-contained HTML file.

Rules:
- Exactly one of ``--account NAME`` and ``--all``; ``--since``/``--until`` ISO-8601
  (``--until`` excluded); ``--lang fr`` (default) or ``en``. Bad usage or an unknown
  account: exit 2, one line on stderr.
- ``--out FILE`` is replaced atomically (a reader never sees half a report); without it,
  or with ``-``, the HTML goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from intake.core.errors import UsageError
from intake.core.paths import check_account_name
from intake.frontends.cli import common
from intake.services.reports import publish as reports
from intake.services.reports.data import Window
from intake.services.reports.text import LANGUAGES


def cmd_report(args: argparse.Namespace) -> int:
    account = check_account_name(args.account) if args.account else None
    since = common.time_arg(args.since, "--since")
    until = common.time_arg(args.until, "--until")
    if since and until and until <= since:
        raise UsageError("--until must be after --since")
    out = None if args.out in (None, "-") else Path(args.out)
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise UsageError(f"--out: cannot write a file at {out}")
    inst = common.open_instance(args)
    try:
        html = reports.build(inst, account, Window(since, until), args.lang)
    finally:
        inst.close()
    if out is None:
        sys.stdout.write(html)
        return 0
    reports.write_file(out, html)
    print(f"report written to {out}", file=sys.stderr)
    return 0


def register(subparsers: Any, add: common.Add) -> None:
    """Add ``report`` to the ``intake`` parser."""
    p = add(subparsers, "report", cmd_report, "the auditor's report (one HTML file)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--account", metavar="NAME", help="one member in detail")
    who.add_argument("--all", action="store_true", help="a summary over every member")
    p.add_argument("--since", metavar="T", help="from T (ISO-8601, included)")
    p.add_argument("--until", metavar="T", help="up to T (ISO-8601, excluded)")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: stdout)")
    p.add_argument("--lang", choices=LANGUAGES, default="fr", help="fr (default) or en")
