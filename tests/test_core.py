"""The pure core: names, client paths, containment, and who may do what (tables)."""

from __future__ import annotations

import pytest

from intake.core import authz
from intake.core.authz import Area, Location, Op
from intake.core.errors import Denied, InvalidName
from intake.core.model import Account, ArrivalState, Role, can_move
from intake.core.paths import check_account_name, check_new_name, is_within, normalize

MEMBER = Account("mairie-a", Role.MEMBER, True)
TECH = Account("tech-jean", Role.TECHNICIAN, True)
AUDITOR = Account("dpo", Role.AUDITOR, True)


class TestAccountNames:
    @pytest.mark.parametrize(
        "name", ["a", "mairie-cerilly", "cc.du-bocage_03", "0commune", "a" * 64]
    )
    def test_valid(self, name: str) -> None:
        """Lower-case letters, digits, dot, dash, underscore; 1 to 64."""
        assert name == check_account_name(name)

    @pytest.mark.parametrize(
        "name", ["", "-a", ".a", "_a", "A", "mairie cerilly", "é", "a/b", "a" * 65, "a\n"]
    )
    def test_invalid(self, name: str) -> None:
        """Anything else is refused."""
        with pytest.raises(InvalidName):
            check_account_name(name)


class TestNormalize:
    @pytest.mark.parametrize(
        ("client", "expected"),
        [
            ("/", ()),
            ("", ()),
            (".", ()),
            ("/a/b", ("a", "b")),
            ("a//b/./c", ("a", "b", "c")),
            ("/../../etc/passwd", ("etc", "passwd")),
            ("a/../../b", ("b",)),
            ("/a/b/..", ("a",)),
            ("..", ()),
        ],
    )
    def test_paths_never_climb_above_the_root(self, client: str, expected: tuple[str, ...]) -> None:
        """``..`` is clamped at ``/`` as OpenSSH's chroot does."""
        assert expected == normalize(client)

    def test_nul_and_huge_paths_are_refused(self) -> None:
        """A NUL byte or a path over 4096 bytes is refused."""
        with pytest.raises(InvalidName):
            normalize("a\x00b")
        with pytest.raises(InvalidName):
            normalize("a/" * 3000)

    @pytest.mark.parametrize("name", ["", ".", "..", "a\nb", "a\x1bb", "x" * 256])
    def test_new_names(self, name: str) -> None:
        """Control characters, dot names and names over 255 bytes cannot be created."""
        with pytest.raises(InvalidName):
            check_new_name(name)

    def test_is_within_is_not_a_prefix_test(self) -> None:
        """``/data/a`` does not contain ``/data/ab``."""
        assert is_within("/data/a", "/data/a/x")
        assert is_within("/data/a", "/data/a")
        assert not is_within("/data/a", "/data/ab")
        assert not is_within("/data/a", "/data")


class TestViews:
    def test_member_root_is_its_area(self) -> None:
        assert Location(Area.MEMBER, "mairie-a", ("x",)) == authz.locate(MEMBER, ("x",))

    def test_technician_root_lists_members_and_outbox(self) -> None:
        assert Location(Area.ROOT, "", ()) == authz.locate(TECH, ())
        assert Location(Area.OUTBOX, "tech-jean", ("f",)) == authz.locate(TECH, ("outbox", "f"))
        assert Location(Area.MEMBER, "mairie-a", ("f",)) == authz.locate(TECH, ("mairie-a", "f"))
        assert ["a", "outbox"] == authz.root_entries(TECH, ["a"])

    def test_auditor_sees_only_the_audit_folder(self) -> None:
        assert Location(Area.AUDIT, "", ("x",)) == authz.locate(AUDITOR, ("audit", "x"))
        with pytest.raises(Denied):
            authz.locate(AUDITOR, ("mairie-a",))


ALLOWED = "allowed"
CASES = [
    (MEMBER, Op.UPLOAD, Location(Area.MEMBER, "mairie-a", ("f",)), ALLOWED),
    (MEMBER, Op.MKDIR, Location(Area.MEMBER, "mairie-a", ("d",)), ALLOWED),
    (MEMBER, Op.READ, Location(Area.MEMBER, "mairie-a", ("f",)), ALLOWED),
    (MEMBER, Op.UPLOAD, Location(Area.MEMBER, "mairie-a", ()), "read-only"),
    (MEMBER, Op.DELETE, Location(Area.MEMBER, "mairie-a", ("f",)), "write-once"),
    (MEMBER, Op.SETATTR, Location(Area.MEMBER, "mairie-a", ("f",)), "attribute"),
    (MEMBER, Op.SYMLINK, Location(Area.MEMBER, "mairie-a", ("l",)), "symlink"),
    (TECH, Op.READ, Location(Area.MEMBER, "mairie-a", ("f",)), ALLOWED),
    (TECH, Op.UPLOAD, Location(Area.MEMBER, "mairie-a", ("f",)), "another account"),
    (TECH, Op.UPLOAD, Location(Area.OUTBOX, "tech-jean", ("f",)), ALLOWED),
    (TECH, Op.UPLOAD, Location(Area.ROOT, "", ()), "read-only"),
    (TECH, Op.DELETE, Location(Area.OUTBOX, "tech-jean", ("f",)), "write-once"),
    (AUDITOR, Op.READ, Location(Area.AUDIT, "", ("audit-2026-11.jsonl",)), ALLOWED),
    (AUDITOR, Op.UPLOAD, Location(Area.AUDIT, "", ("x",)), "read-only"),
]


class TestRules:
    @pytest.mark.parametrize(("account", "op", "location", "outcome"), CASES)
    def test_decisions(self, account: Account, op: Op, location: Location, outcome: str) -> None:
        """Deny unless allowed; every refusal carries a reason for the audit log."""
        if outcome == ALLOWED:
            authz.check(account, op, location)
            return
        with pytest.raises(Denied) as caught:
            authz.check(account, op, location)
        assert outcome in caught.value.reason

    def test_rename_never_leaves_its_area(self) -> None:
        """A technician cannot move a file from the outbox into a member's area."""
        with pytest.raises(Denied):
            authz.check_rename(
                TECH,
                Location(Area.OUTBOX, "tech-jean", ("f",)),
                Location(Area.MEMBER, "mairie-a", ("f",)),
            )


class TestArrivalStates:
    def test_the_written_down_transitions(self) -> None:
        """receiving → received → forwarded → destroyed; nothing comes back from the end."""
        assert can_move(ArrivalState.RECEIVING, ArrivalState.RECEIVED)
        assert can_move(ArrivalState.RECEIVED, ArrivalState.DESTROYED)
        assert can_move(ArrivalState.FORWARDED, ArrivalState.DESTROYED)
        assert not can_move(ArrivalState.DESTROYED, ArrivalState.RECEIVED)
        assert not can_move(ArrivalState.INTERRUPTED, ArrivalState.RECEIVED)
