"""The ``intake`` command: argument parsing and output, nothing else.

Rules:
- Exit 0 on success, 1 when what was checked or done failed, 2 on bad usage or input;
  every error is one line on stderr (``intake: error: ...``), never a traceback.
- Secrets come from stdin only (``--password-stdin``), never from argv.
- Every account change is audited as ``account.changed`` (protocol ``cli``), never with
  a secret.
- ``--json`` output goes to stdout; human output is escaped (no client string can
  drive the operator's terminal).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from intake import __version__
from intake.adapters import keys, signing
from intake.core.authz import RESERVED_MEMBER_NAMES, Area
from intake.core.clock import SystemClock
from intake.core.config import Config
from intake.core.config import load as load_config_file
from intake.core.errors import IntakeError, InvalidName, UsageError
from intake.core.model import Role
from intake.core.paths import check_account_name
from intake.frontends import (
    cli_alert,
    cli_audit,
    cli_card,
    cli_catalog,
    cli_documents,
    cli_report,
    cli_status,
    cli_sweep,
)
from intake.services import alerts as alerts_mod
from intake.services import instance as instance_mod
from intake.services.instance import Instance

CLOCK = SystemClock()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"intake: error: {message} (see intake --help)\n")


# -- helpers -----------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> Config:
    return instance_mod.load_config(args.config, dict(os.environ), Path.cwd(), CLOCK)


_time_arg = cli_audit.time_arg  # --since/--until parsing, shared by the sub-command modules

_OPENED: list[Instance] = []


def _open(args: argparse.Namespace) -> Instance:
    """Open the instance; ``main`` closes it at exit (a clean stop signs the audit log)."""
    inst = instance_mod.open_instance(_config(args), CLOCK)
    _OPENED.append(inst)
    return inst


def _close_opened() -> None:
    while _OPENED:
        _OPENED.pop().close()


def _read_password() -> str:
    if sys.stdin is None:
        raise UsageError("--password-stdin: no standard input")
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise UsageError("the two passwords differ")
        text = first
    else:
        text = sys.stdin.readline()
        if text.endswith("\n"):
            text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    if not text:
        raise UsageError("--password-stdin: the password is empty")
    if len(text.encode()) > 1024:
        raise UsageError("--password-stdin: the password is longer than 1024 bytes")
    return text


def _print_fingerprints(cfg: Config, as_json: bool) -> None:
    host = keys.host_key_fingerprints(cfg.keys_dir)
    cert = keys.certificate_fingerprint(cfg.keys_dir)
    if as_json:
        doc: dict[str, Any] = {
            "ssh": [{"type": f.kind, "bits": f.bits, "fingerprint": f.fingerprint} for f in host],
            "tls": {"sha256": cert.fingerprint, "bits": cert.bits} if cert else None,
            "audit": cli_audit.audit_key_summary(cfg),
        }
        print(json.dumps(doc, indent=2))
        return
    print("SSH host keys (compare with what your SFTP client shows on first connection):")
    for f in host:
        print(f"  {f.bits} {f.fingerprint} ({f.kind.removeprefix('ssh-').upper()})")
    if cert:
        print("TLS certificate (FTPS):")
        print(f"  SHA256 Fingerprint={cert.fingerprint}")
    cli_audit.print_audit_key(cfg)


def _audit_change(inst: Instance, name: str, action: str, **fields: Any) -> None:
    try:
        operator = getpass.getuser()
    except (KeyError, OSError):
        operator = str(os.getuid())
    inst.audit.record(
        "account.changed", account=name, action=action, protocol="cli", by=operator, **fields
    )


# -- commands ----------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder")
    result = instance_mod.init_instance(root, CLOCK, args.hostname)
    cfg = load_config_file(root / instance_mod.CONFIG_NAME)
    print(f"instance {root.resolve()}: {len(result.created)} item(s) created, nothing overwritten")
    _print_fingerprints(cfg, as_json=False)
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    _print_fingerprints(_config(args), args.json)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from intake.adapters import oplog
    from intake.frontends import daemon

    oplog.configure()
    cfg = _config(args)
    if signing.ensure_audit_key(cfg.keys_dir):
        print("audit signing key created (keys/audit_ed25519_key): checkpoints are now signed")
    inst = _open(args)
    _print_fingerprints(inst.config, as_json=False)
    try:
        return daemon.serve(inst)
    finally:
        inst.close()


def cmd_account_add(args: argparse.Namespace) -> int:
    name = check_account_name(args.name)
    role = Role(args.role)
    if role is Role.MEMBER and name in RESERVED_MEMBER_NAMES:
        raise InvalidName(f"{name!r} is reserved (it names the technicians' outbox)")
    public_keys = [k for path in args.authorized_key for k in keys.read_public_keys(Path(path))]
    password = _read_password() if args.password_stdin else None
    inst = _open(args)
    inst.accounts.add(name, role, password, public_keys)
    if role is Role.MEMBER:
        inst.storage.ensure_area(Area.MEMBER, name)
    elif role is Role.TECHNICIAN:
        inst.storage.ensure_area(Area.OUTBOX, name)
    _audit_change(
        inst,
        name,
        "add",
        role=role.value,
        password=None,
        password_set=password is not None,
        keys=[k.fingerprint for k in public_keys],
    )
    print(f"account {name} added ({role.value})")
    if password is None and not public_keys:
        print(
            "note: no password and no key yet: it cannot log in until you add one", file=sys.stderr
        )
    return 0


def cmd_account_passwd(args: argparse.Namespace) -> int:
    check_account_name(args.name)
    if not args.password_stdin:
        raise UsageError("account passwd reads the new password from stdin: add --password-stdin")
    password = _read_password()
    inst = _open(args)
    inst.accounts.set_password(args.name, password)
    _audit_change(inst, args.name, "passwd")
    print(f"account {args.name}: password changed")
    return 0


def cmd_account_key_add(args: argparse.Namespace) -> int:
    check_account_name(args.name)
    public_keys = keys.read_public_keys(Path(args.file))
    inst = _open(args)
    inst.accounts.add_keys(args.name, public_keys)
    _audit_change(inst, args.name, "key-add", keys=[k.fingerprint for k in public_keys])
    print(f"account {args.name}: {len(public_keys)} key(s) added")
    return 0


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    check_account_name(args.name)
    inst = _open(args)
    inst.accounts.set_enabled(args.name, enabled)
    _audit_change(inst, args.name, "enable" if enabled else "disable")
    print(f"account {args.name} {'enabled' if enabled else 'disabled'}")
    return 0


def cmd_account_list(args: argparse.Namespace) -> int:
    infos = _open(args).accounts.infos()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": i.account.name,
                        "role": i.account.role.value,
                        "enabled": i.account.enabled,
                        "password": i.has_password,
                        "keys": list(i.key_fingerprints),
                        "created_at": i.created_at,
                        "updated_at": i.updated_at,
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return 0
    if not infos:
        print("no accounts yet: intake account add NAME --role member --password-stdin")
        return 0
    print(f"{'NAME':<24} {'ROLE':<11} {'STATE':<9} {'PASSWORD':<9} KEYS")
    for i in infos:
        state = "enabled" if i.account.enabled else "disabled"
        pw = "yes" if i.has_password else "no"
        print(
            f"{i.account.name:<24} {i.account.role.value:<11} {state:<9} {pw:<9} "
            f"{len(i.key_fingerprints)}"
        )
    return 0


# -- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="intake", description="Secure SFTP + FTPS backup intake server.")
    parser.add_argument("--version", action="version", version=f"intake {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="instance config (default: $INTAKE_CONFIG, ./intake.toml, ./var/)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(sub_: Any, name: str, func: Callable[[argparse.Namespace], int], help_: str) -> Any:
        command = sub_.add_parser(name, help=help_, description=help_)
        command.set_defaults(func=func)
        return command

    p = add(sub, "init", cmd_init, "create an instance (keys, config, policies, folders)")
    p.add_argument("dir")
    p.add_argument("--hostname", default="localhost", help="host name in the TLS certificate")

    keys_cmd = sub.add_parser("keys", help="host key, certificate and audit key fingerprints")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    p = add(keys_sub, "show", cmd_keys_show, "print the SSH, TLS and audit key fingerprints")
    p.add_argument("--json", action="store_true")

    add(sub, "serve", cmd_serve, "run SFTP and FTPS until SIGTERM/SIGINT")

    account = sub.add_parser("account", help="manage accounts")
    acc = account.add_subparsers(dest="account_command", required=True, parser_class=_Parser)
    p = add(acc, "add", cmd_account_add, "create an account")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--password-stdin", action="store_true", help="read a password from stdin")
    p.add_argument(
        "--authorized-key",
        action="append",
        default=[],
        metavar="FILE",
        help="an OpenSSH public key file (repeatable)",
    )
    p = add(acc, "passwd", cmd_account_passwd, "change the password (read from stdin)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")
    p = add(acc, "key-add", cmd_account_key_add, "add the public keys of FILE")
    p.add_argument("name")
    p.add_argument("file")
    p = add(acc, "disable", lambda a: _set_enabled(a, False), "forbid logins (files stay)")
    p.add_argument("name")
    p = add(acc, "enable", lambda a: _set_enabled(a, True), "allow logins again")
    p.add_argument("name")
    p = add(acc, "list", cmd_account_list, "list accounts (never a password hash)")
    p.add_argument("--json", action="store_true")
    cli_card.register(acc, add)

    aud = cli_audit.register(sub, keys_sub, add, _open, _config, _Parser)
    cli_documents.register(aud, add)
    cli_catalog.register(sub, add)
    cli_sweep.register(sub, add)
    cli_status.register(sub, add)
    cli_alert.register(sub, add)
    cli_report.register(sub, add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            return int(args.func(args))
        finally:
            _close_opened()
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
