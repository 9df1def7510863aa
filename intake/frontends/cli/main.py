"""The ``intake`` command: argument parsing and output, nothing else.

Rules:
- Exit 0 on success, 1 when what was checked or done failed, 2 on bad usage or input;
  every error is one line on stderr (``intake: error: ...``), never a traceback.
- Each command group lives in its own module (``accounts``, ``audit``, ``catalog``, ...)
  with a ``register`` function; what they share is in ``common``, never here.
- ``--json`` output goes to stdout; human output is escaped (no client string can
  drive the operator's terminal).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intake import __version__
from intake.adapters import keys
from intake.adapters.audit import signing
from intake.core.config import Config
from intake.core.config import load as load_config_file
from intake.core.errors import IntakeError, UsageError
from intake.frontends.cli import (
    accounts,
    alert,
    audit,
    ban,
    catalog,
    common,
    documents,
    report,
    status,
    sweep,
)
from intake.services import instance as instance_mod
from intake.services.alerts import alerter as alerts_mod


def _print_fingerprints(cfg: Config, as_json: bool) -> None:
    host = keys.host_key_fingerprints(cfg.keys_dir)
    cert = keys.certificate_fingerprint(cfg.keys_dir)
    if as_json:
        doc: dict[str, Any] = {
            "ssh": [{"type": f.kind, "bits": f.bits, "fingerprint": f.fingerprint} for f in host],
            "tls": {"sha256": cert.fingerprint, "bits": cert.bits} if cert else None,
            "audit": audit.audit_key_summary(cfg),
        }
        print(json.dumps(doc, indent=2))
        return
    print("SSH host keys (compare with what your SFTP client shows on first connection):")
    for f in host:
        print(f"  {f.bits} {f.fingerprint} ({f.kind.removeprefix('ssh-').upper()})")
    if cert:
        print("TLS certificate (FTPS):")
        print(f"  SHA256 Fingerprint={cert.fingerprint}")
    audit.print_audit_key(cfg)


# -- commands ----------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder")
    result = instance_mod.init_instance(root, common.CLOCK, args.hostname)
    cfg = load_config_file(root / instance_mod.CONFIG_NAME)
    print(f"instance {root.resolve()}: {len(result.created)} item(s) created, nothing overwritten")
    _print_fingerprints(cfg, as_json=False)
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    _print_fingerprints(common.config(args), args.json)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from intake.adapters.logs import oplog
    from intake.frontends.daemon import serve as daemon

    oplog.configure()
    cfg = common.config(args)
    if signing.ensure_audit_key(cfg.keys_dir):
        print("audit signing key created (keys/audit_ed25519_key): checkpoints are now signed")
    inst = common.open_instance(args)
    _print_fingerprints(inst.config, as_json=False)
    try:
        return daemon.serve(inst)
    finally:
        inst.close()


# -- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = common.Parser(prog="intake", description="Secure SFTP + FTPS backup intake server.")
    parser.add_argument("--version", action="version", version=f"intake {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="instance config (default: $INTAKE_CONFIG, ./intake.toml, ./var/)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=common.Parser)

    add = common.add_command

    p = add(sub, "init", cmd_init, "create an instance (keys, config, policies, folders)")
    p.add_argument("dir")
    p.add_argument("--hostname", default="localhost", help="host name in the TLS certificate")

    keys_cmd = sub.add_parser("keys", help="host key, certificate and audit key fingerprints")
    keys_sub = keys_cmd.add_subparsers(
        dest="keys_command", required=True, parser_class=common.Parser
    )
    p = add(keys_sub, "show", cmd_keys_show, "print the SSH, TLS and audit key fingerprints")
    p.add_argument("--json", action="store_true")

    add(sub, "serve", cmd_serve, "run SFTP and FTPS until SIGTERM/SIGINT")

    accounts.register(sub, add)

    aud = audit.register(sub, keys_sub, add)
    documents.register(aud, add)
    catalog.register(sub, add)
    sweep.register(sub, add)
    status.register(sub, add)
    alert.register(sub, add)
    ban.register(sub, add)
    report.register(sub, add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            return int(args.func(args))
        finally:
            common.close_opened()
    except IntakeError as exc:
        print(f"intake: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"intake: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    finally:
        alerts_mod.deliver_raised()  # what this command raised goes out now if it can
