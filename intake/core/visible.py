"""One rule for showing a client-chosen string to a person: nothing in it hides or moves text.

A name a client chose (a path it tried, an account name it typed, a reason quoting them)
reaches people in the auditor's report (HTML), the connection card, ``intake audit show``,
alert mails and terminal output. Whatever the medium, it goes through ``visible`` first,
then through the medium's own escaping (``html.escape`` for HTML).

Rules:
- Control characters (C0, DEL, C1: ESC, BEL, NUL...), format characters (bidi overrides
  and isolates such as U+202E, zero-width characters, the BOM), surrogates, private-use
  and unassigned code points, line and paragraph separators, and every space but the
  plain one (U+0020) are written as escapes a person can read: ``\\x1b``, ``\\u202e``,
  ``\\U000e0001``. So ``cat`` on a report never drives the terminal, and a browser never
  shows ``/x\\u202etxt.exe`` as ``/xexe.txt``.
- A backslash is doubled, so an escape always means an escaped character and a name
  that holds the text ``\\u202e`` reads differently from one that holds U+202E.
- Every other character is kept as it is: accented letters stay readable (``é``).
"""

from __future__ import annotations

import unicodedata

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str) -> str:
    """``text`` with every character that could hide, move or drive text escaped."""
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text  # the common case: nothing to do
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch != " " and unicodedata.category(ch) in _HIDDEN:
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)
