"""What each role sees as ``/`` and what it may do there: the one place that decides.

Both front-ends (SFTP, FTPS) reach files only through ``intake.services.files``, which asks
this module first; no front-end holds a rule of its own.

Views:
- member:      ``/`` is its own area; ``/.receipts/`` in it is a virtual, read-only folder
               of signed receipts (``intake.services.documents.receipts``), never a folder on disk,
               not listed in ``/`` (open it by name).
- technician:  ``/`` lists every member area (read-only) and ``/outbox/`` (its own deposit
               folder, write-once like a member area).
- auditor:     ``/`` holds ``/audit/``, the audit log files, read-only.

Rules (deny unless allowed):
- Read-like operations (list, stat, read) are allowed anywhere inside the view.
- Write-like operations (upload a new file, make a folder, rename to a new name, set the
  modification/access times) are allowed only inside a writable area (a member's own area,
  a technician's outbox), never at ``/`` of a technician or auditor view, and a rename
  never leaves its area. Nothing is ever written, made, renamed or removed in
  ``/.receipts/``.
- Setting a file's times is how clients "preserve the timestamp" (WinSCP, FileZilla,
  rclone, ``sftp put -p``): the content is untouched and retention counts from the
  catalog's arrival time, never from the file's mtime, so it is allowed (``SETTIMES``).
- Delete, rmdir, permission/owner/size changes, symlinks and readlink are never allowed:
  a received backup is write-once, and links are how jails are escaped.
- One attribute request (SFTP SETSTAT) may carry several changes: ``attribute_request``
  decides. A size or owner change refuses the whole request; times are applied and a
  permission change that comes with them is ignored (``sftp put -p`` and WinSCP's "set
  permissions" send both; received files stay 0440); permissions alone are refused.
- "Does the target already exist" is checked by storage, atomically (no overwrite).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from intake.core.errors import Denied
from intake.core.messages import Say
from intake.core.model import Account, Role
from intake.core.paths import VPath

OUTBOX = "outbox"
AUDIT = "audit"
RECEIPTS = ".receipts"
RESERVED_MEMBER_NAMES = frozenset({OUTBOX})
"""A member may not be called ``outbox``: it would hide the outbox in a technician's view."""


class Area(enum.StrEnum):
    ROOT = "root"  # the virtual ``/`` of a technician or auditor
    MEMBER = "member"
    OUTBOX = "outbox"
    AUDIT = "audit"
    RECEIPTS = "receipts"  # a member's virtual ``/.receipts/``


RECEIPTS = ".receipts"


class Op(enum.StrEnum):
    LIST = "list"
    STAT = "stat"
    READ = "read"
    UPLOAD = "upload"
    MKDIR = "mkdir"
    RENAME = "rename"
    DELETE = "delete"
    RMDIR = "rmdir"
    SETATTR = "setattr"
    SETTIMES = "settimes"
    SYMLINK = "symlink"
    READLINK = "readlink"


READ_OPS = frozenset({Op.LIST, Op.STAT, Op.READ})
WRITE_OPS = frozenset({Op.UPLOAD, Op.MKDIR, Op.RENAME, Op.SETTIMES})
NEVER_REASONS = {
    Op.DELETE: "delete refused: received files are write-once",
    Op.RMDIR: "rmdir refused: received files are write-once",
    Op.SETATTR: "attribute change refused (permissions, owner or size)",
    Op.SYMLINK: "symlink refused",
    Op.READLINK: "readlink refused",
}
NEVER_SAY = {Op.DELETE: Say.WRITE_ONCE, Op.RMDIR: Say.WRITE_ONCE, Op.SETATTR: Say.ATTRIBUTES}


@dataclass(frozen=True)
class AttributeRequest:
    """What one attribute request asks to change (which fields it carries)."""

    size: bool = False
    owner: bool = False
    permissions: bool = False
    times: bool = False


