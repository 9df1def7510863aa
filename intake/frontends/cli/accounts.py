"""``intake account add|passwd|key-add|disable|enable|list`` (and ``card``): the accounts.

Rules:
- Secrets come from stdin only (``--password-stdin``), never from argv; a password is at
  most 1024 bytes and never empty.
- Every account change is audited as ``account.changed`` (protocol ``cli``, ``by`` the
  operator's login), never with a secret.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from intake.adapters import keys
from intake.core.authz import RESERVED_MEMBER_NAMES, Area
from intake.core.errors import InvalidName, UsageError
from intake.core.model import Role
from intake.core.paths import check_account_name
from intake.frontends.cli import card, common
from intake.services.instance import Instance


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


def _audit_change(inst: Instance, name: str, action: str, **fields: Any) -> None:
    try:
        operator = getpass.getuser()
    except (KeyError, OSError):
        operator = str(os.getuid())
    inst.audit.record(
        "account.changed", account=name, action=action, protocol="cli", by=operator, **fields
    )


# -- commands ---------------------------------------------------------------------------


def cmd_account_add(args: argparse.Namespace) -> int:
    name = check_account_name(args.name)
    role = Role(args.role)
    if role is Role.MEMBER and name in RESERVED_MEMBER_NAMES:
        raise InvalidName(f"{name!r} is reserved (it names the technicians' outbox)")
    public_keys = [k for path in args.authorized_key for k in keys.read_public_keys(Path(path))]
    password = _read_password() if args.password_stdin else None
    inst = common.open_instance(args)
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
    inst = common.open_instance(args)
    inst.accounts.set_password(args.name, password)
    _audit_change(inst, args.name, "passwd")
    print(f"account {args.name}: password changed")
    return 0


def cmd_account_key_add(args: argparse.Namespace) -> int:
    check_account_name(args.name)
    public_keys = keys.read_public_keys(Path(args.file))
    inst = common.open_instance(args)
    inst.accounts.add_keys(args.name, public_keys)
    _audit_change(inst, args.name, "key-add", keys=[k.fingerprint for k in public_keys])
    print(f"account {args.name}: {len(public_keys)} key(s) added")
    return 0


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    check_account_name(args.name)
    inst = common.open_instance(args)
    inst.accounts.set_enabled(args.name, enabled)
    _audit_change(inst, args.name, "enable" if enabled else "disable")
    print(f"account {args.name} {'enabled' if enabled else 'disabled'}")
    return 0


def cmd_account_list(args: argparse.Namespace) -> int:
    infos = common.open_instance(args).accounts.infos()
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


# -- parser -----------------------------------------------------------------------------


def register(sub: Any, add: common.Add) -> None:
    """Add ``account`` and its sub-commands (``card`` included)."""
    account = sub.add_parser("account", help="manage accounts")
    acc = account.add_subparsers(dest="account_command", required=True, parser_class=common.Parser)
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
    card.register(acc, add)
