"""``intake alert test``: send a test alert through ``[alerts]`` now.

Rules:
- Exit 0 when every configured channel (SMTP, command) took the test message; 1 when
  one did not, or when alerts are off, with one line on stderr per failure saying why.
- The test message is not queued: it is a check of the configuration, sent now or not
  at all. It is audited (``alert``, kind ``test``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from intake.frontends.cli import common


def cmd_alert_test(args: argparse.Namespace) -> int:
    inst = common.open_instance(args)
    alerts = inst.alerts
    if not alerts.enabled:
        print(
            f"intake: error: alerts are off in {inst.config.file}: set [alerts] smtp_host and "
            "recipients, or command",
            file=sys.stderr,
        )
        return 1
    results = alerts.send_test()
    for channel, error in results:
        if error:
            print(f"intake: error: alert test not delivered ({channel}): {error}", file=sys.stderr)
        else:
            where = (
                f"{', '.join(alerts.settings.recipients)} via {alerts.settings.smtp_host}"
                if channel == "smtp"
                else "the alert command"
            )
            print(f"alert test delivered to {where}")
    return 1 if any(error for _, error in results) else 0


def register(sub: Any, add: common.Add) -> None:
    """Add ``alert test`` to the ``intake`` parser."""
    alert = sub.add_parser("alert", help="alerts (e-mail, command)")
    alert_sub = alert.add_subparsers(
        dest="alert_command", required=True, parser_class=common.Parser
    )
    add(alert_sub, "test", cmd_alert_test, "send a test alert through [alerts] now")