@dataclass(frozen=True)
class AttributeDecision:
    """How to treat an ``AttributeRequest``: the operation to authorise, what is ignored."""

    op: Op | None  # None: nothing to change (answer OK, do nothing)
    ignored: str = ""  # "permissions" when they came with times and are not applied


def attribute_request(request: AttributeRequest) -> AttributeDecision:
    """Decide an attribute request; see the module docstring's last rule."""
    if request.size or request.owner:
        return AttributeDecision(Op.SETATTR)
    if request.times:
        return AttributeDecision(Op.SETTIMES, "permissions" if request.permissions else "")
    if request.permissions:
        return AttributeDecision(Op.SETATTR)
    return AttributeDecision(None)


@dataclass(frozen=True)
class Location:
    """Where a client path points: an area, whose area it is, and the path inside it."""

    area: Area
    owner: str
    rel: VPath

    @property
    def writable_area(self) -> bool:
        return self.area in (Area.MEMBER, Area.OUTBOX)


def locate(account: Account, vpath: VPath) -> Location:
    """Map a normalised client path of ``account`` to a location; ``Denied`` if outside."""
    if account.role is Role.MEMBER:
        if vpath and vpath[0] == RECEIPTS:
            return Location(Area.RECEIPTS, account.name, vpath[1:])
        return Location(Area.MEMBER, account.name, vpath)
    if not vpath:
        return Location(Area.ROOT, "", ())
    head, rest = vpath[0], vpath[1:]
    if account.role is Role.TECHNICIAN:
        if head == OUTBOX:
            return Location(Area.OUTBOX, account.name, rest)
        return Location(Area.MEMBER, head, rest)
    if head == AUDIT:
        if any(is_private_to_log(part) for part in rest):
            raise Denied("the audit log's own lock is not served", path="/" + "/".join(vpath))
        return Location(Area.AUDIT, "", rest)
    raise Denied("outside the auditor's view", path="/" + "/".join(vpath))


def is_private_to_log(name: str) -> bool:
    """A name in ``log/`` that is the writers' business, never an auditor's (``.audit.lock``):
    dot names are neither listed nor served in ``/audit/``."""
    return name.startswith(".")


def root_entries(account: Account, member_names: list[str]) -> list[str]:
    """What ``/`` lists for a technician or auditor."""
    if account.role is Role.TECHNICIAN:
        return sorted([*member_names, OUTBOX])
    if account.role is Role.AUDITOR:
        return [AUDIT]
    return []


def check(account: Account, op: Op, location: Location) -> None:
    """Raise ``Denied`` (with the reason for the audit log) unless ``op`` is allowed."""
    if op in NEVER_REASONS:
        raise Denied(NEVER_REASONS[op], operation=op.value, say=NEVER_SAY.get(op, Say.DENIED))
    if op in READ_OPS:
        return
    if op not in WRITE_OPS:  # pragma: no cover - every Op is in one of the sets
        raise Denied(f"unknown operation {op.value}", operation=op.value)
    if location.area is Area.RECEIPTS:
        raise Denied(f"{op.value} refused: receipts are read-only", operation=op.value)
    if not location.writable_area or not location.rel:
        raise Denied(
            f"{op.value} refused: this folder is read-only", operation=op.value, say=Say.READ_ONLY
        )
    if location.area is Area.MEMBER and not (
        account.role is Role.MEMBER and location.owner == account.name
    ):
        raise Denied(
            f"{op.value} refused: another account's area", operation=op.value, say=Say.READ_ONLY
        )
    if location.area is Area.OUTBOX and account.role is not Role.TECHNICIAN:
        raise Denied(f"{op.value} refused: only technicians use the outbox", operation=op.value)


def check_rename(account: Account, source: Location, target: Location) -> None:
    """A rename stays inside one writable area of the account, both ends checked."""
    check(account, Op.RENAME, source)
    check(account, Op.RENAME, target)
    if (source.area, source.owner) != (target.area, target.owner):
        raise Denied("rename refused: it would leave the area", operation=Op.RENAME.value)
