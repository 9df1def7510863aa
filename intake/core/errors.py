"""The error tree of intake, and the exit code of each user-facing error.

    IntakeError                 exit 1: what was checked or done failed
     ├── UsageError             exit 2: bad command-line usage or bad input
     │    ├── ConfigError       exit 2: the config file is wrong (names file and key)
     │    └── InvalidName       exit 2: an account or file name breaks the naming rules
     ├── NotFound               exit 1: no such account, file or entry
     ├── Conflict               exit 1: the thing already exists (account, file)
     ├── Denied                 exit 1: the role or a rule forbids the operation
     ├── LimitExceeded          exit 1: a resource limit (open files, size, quota) refuses it
     ├── NoSpace                exit 1: data/ is down to its free-space reserve
     ├── StartupError           exit 1: serve cannot start (port taken, key unreadable)
     └── AuditUnavailable       exit 1: the audit log cannot be written: the act is refused

Rules:
- ``str(error)`` is one line a person can act on; it never carries a secret.
- ``Denied.reason`` is the detail for the audit log; front-ends send clients only the
  text of the error's ``say`` (``intake.core.messages``), never the reason.
"""

from __future__ import annotations

from intake.core.messages import Say


class IntakeError(Exception):
    """Base of every error intake raises on purpose."""

    exit_code = 1
    say = Say.FAILED  # what a protocol client is told (``intake.core.messages``)


class UsageError(IntakeError):
    """The user asked for something malformed."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration or policy file is invalid."""

    def __init__(self, file: str, key: str | None, problem: str) -> None:
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.key = key
        self.problem = problem


class InvalidName(UsageError):
    """A name (account, path component) breaks the naming rules."""

    say = Say.NAME


class NotFound(IntakeError):
    """The account, file or entry does not exist."""

    say = Say.NOT_FOUND


class Conflict(IntakeError):
    """The account or file already exists."""

    say = Say.EXISTS


class Denied(IntakeError):
    """The operation is forbidden for this account; ``reason`` goes to the audit log."""

    def __init__(
        self, reason: str, operation: str = "", path: str = "", say: Say = Say.DENIED
    ) -> None:
        super().__init__("permission denied")
        self.reason = reason
        self.operation = operation
        self.path = path
        self.say = say


class LimitExceeded(IntakeError):
    """A limit refuses the request: ``str()`` names the limit (for the operator and the
    audit); the client is told the text of ``say`` (quota, file too large...)."""

    def __init__(
        self, message: str, operation: str = "", path: str = "", say: Say = Say.DENIED
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.path = path
        self.say = say


class NoSpace(IntakeError):
    """An upload is refused: the data folder's free space is down to its reserve."""

    def __init__(self, free: int, reserve: int) -> None:
        super().__init__(f"not enough free space: {free} bytes free, reserve {reserve} bytes")
        self.free = free
        self.reserve = reserve


class StartupError(IntakeError):
    """``serve`` cannot start: a port is taken, a key cannot be read."""


class AuditUnavailable(IntakeError):
    """The audit log cannot be written (disk full, permission, I/O error).

    Fail closed: the operation the record was for does not succeed. The message is one
    line for the operational log; clients get a generic failure.
    """
