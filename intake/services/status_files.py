"""The small JSON files under ``state/`` that say how the instance is doing.

    state/serve.json        written by ``serve`` every few seconds: pid, addresses, sessions
    state/last-sweep.json   written by every sweep that ran (serve's thread or the timer)

``intake status`` and the metrics read them; nothing else depends on them.

Rules:
- Each file is replaced whole and atomically (temporary file in the same folder, then
  ``os.replace``): a reader sees the old or the new content, never half of one.
- A missing or unreadable file reads as "nothing known" (None), never as an error: these
  files describe, they are not a record (the audit log and the catalog are).
- ``serve.json`` names its writer's pid; a reader believes it only while that process is
  alive (``pid_alive``) and the file is fresh, so a killed serve is never shown running.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from intake.adapters.locks import SERVE_LOCK

SERVE_NAME = "serve.json"
LAST_SWEEP_NAME = "last-sweep.json"


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``doc`` (mode 0640)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in ``path``, or None if it is missing, unreadable or not an object."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def pid_alive(pid: object) -> bool:
    """True if a process with this pid exists (even one we may not signal)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve_lock_holder(state_dir: Path) -> int | None:
    """The pid holding ``state/serve.lock`` (from ``/proc/locks``), or None.

    Read without touching the lock, so a serve starting at that instant never finds it
    taken by a status check.
    """
    try:
        inode = (state_dir / SERVE_LOCK).stat().st_ino
        locks = Path("/proc/locks").read_text(encoding="ascii")
    except OSError:
        return None
    for line in locks.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            with contextlib.suppress(ValueError):
                return int(parts[4])
    return None
