"""Retention policies: the file format, matching, and the pure plan of a sweep.

Pure: policies arrive as text, entries as values, ``now`` as an argument; nothing here
reads a file, the clock or the catalog (borg's prune: plan first, apply elsewhere).

A policy file (``policies/*.toml``, one policy per file)::

    name = "member-backups"       # optional, default: the file name without .toml; unique
    description = "..."           # optional, shown by sweep --dry-run
    priority = 0                  # optional; higher is tried first
    [match]                       # required; every key optional, each a string or a list
    area = "member"               # member | outbox | *            (default *)
    role = "*"                    # member | technician | auditor | * (of the account)
    account = "*"                 # glob(s) on the account name    (default *)
    path = "**"                   # glob(s) on the path inside the area: * stays in one
                                  # folder, ** crosses folders     (default **)
    [retention]                   # required
    keep = "3 months"             # N days | N working days | N months | N years
    then = "destroy"              # destroy | forward

Rules:
- ``then = "destroy"`` needs ``keep``: the file is destroyed once it has been kept that
  long, counted from its arrival (``intake.core.durations``).
- ``then = "forward"``: the file goes to the vendor once ``keep`` has passed (at the next
  sweep when there is no ``keep``), and is destroyed once the vendor holds it.
- Several policies may match a file: they are tried by ``priority`` (highest first),
  then by name; the first that matches decides, and the decision names it.
- A file no policy matches is KEPT and reported (``unmatched``): nothing is ever
  destroyed by default. A file whose content no longer matches its SHA-256 is never
  forwarded (``hold``: kept and reported); a destroy policy still destroys it, and its
  certificate says it was altered.
- Any mistake in a file (unknown key, bad value, zero or negative duration, two
  policies with one name) is a ``ConfigError`` naming the file and the key.
- A file holding no policy at all (only comments: the shipped examples) is ignored.
"""

from __future__ import annotations

import datetime as _dt
import enum
import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from intake.core.durations import Duration, WorkingCalendar, due_at, parse_duration
from intake.core.errors import ConfigError
from intake.core.model import ArrivalState, Role

