"""Secrets read from files: the vendor's password, the SMTP password.

Rules:
- A secret lives in a file readable only by the service's user: a file that its group or
  others may read or write is refused (``ConfigError`` naming the key, with the fix).
- ``${CREDENTIALS_DIRECTORY}`` (and any other ``$VAR``) in the configured path is
  expanded: ``"${CREDENTIALS_DIRECTORY}/vendor-password"`` reads a systemd credential
  (``LoadCredential=``); systemd owns those files and their modes, so they are not checked.
- The secret is the file's first line without its line ending; an empty one is refused.
- A secret is held in a ``Secret``, whose ``repr``/``str`` never show it: it cannot leak
  into a log line, an error message or a traceback's locals by accident. It is never
  passed in argv.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from intake.core.errors import ConfigError

MAX_SECRET_BYTES = 4096


class Secret:
    """A password; ``reveal()`` is the one way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def resolve_secret_path(value: str, root: Path, config_file: Path, key: str) -> Path:
    """The configured path with ``$VAR`` expanded, relative to the instance folder."""
    expanded = os.path.expandvars(value)
    if "$" in expanded:
        missing = "CREDENTIALS_DIRECTORY" if "CREDENTIALS_DIRECTORY" in expanded else "a variable"
        raise ConfigError(
            str(config_file),
            key,
            f"{missing} is not set (a systemd credential needs LoadCredential= in the unit)",
        )
    path = Path(expanded).expanduser()
    return path if path.is_absolute() else root / path


def read_secret(path: Path, config_file: Path, key: str) -> Secret:
    """Read a secret file, checking who may read it (see the module rules)."""
    where = str(config_file)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(where, key, f"cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(where, key, f"{path} is not a regular file")
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        systemd = bool(credentials) and Path(credentials or "/").resolve() in path.parents
        if st.st_mode & 0o077 and not systemd:
            raise ConfigError(
                where,
                key,
                f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                f"run chmod 600 {path}",
            )
        data = os.read(fd, MAX_SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(where, key, f"{path} is longer than {MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(where, key, f"{path} is not UTF-8 text") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise ConfigError(where, key, f"{path} is empty")
    return Secret(line)


def load_secret(value: str, root: Path, config_file: Path, key: str) -> Secret:
    """``resolve_secret_path`` then ``read_secret``."""
    return read_secret(resolve_secret_path(value, root, config_file, key), config_file, key)
