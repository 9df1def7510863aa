"""What every ``intake`` sub-command module shares: the parser class, the clock, opening
the instance, time arguments. The command modules import this, never ``main``.

Rules:
- An instance opened with ``open_instance`` is closed by ``main`` when the command ends
  (a clean stop signs the audit log), whatever the command did.
- Usage errors end with one line naming ``intake --help``; exit code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from intake.core.clock import SystemClock, parse_iso
from intake.core.config import Config
from intake.core.errors import UsageError
from intake.services import instance as instance_mod
from intake.services.instance import Instance

CLOCK = SystemClock()

Command = Callable[[argparse.Namespace], int]
Add = Callable[[Any, str, Command, str], Any]
"""``add(subparsers, name, func, help)``: one sub-command, its handler set as default."""


class Parser(argparse.ArgumentParser):
    """argparse with intake's one-line usage error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"intake: error: {message} (see intake --help)\n")


def add_command(sub: Any, name: str, func: Command, help_: str) -> Any:
    """Add one sub-command whose handler is ``func``; returns its parser for the arguments."""
    command = sub.add_parser(name, help=help_, description=help_)
    command.set_defaults(func=func)
    return command


def config(args: argparse.Namespace) -> Config:
    """The instance's configuration (``--config``, ``$INTAKE_CONFIG``, ./intake.toml, ./var/)."""
    return instance_mod.load_config(args.config, dict(os.environ), Path.cwd(), CLOCK)


_OPENED: list[Instance] = []


def open_instance(args: argparse.Namespace) -> Instance:
    """Open the instance; ``main`` closes it at exit (a clean stop signs the audit log)."""
    inst = instance_mod.open_instance(config(args), CLOCK)
    _OPENED.append(inst)
    return inst


def close_opened() -> None:
    """Close every instance the command opened, newest first."""
    while _OPENED:
        _OPENED.pop().close()


def time_arg(text: str | None, flag: str) -> Any:
    """``--since``/``--until``: an ISO-8601 time, or None when the flag was not given."""
    if text is None:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        raise UsageError(f"{flag}: not an ISO-8601 time: {text!r}") from None
