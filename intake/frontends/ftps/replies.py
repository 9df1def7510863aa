"""Every FTPS reply a member reads comes from the message table, in ``[server] lang``.

pyftpdlib writes its own English replies ("331 Username ok, send password.", "226
Transfer complete.", "421 Control connection timed out."...). intake's control channel
passes each reply through ``translate`` before it is sent (``ControlChannel.respond``):
no pyftpdlib class or attribute is changed.

Rules:
- The reply code never changes: clients decide on it. Only the text after it does.
- A text already from ``intake.core.messages`` (intake's own replies, the refusals that
  ``SessionFS`` raises, the data channel's) is sent in ``lang``.
- pyftpdlib's known texts (``RULES``, checked against pyftpdlib 2.2) become the table's
  text; what a client parses is kept: the quoted path of a 257, the numbers of a 227/229
  (after the text, with no other parenthesis before them: Go's FTP client takes the
  first "(" to the last ")"), the facts of ``MLST OPTS``, a REST position.
- Protocol data is never touched: 213 (SIZE, MDTM, MFMT, STAT of a file) and 215 (SYST).
- An unknown text (a newer pyftpdlib) still starts in the member's language: the
  generic text of its code's class, then the library's words in parentheses, for the
  agency's support. ``tests/test_replies.py`` drives real sessions and fails on one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from intake.core import messages
from intake.core.messages import Say

KEEP_CODES = frozenset({"213", "215"})
# Each table text, in either language, to its ``Say``: a text already from the table is
# sent in ``lang`` (the data channel's replies are written in French).
_KNOWN: dict[str, Say] = {
    text: say for table in (messages.ENGLISH, messages.TEXT) for say, text in table.items()
}

Build = Callable[[re.Match[str], str], str]


def _say(say: Say) -> Build:
    return lambda match, lang: messages.text(say, lang)


def _then(say: Say, template: str) -> Build:
    """The table's text, then the kept part of pyftpdlib's reply (``template``)."""
    return lambda match, lang: f"{messages.text(say, lang)}{match.expand(template)}"


def _first(template: str, say: Say) -> Build:
    """The kept part first (a 257's quoted path), then the table's text."""
    return lambda match, lang: f"{match.expand(template)} {messages.text(say, lang)}"


RULES: list[tuple[re.Pattern[str], Build]] = [
    (re.compile(pattern, re.DOTALL), build)
    for pattern, build in (
        (r"Username ok, send password\.?", _say(Say.USER_OK)),
        (r"Previous account information was flushed, send password\.?", _say(Say.USER_OK)),
        (r"Login successful\.?", _say(Say.LOGGED_IN)),
        (r"Authentication failed\.?( Disconnecting\.)?", _say(Say.LOGIN_FAILED)),
        (r"Anonymous access not allowed\.?( Disconnecting\.)?", _say(Say.LOGIN_FAILED)),
        (r"Log in with USER and PASS first\.?", _say(Say.NOT_LOGGED_IN)),
        (r"User already authenticated\.?", _say(Say.ALREADY_LOGGED_IN)),
        (r"Login with USER first\.?", _say(Say.USER_FIRST)),
        (r"SSL/TLS required on the control channel\.?", _say(Say.TLS_REQUIRED)),
        (r"SSL/TLS required on the data channel\.?", _say(Say.PROT_FIRST)),
        (r"(PBSZ|PROT) not allowed on insecure control connection\.?", _say(Say.TLS_REQUIRED)),
        (r"You must issue the PBSZ command prior to PROT\.?", _say(Say.PROT_FIRST)),
        (r"Service not available.*", _say(Say.UNAVAILABLE)),
        (r"Too many connections\. Can't open data channel\.?", _say(Say.NO_DATA_CONNECTION)),
        (r"Too many connections.*", _say(Say.UNAVAILABLE)),
        (r"Control connection timed out\.?", _say(Say.IDLE_TIMEOUT)),
        (r"(Passive|Active) data channel timed out\.?", _say(Say.DATA_TIMEOUT)),
        (r"Data connection timed out\.?", _say(Say.DATA_TIMEOUT)),
        (r"Goodbye\.?", _say(Say.GOODBYE)),
        (r"AUTH (TLS|SSL) successful\.?", _say(Say.TLS_OK)),
        (r"Already using TLS\.?", _say(Say.BAD_SEQUENCE)),
        (r"SSL handshake failed\.?", _say(Say.TLS_FAILED)),
        (r"Protection set to Private\.?", _say(Say.PROTECTION)),
        (r"PBSZ=0 successful\.?", _say(Say.PBSZ_OK)),
        (r"Type set to: Binary\.?", _say(Say.TYPE_BINARY)),
        (r"Type set to: ASCII\.?", _say(Say.TYPE_ASCII)),
        (r"File status okay\. About to open data connection\.?", _say(Say.OPENING_DATA)),
        (r"Data connection already open\. Transfer starting\.?", _say(Say.DATA_OPEN)),
        (r"Transfer complete\.?", _say(Say.TRANSFER_OK)),
        (r"Transfer aborted.*", _say(Say.ABORTED)),
        (r".*; transfer aborted\.?", _say(Say.ABORTED)),
        (r"ABOR command successful\.?", _say(Say.ABORTED)),
        (r"No transfer to abort\.?", _say(Say.ABORT_NONE)),
        (r"Can't open data connection\.?", _say(Say.NO_DATA_CONNECTION)),
        (r"Can't connect to specified address\.?", _say(Say.NO_DATA_CONNECTION)),
        (r'(".*") is the current directory\.?', _first(r"\1", Say.CURRENT_FOLDER)),
        (r'(".*") directory created\.?', _first(r"\1", Say.FOLDER_CREATED)),
        (r"Ready for destination name\.?", _say(Say.RENAME_NEXT)),
        (r"Renaming ok\.?", _say(Say.RENAMED)),
        (r"Bad sequence of commands: use RNFR first\.?", _say(Say.RENAME_FIRST)),
        (r"Always in UTF8 mode\.?", _say(Say.UTF8)),
        (r"MLST OPTS (.*)", _then(Say.OPTIONS_OK, r" : MLST OPTS \1")),
        (r"I successfully did nothing'?\.?", _say(Say.NOTHING_DONE)),
        (r"Entering passive mode (\(.*\))\.?", _then(Say.PASSIVE, r" \1")),
        (r"Entering extended passive mode (\(.*\))\.?", _then(Say.EXTENDED_PASSIVE, r" \1")),
        (r"Active data connection established\.?", _say(Say.ACTIVE_OK)),
        (r"Restarting at position (\d+)\.?", _then(Say.RESTART, r" : \1")),
        (r'Command ".*" not understood\.?', _say(Say.NOT_UNDERSTOOD)),
        (r".*not implemented.*", _say(Say.NOT_IMPLEMENTED)),
        (r"Syntax error.*", _say(Say.BAD_ARGUMENTS)),
        (r"Invalid .*", _say(Say.BAD_ARGUMENTS)),
        (r"Unrecognized .*", _say(Say.BAD_ARGUMENTS)),
        (r"Unknown network protocol.*", _say(Say.BAD_ARGUMENTS)),
        (r"Network protocol not supported.*", _say(Say.BAD_ARGUMENTS)),
        (r"Can't decode command\.?", _say(Say.BAD_ARGUMENTS)),
        (r"File transfer structure set to: F\.?", _say(Say.STRUCTURE)),
        (r"Transfer mode set to: S\.?", _say(Say.MODE)),
        (r"End FEAT\.?|End of status\.?|End MLST\.?", _say(Say.END_LIST)),
        (r"Help (SITE )?command successful\.?", _say(Say.END_LIST)),
        (r"Not enough privileges\.?", _say(Say.DENIED)),
        (r"No such (file or )?directory\.?", _say(Say.NOT_FOUND)),
        (r"Not a directory\.?", _say(Say.NOT_A_FOLDER)),
    )
]

_GENERIC = {"1": Say.PENDING, "2": Say.DONE, "3": Say.PENDING, "4": Say.TRY_LATER}


def text(say: Say, lang: str) -> str:
    """A reply's text from the table, with FTP's closing full stop."""
    return f"{messages.text(say, lang)}."


def translate(reply: str, lang: str) -> str:
    """``reply`` ("NNN text") with its text from the table; see the module rules."""
    code, sep, rest = reply.partition(" ")
    if not sep or len(code) != 3 or not code.isdigit() or code in KEEP_CODES:
        return reply
    if not rest.strip():
        return reply
    known = _KNOWN.get(rest.rstrip("."))
    if known is not None:
        return f"{code} {text(known, lang)}"
    for pattern, build in RULES:
        match = pattern.fullmatch(rest)
        if match is not None:
            return f"{code} {build(match, lang)}."
    generic = _GENERIC.get(code[0], Say.REFUSED)
    return f"{code} {messages.text(generic, lang)} ({rest.rstrip('.')})."