AREAS = ("member", "outbox")
LIVE_STATES = frozenset({ArrivalState.RECEIVED, ArrivalState.FORWARDED, ArrivalState.ALTERED})
_TOP_KEYS = frozenset({"name", "description", "priority", "match", "retention"})
_MATCH_KEYS = frozenset({"area", "role", "account", "path"})
_RETENTION_KEYS = frozenset({"keep", "then"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Then(enum.StrEnum):
    DESTROY = "destroy"
    FORWARD = "forward"


class Action(enum.StrEnum):
    DESTROY = "destroy"  # due: destroy now
    FORWARD = "forward"  # due: send to the vendor now (destroyed once the vendor holds it)
    KEEP = "keep"  # not due yet
    UNMATCHED = "unmatched"  # no policy applies: kept and reported
    HOLD = "hold"  # a policy applies but cannot be carried out safely: kept and reported


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob as a regex: ``**`` crosses folders, ``*`` and ``?`` stay in one."""
    text = pattern.strip("/")
    out = []
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        elif text[i] == "*":
            out.append("[^/]*")
            i += 1
        elif text[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(text[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


@dataclass(frozen=True)
class Match:
    areas: tuple[str, ...] = ("*",)
    roles: tuple[str, ...] = ("*",)
    accounts: tuple[str, ...] = ("*",)
    paths: tuple[str, ...] = ("**",)
    _path_res: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_path_res", tuple(_glob_regex(p) for p in self.paths))

    def matches(self, entry: Catalogued, role: Role | None) -> bool:
        if "*" not in self.areas and entry.area not in self.areas:
            return False
        if "*" not in self.roles and (role is None or role.value not in self.roles):
            return False
        if not any(fnmatch.fnmatchcase(entry.account, a) for a in self.accounts):
            return False
        inside = area_path(entry).strip("/")
        return any(r.match(inside) for r in self._path_res)


@dataclass(frozen=True)
class Policy:
    name: str
    file: str
    match: Match
    then: Then
    keep: Duration | None = None
    priority: int = 0
    description: str = ""

    def describe(self) -> str:
        if self.then is Then.DESTROY:
            return f"destroy {self.keep} after arrival"
        if self.keep is None:
            return "forward to the vendor at the next sweep, then destroy"
        return f"forward to the vendor {self.keep} after arrival, then destroy"


class Catalogued(Protocol):
    """What the plan reads of a catalog entry (``intake.adapters.catalog.catalog.Entry``)."""

    @property
    def id(self) -> int: ...
    @property
    def account(self) -> str: ...
    @property
    def area(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def received_at(self) -> _dt.datetime: ...
    @property
    def state(self) -> ArrivalState: ...
    @property
    def forwarded_at(self) -> _dt.datetime | None: ...


def area_path(entry: Catalogued) -> str:
    """The path inside the entry's area: an outbox entry's ``/outbox/a/b`` is ``/a/b``."""
    if entry.area == "outbox" and (entry.path == "/outbox" or entry.path.startswith("/outbox/")):
        return entry.path[len("/outbox") :] or "/"
    return entry.path


# -- parsing -------------------------------------------------------------------------------


def _strings(
    value: Any, file: str, key: str, allowed: Sequence[str] | None = None
) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ConfigError(file, key, "expected a string or a non-empty list of strings")
    cleaned = tuple(i.strip() for i in items)
    for item in cleaned:
        if not item:
            raise ConfigError(file, key, "empty pattern")
        if allowed is not None and item not in allowed:
            raise ConfigError(file, key, f"{item!r} is not one of {', '.join(allowed)}")
    return cleaned


def _table(raw: dict[str, Any], name: str, keys: frozenset[str], file: str) -> dict[str, Any]:
    if name not in raw:
        raise ConfigError(file, name, f"missing [{name}] table")
    body = raw[name]
    if not isinstance(body, dict):
        raise ConfigError(file, name, f"expected a [{name}] table")
    for key in body:
        if key not in keys:
            raise ConfigError(
                file, f"{name}.{key}", f"unknown key (known: {', '.join(sorted(keys))})"
            )
    return body


def parse_policy(text: str, file: str) -> Policy | None:
    """One policy file's text → a ``Policy``; ``None`` when it holds only comments."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML ({exc})") from None
    if not raw:
        return None
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(file, key, f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    stem = file.rsplit("/", 1)[-1].removesuffix(".toml")
    name = raw.get("name", stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            file, "name", "expected 1-64 of a-z 0-9 . _ - starting with a letter or digit"
        )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(file, "description", "expected a string")
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ConfigError(file, "priority", "expected a whole number")
    m = _table(raw, "match", _MATCH_KEYS, file)
    match = Match(
        areas=_strings(m.get("area", "*"), file, "match.area", (*AREAS, "*")),
        roles=_strings(m.get("role", "*"), file, "match.role", (*(r.value for r in Role), "*")),
        accounts=_strings(m.get("account", "*"), file, "match.account"),
        paths=_strings(m.get("path", "**"), file, "match.path"),
    )
    r = _table(raw, "retention", _RETENTION_KEYS, file)
    if "then" not in r:
        raise ConfigError(file, "retention.then", 'missing: "destroy" or "forward"')
    try:
        then = Then(r["then"])
    except ValueError:
        raise ConfigError(file, "retention.then", 'expected "destroy" or "forward"') from None
    keep = None
    if "keep" in r:
        if not isinstance(r["keep"], str):
            raise ConfigError(file, "retention.keep", 'expected a string like "3 months"')
        try:
            keep = parse_duration(r["keep"])
        except ValueError as exc:
            raise ConfigError(file, "retention.keep", str(exc)) from None
    elif then is Then.DESTROY:
        raise ConfigError(file, "retention.keep", "missing: how long to keep before destroying")
    return Policy(name, file, match, then, keep, priority, description)


def parse_policies(files: Iterable[tuple[str, str]]) -> list[Policy]:
    """``(file name, text)`` pairs → the policies in the order they are tried."""
    policies: dict[str, Policy] = {}
    for file, text in files:
        policy = parse_policy(text, file)
        if policy is None:
            continue
        if policy.name in policies:
            raise ConfigError(
                file, "name", f"{policy.name!r} is also the name of {policies[policy.name].file}"
            )
        policies[policy.name] = policy
    return sorted(policies.values(), key=lambda p: (-p.priority, p.name))


# -- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    entry: Catalogued
    action: Action
    policy: str | None
    due: _dt.datetime | None
    reason: str


@dataclass(frozen=True)
class Plan:
    now: _dt.datetime
    decisions: tuple[Decision, ...]

    def by_action(self, action: Action) -> list[Decision]:
        return [d for d in self.decisions if d.action is action]


def choose(entry: Catalogued, policies: Sequence[Policy], role: Role | None) -> Policy | None:
    """The policy that decides ``entry``: the first that matches, in the order tried."""
    for policy in policies:
        if policy.match.matches(entry, role):
            return policy
    return None


def decide(
    entry: Catalogued,
    policy: Policy | None,
    now: _dt.datetime,
    working: WorkingCalendar | None,
) -> Decision:
    if policy is None:
        return Decision(entry, Action.UNMATCHED, None, None, "no policy matches: kept")
    due = (
        entry.received_at
        if policy.keep is None
        else due_at(entry.received_at, policy.keep, working)
    )
    if policy.then is Then.FORWARD:
        if entry.state is ArrivalState.FORWARDED:
            return Decision(entry, Action.DESTROY, policy.name, due, "the vendor holds it")
        if entry.state is ArrivalState.ALTERED:
            return Decision(
                entry,
                Action.HOLD,
                policy.name,
                due,
                "altered since arrival: not forwarded, check it",
            )
        if now >= due:
            return Decision(entry, Action.FORWARD, policy.name, due, policy.describe())
        return Decision(entry, Action.KEEP, policy.name, due, f"forward from {due:%Y-%m-%d %H:%M}Z")
    if now >= due:
        return Decision(entry, Action.DESTROY, policy.name, due, f"kept {policy.keep}")
    return Decision(entry, Action.KEEP, policy.name, due, f"kept until {due:%Y-%m-%d %H:%M}Z")


def expires_at(
    entry: Catalogued, policy: Policy | None, working: WorkingCalendar | None
) -> _dt.datetime | None:
    """When ``policy``'s period for ``entry`` ends and the file is destroyed.

    ``None`` when no policy matches (kept) or when the file waits to be forwarded: its end
    then depends on the vendor, not on a date.
    """
    if policy is None or policy.then is not Then.DESTROY or policy.keep is None:
        return None
    return due_at(entry.received_at, policy.keep, working)


def plan(
    entries: Iterable[Catalogued],
    policies: Sequence[Policy],
    now: _dt.datetime,
    working: WorkingCalendar | None = None,
    roles: Mapping[str, Role] | None = None,
) -> Plan:
    """What a sweep at ``now`` does with each live entry, and which policy decides it.

    ``roles`` maps account names to roles (for ``match.role``); an account missing from
    it matches only policies that do not ask for a role. ``working`` is needed when a
    policy counts working days.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    roles = roles or {}
    decisions = [
        decide(entry, choose(entry, policies, roles.get(entry.account)), now, working)
        for entry in entries
        if entry.state in LIVE_STATES
    ]
    return Plan(now, tuple(decisions))
