"""Names and client paths, checked as text (no filesystem access here).

Rules:
- An account name is 1 to 64 of ``a-z 0-9 . _ -``, starting with a letter or digit.
- A client path is always read from the root of the client's view: ``..`` never climbs
  above ``/`` (it is clamped there, as OpenSSH's chroot does), ``.`` and empty segments
  are dropped, and both ``/`` and (for Windows clients) nothing else separate segments.
- A name the client creates (file or folder) has no control character, no Unicode format
  character (category Cf: bidi overrides and isolates that make ``gpj.exe`` read as
  ``exe.jpg``, zero-width spaces and joiners, soft hyphens), no line or paragraph
  separator, no private-use character and no blank filler letter (Hangul fillers, braille
  blank): what a person reading a listing cannot see, they cannot check. It is not ``.``,
  ``..`` or ``.staging`` (reserved: the server's own staging folder is never in a view,
  and no member-made folder may pass for it), and is at most 255 bytes in UTF-8; a whole
  path at most 4096 bytes.
- Containment on disk is decided by ``is_within`` (``os.path.commonpath`` on resolved
  paths), never by string prefixes (``/data/a`` is not inside ``/data/ab``).
"""

from __future__ import annotations

import os.path
import re
import unicodedata

from intake.core.errors import InvalidName

ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Zl", "Zp"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
RESERVED_NAMES = frozenset({"", ".", "..", ".staging"})

VPath = tuple[str, ...]
"""A normalised client path: its segments below the view's root; ``()`` is ``/``."""


def check_account_name(name: str) -> str:
    """Return ``name`` if it is a valid account name, else raise ``InvalidName``."""
    if not ACCOUNT_NAME.fullmatch(name):
        raise InvalidName(
            f"invalid account name {name!r}: use 1 to 64 of a-z 0-9 . _ -,"
            " starting with a letter or digit"
        )
    return name


def normalize(client_path: str) -> VPath:
    """Turn what a client sent into segments below the root of its view."""
    if "\x00" in client_path:
        raise InvalidName("path contains a NUL byte")
    if len(client_path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise InvalidName("path too long")
    parts: list[str] = []
    for segment in client_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return tuple(parts)


def to_text(vpath: VPath) -> str:
    """The client-facing form of a normalised path, always starting with ``/``."""
    return "/" + "/".join(vpath)


def check_new_name(name: str) -> str:
    """Return ``name`` if a client may create a file or folder with it."""
    if name in RESERVED_NAMES:
        raise InvalidName("reserved name")
    if _CONTROL.search(name):
        raise InvalidName("name contains a control character")
    for char in name:
        if unicodedata.category(char) in _UNSEEN_CATEGORIES or char in _BLANK_LETTERS:
            raise InvalidName(
                f"name contains an invisible or bidi control character (U+{ord(char):04X})"
            )
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise InvalidName("name longer than 255 bytes")
    return name


def is_within(root: str, candidate: str) -> bool:
    """True when the absolute path ``candidate`` is ``root`` or lies below it."""
    root = os.path.normpath(root)
    candidate = os.path.normpath(candidate)
    try:
        return os.path.commonpath([root, candidate]) == root
    except ValueError:
        return False
