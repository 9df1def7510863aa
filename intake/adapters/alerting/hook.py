"""The alert ``command`` hook: a program of the operator's given each alert as JSON.

Rules:
- The command line is split like a shell would (``shlex``) but run without a shell; the
  alert's JSON is its standard input, nothing secret is in its argv or environment
  beyond what the service already has.
- It has ``timeout`` seconds; exit 0 means delivered. Anything else (a non-zero exit, a
  timeout, a program that cannot start) is a ``HookError`` naming the exit code and the
  last line it wrote on stderr; the alert stays queued and is tried again.
"""

from __future__ import annotations

import shlex
import subprocess

from intake.core.errors import IntakeError


class HookError(IntakeError):
    """The alert command did not take the alert."""


def run_hook(command: str, payload: bytes, timeout: float) -> None:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise HookError(f"alerts.command cannot be parsed: {exc}") from None
    if not argv:
        raise HookError("alerts.command is empty")
    try:
        proc = subprocess.run(
            argv,
            input=payload,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HookError(
            f"the alert command {argv[0]} did not finish within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise HookError(f"cannot run the alert command {argv[0]}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        last = f": {lines[-1][:200]}" if lines else ""
        raise HookError(f"the alert command {argv[0]} exited {proc.returncode}{last}")
