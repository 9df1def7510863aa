"""``intake ban list [--json]`` and ``intake ban lift ADDRESS|NETWORK``: the blocks in force.

Rules:
- ``list`` prints the addresses and networks blocked now (``state/bans.db``, shared with
  a running ``serve``): the address or network, why, since and until when (UTC, and
  Paris time for people), the failures that caused it; exit 0, also when there is none.
  ``--json`` prints one array; each entry has ``ip`` (the address or network, as the
  audit records name it), ``kind`` (``address``/``network``), ``address`` and ``network``
  (the one it is, the other null), ``reason``, ``since``, ``until`` (ISO-8601 UTC),
  ``failures``, ``blocks`` (blocks in a row) and ``protocol``.
- ``lift`` ends the block of exactly that address or network (a network may be written
  ``192.0.2.7/24``): audited ``unbanned`` (protocol ``cli``); a running ``serve`` admits
  it at its next connection. Its failures are forgotten with it. Not blocked: exit 1;
  not an address or a network: exit 2. Lifting an address does not lift its network.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from zoneinfo import ZoneInfo

from intake.adapters.audit.writer import display
from intake.adapters.bans import Ban
from intake.core.clock import isoformat
from intake.frontends.cli import common

PARIS = ZoneInfo("Europe/Paris")


def _entry(ban: Ban) -> dict[str, Any]:
    return {
        "ip": ban.key,
        "kind": ban.kind,
        "address": ban.key if ban.kind == "address" else None,
        "network": ban.key if ban.kind == "network" else None,
        "reason": ban.reason,
        "since": isoformat(ban.since),
        "until": isoformat(ban.until),
        "failures": ban.failures,
        "blocks": ban.blocks,
        "protocol": ban.protocol,
    }


def _paris(ban: Ban) -> str:
    return ban.until.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S %Z")


def cmd_ban_list(args: argparse.Namespace) -> int:
    bans = common.open_instance(args).guard.bans()
    if args.json:
        print(json.dumps([_entry(ban) for ban in bans], indent=2))
        return 0
    if not bans:
        print("no address or network is blocked")
        return 0
    for ban in bans:
        print(
            f"{display(ban.key)} ({ban.kind}): {display(ban.reason)}; since "
            f"{isoformat(ban.since)} until {isoformat(ban.until)} ({_paris(ban)}), "
            f"{ban.failures:g} failure(s), block {ban.blocks} in a row"
        )
    return 0


def cmd_ban_lift(args: argparse.Namespace) -> int:
    ban = common.open_instance(args).guard.lift(args.source)
    print(f"{display(ban.key)}: block lifted (it was to end {isoformat(ban.until)})")
    return 0


def register(sub: Any, add: common.Add) -> None:
    """Add ``ban list`` and ``ban lift`` to the ``intake`` parser."""
    ban = sub.add_parser("ban", help="blocked addresses and networks")
    ban_sub = ban.add_subparsers(dest="ban_command", required=True, parser_class=common.Parser)
    p = add(ban_sub, "list", cmd_ban_list, "the addresses and networks blocked now")
    p.add_argument("--json", action="store_true")
    p = add(ban_sub, "lift", cmd_ban_lift, "end the block of an address or network at once")
    p.add_argument("source", metavar="ADDRESS|NETWORK")
