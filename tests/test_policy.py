"""Policy files (format and validation) and the pure plan of a sweep, table-tested."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from intake.adapters.holidays_fr import working_calendar
from intake.core.errors import ConfigError
from intake.core.model import ArrivalState, Role
from intake.core.policy import Action, Policy, Then, parse_policies, parse_policy, plan

UTC = dt.UTC
SHIPPED = Path(__file__).resolve().parents[1] / "policies"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class E:
    """A catalog entry as the plan sees it."""

    id: int
    account: str
    area: str
    path: str
    received_at: dt.datetime
    size: int = 100
    state: ArrivalState = ArrivalState.RECEIVED
    forwarded_at: dt.datetime | None = None


def shipped() -> list[Policy]:
    return parse_policies((str(p), p.read_text()) for p in sorted(SHIPPED.glob("*.toml")))


def policy(text: str, file: str = "p.toml") -> Policy:
    parsed = parse_policy(text, file)
    assert parsed is not None
    return parsed


DESTROY_3M = """
name = "m"
[match]
area = "member"
[retention]
keep = "3 months"
then = "destroy"
"""


class TestShipped:
    def test_shipped_policies_parse(self) -> None:
        """The repository's policies load: member backups 3 months, outbox forwarded."""
        by_name = {p.name: p for p in shipped()}
        assert {"member-backups", "outbox"} <= set(by_name)
        assert "destroy 3 months after arrival" == by_name["member-backups"].describe()
        assert Then.FORWARD is by_name["outbox"].then
        assert by_name["outbox"].keep is None

    def test_examples_are_commented_out(self) -> None:
        """The agreement's other records ship as commented examples, each valid once enabled."""
        examples = sorted(SHIPPED.glob("example-*.toml"))
        assert len(examples) >= 2
        for file in examples:
            text = file.read_text()
            assert parse_policy(text, str(file)) is None
            enabled = "\n".join(
                line[2:] if re.match(r"# (\[|[a-z_]+ = )", line) else line
                for line in text.splitlines()
            )
            example = parse_policy(enabled, str(file))
            assert example is not None, file
            assert example.keep is not None

    def test_examples_are_the_agreements_own(self) -> None:
        """The two examples are the agreement's annex art. 8 records (issue 16 item 9):
        certificate request dossiers at most 15 working days, the copy of a cryptographic
        medium's handover record 3 years; no article or category it does not have."""
        described = {}
        for file in sorted(SHIPPED.glob("example-*.toml")):
            text = file.read_text()
            assert "annex art. 8" in text, file
            assert not re.search(r"\bart\. [0-79]\b|restoration|yearly", text), file
            enabled = "\n".join(
                line[2:] if re.match(r"# (\[|[a-z_]+ = )", line) else line
                for line in text.splitlines()
            )
            example = parse_policy(enabled, str(file))
            assert example is not None
            described[example.name] = example.describe()
        assert {
            "certificate-requests": "destroy 15 working days after arrival",
            "handover-records": "destroy 3 years after arrival",
        } == described

    def test_member_backup_three_months(self) -> None:
        """A member's backup received 30 November is destroyed from 28 February, not before."""
        entry = E(1, "mairie-a", "member", "/db.sql.gz", at("2025-11-30T10:00:00"))
        before = plan([entry], shipped(), at("2026-02-28T09:59:59.999999"), working_calendar())
        on_time = plan([entry], shipped(), at("2026-02-28T10:00:00"), working_calendar())
        assert (Action.KEEP, "member-backups") == (
            before.decisions[0].action,
            before.decisions[0].policy,
        )
        assert (Action.DESTROY, "member-backups") == (
            on_time.decisions[0].action,
            on_time.decisions[0].policy,
        )

    def test_outbox_forwarded_at_next_sweep(self) -> None:
        """A technician's deposit is forwarded at once, destroyed once the vendor holds it."""
        new = E(1, "tech", "outbox", "/outbox/x.bak", at("2026-11-26T10:00:00"))
        sent = E(
            2,
            "tech",
            "outbox",
            "/outbox/y.bak",
            at("2026-11-26T10:00:00"),
            state=ArrivalState.FORWARDED,
            forwarded_at=at("2026-11-26T10:05:00"),
        )
        result = plan([new, sent], shipped(), at("2026-11-26T10:00:00"))
        assert [Action.FORWARD, Action.DESTROY] == [d.action for d in result.decisions]
        assert ["outbox", "outbox"] == [d.policy for d in result.decisions]


class TestValidation:
    @pytest.mark.parametrize(
        ("text", "key", "says"),
        [
            ("nme = 'x'\n" + DESTROY_3M, "nme", "unknown key"),
            (DESTROY_3M.replace('area = "member"', 'area = "members"'), "match.area", "not one of"),
            (
                DESTROY_3M.replace('area = "member"', 'areas = "member"'),
                "match.areas",
                "unknown key",
            ),
            (DESTROY_3M.replace('area = "member"', 'role = "admin"'), "match.role", "not one of"),
            (DESTROY_3M.replace('area = "member"', "account = []"), "match.account", "non-empty"),
            (DESTROY_3M.replace('area = "member"', "path = 3"), "match.path", "expected a string"),
            (DESTROY_3M.replace('"3 months"', '"0 days"'), "retention.keep", "must be positive"),
            (DESTROY_3M.replace('"3 months"', '"-1 months"'), "retention.keep", "must be positive"),
            (DESTROY_3M.replace('"3 months"', '"3 weeks"'), "retention.keep", "unknown unit"),
            (DESTROY_3M.replace('"3 months"', "3"), "retention.keep", "expected a string"),
            (DESTROY_3M.replace('keep = "3 months"\n', ""), "retention.keep", "missing"),
            (
                DESTROY_3M.replace('then = "destroy"', 'then = "delete"'),
                "retention.then",
                "expected",
            ),
            (DESTROY_3M.replace('then = "destroy"\n', ""), "retention.then", "missing"),
            (DESTROY_3M.replace("[retention]", "[retain]"), "retain", "unknown key"),
            (DESTROY_3M.replace('[match]\narea = "member"\n', ""), "match", "missing"),
            ('match = "all"\n[retention]\nthen = "forward"\n', "match", "expected a [match]"),
            (DESTROY_3M.replace('name = "m"', 'name = "Member Backups"'), "name", "a-z 0-9"),
            (
                DESTROY_3M.replace('name = "m"', 'name = "m"\npriority = "high"'),
                "priority",
                "whole number",
            ),
            (DESTROY_3M.replace("keep = ", "keep = = "), None, "not valid TOML"),
        ],
    )
    def test_error_names_file_and_key(self, text: str, key: str | None, says: str) -> None:
        """Every mistake is refused with the file, the key and the problem."""
        with pytest.raises(ConfigError) as caught:
            parse_policy(text, "policies/bad.toml")
        assert ("policies/bad.toml", key) == (caught.value.file, caught.value.key)
        assert says in caught.value.problem
        assert str(caught.value).startswith("policies/bad.toml")

    def test_duplicate_names(self) -> None:
        """Two files with one policy name: the second file is named."""
        with pytest.raises(ConfigError) as caught:
            parse_policies([("a.toml", DESTROY_3M), ("b.toml", DESTROY_3M)])
        assert ("b.toml", "name") == (caught.value.file, caught.value.key)
        assert "a.toml" in caught.value.problem

    def test_name_defaults_to_file_name(self) -> None:
        """Without ``name``, the policy is called after its file."""
        text = DESTROY_3M.replace('name = "m"\n', "")
        assert "archives" == policy(text, "/srv/intake/policies/archives.toml").name

    def test_forward_needs_no_keep(self) -> None:
        """``then = "forward"`` alone means: at the next sweep."""
        p = policy('[match]\narea = "outbox"\n[retention]\nthen = "forward"\n')
        assert (Then.FORWARD, None) == (p.then, p.keep)


def decisions(
    entries: list[E], policies: list[Policy], now: str, roles: dict[str, Role] | None = None
) -> list[tuple[int, Action, str | None]]:
    result = plan(entries, policies, at(now), working_calendar(), roles)
    return [(d.entry.id, d.action, d.policy) for d in result.decisions]


class TestMatching:
    def test_unmatched_is_kept_and_reported(self) -> None:
        """A file no policy matches is never destroyed: kept, reported as unmatched."""
        only_outbox = [policy('[match]\narea = "outbox"\n[retention]\nthen = "forward"\n')]
        entry = E(1, "mairie-a", "member", "/old.sql", at("2000-01-01T00:00:00"))
        result = plan([entry], only_outbox, at("2099-01-01T00:00:00"))
        assert [(Action.UNMATCHED, None)] == [(d.action, d.policy) for d in result.decisions]
        assert "kept" in result.decisions[0].reason

    def test_no_policies_at_all(self) -> None:
        """An empty policy folder keeps everything."""
        entry = E(1, "mairie-a", "member", "/old.sql", at("2000-01-01T00:00:00"))
        assert [(1, Action.UNMATCHED, None)] == decisions([entry], [], "2099-01-01T00:00:00")

    @pytest.mark.parametrize(
        ("pattern", "path", "matched"),
        [
            ("**", "/a.sql", True),
            ("**", "/deep/er/a.sql", True),
            ("*.sql", "/a.sql", True),
            ("*.sql", "/sub/a.sql", False),
            ("**/*.sql", "/a.sql", True),
            ("**/*.sql", "/sub/deep/a.sql", True),
            ("**/*.sql", "/sub/a.sql.gz", False),
            ("/archive/**", "/archive/2026/a.sql", True),
            ("archive/**", "/archives/a.sql", False),
            ("archive/*", "/archive/2026/a.sql", False),
            ("db-????.sql", "/db-2026.sql", True),
            ("db-????.sql", "/db-26.sql", False),
            ("[x].sql", "/[x].sql", True),  # only * ? ** are special
        ],
    )
    def test_path_globs(self, pattern: str, path: str, matched: bool) -> None:
        """``*`` stays in one folder, ``**`` crosses folders; the path is inside the area."""
        p = policy(DESTROY_3M.replace('area = "member"', f"path = {pattern!r}"))
        entry = E(1, "m1", "member", path, at("2020-01-01T00:00:00"))
        expected = Action.DESTROY if matched else Action.UNMATCHED
        assert [(1, expected, "m" if matched else None)] == decisions(
            [entry], [p], "2026-01-01T00:00:00"
        )

    def test_outbox_paths_are_inside_the_outbox(self) -> None:
        """An outbox entry's ``/outbox/`` prefix is not part of what ``match.path`` sees."""
        p = policy('[match]\narea = "outbox"\npath = "urgent/**"\n[retention]\nthen = "forward"\n')
        entry = E(1, "tech", "outbox", "/outbox/urgent/x.bak", at("2026-01-01T00:00:00"))
        assert [(1, Action.FORWARD, "p")] == decisions([entry], [p], "2026-01-01T00:00:00")

    def test_accounts_and_roles(self) -> None:
        """Account globs and roles narrow a policy; an unknown role matches no role rule."""
        p = policy(
            DESTROY_3M.replace('area = "member"', 'account = ["mairie-*", "cc-*"]\nrole = "member"')
        )
        entries = [
            E(1, "mairie-a", "member", "/x", at("2020-01-01T00:00:00")),
            E(2, "cc-b", "member", "/x", at("2020-01-01T00:00:00")),
            E(3, "syndicat", "member", "/x", at("2020-01-01T00:00:00")),
            E(4, "mairie-gone", "member", "/x", at("2020-01-01T00:00:00")),
        ]
        roles = {"mairie-a": Role.MEMBER, "cc-b": Role.MEMBER, "syndicat": Role.MEMBER}
        assert [
            (1, Action.DESTROY, "m"),
            (2, Action.DESTROY, "m"),
            (3, Action.UNMATCHED, None),
            (4, Action.UNMATCHED, None),
        ] == decisions(entries, [p], "2026-01-01T00:00:00", roles)

    def test_priority_then_name_decides(self) -> None:
        """The highest priority that matches decides; equal priorities go by name."""
        archive = (
            'name = "z-archive"\npriority = 10\n[match]\npath = "archive/**"\n'
            '[retention]\nkeep = "3 years"\nthen = "destroy"\n'
        )
        backups = DESTROY_3M.replace('name = "m"', 'name = "a-backups"')
        catch_all = DESTROY_3M.replace('name = "m"', 'name = "b-all"')
        policies = parse_policies([("1.toml", catch_all), ("2.toml", archive), ("3.toml", backups)])
        assert ["z-archive", "a-backups", "b-all"] == [p.name for p in policies]
        entries = [
            E(1, "m1", "member", "/archive/2025.sql", at("2025-01-01T00:00:00")),
            E(2, "m1", "member", "/daily.sql", at("2025-01-01T00:00:00")),
        ]
        assert [(1, Action.KEEP, "z-archive"), (2, Action.DESTROY, "a-backups")] == decisions(
            entries, policies, "2026-01-01T00:00:00"
        )


class TestPlan:
    def test_only_live_entries(self) -> None:
        """Destroyed, vanished, interrupted and receiving entries are not planned again."""
        old = at("2020-01-01T00:00:00")
        entries = [
            E(i, "m1", "member", f"/{s.value}", old, state=s) for i, s in enumerate(ArrivalState)
        ]
        planned = {
            d.entry.state for d in plan(entries, shipped(), at("2026-01-01T00:00:00")).decisions
        }
        assert {ArrivalState.RECEIVED, ArrivalState.FORWARDED, ArrivalState.ALTERED} == planned

    def test_altered_is_destroyed_but_never_forwarded(self) -> None:
        """An altered member backup is still destroyed; an altered outbox file is held."""
        old = at("2020-01-01T00:00:00")
        entries = [
            E(1, "m1", "member", "/x", old, state=ArrivalState.ALTERED),
            E(2, "tech", "outbox", "/outbox/x", old, state=ArrivalState.ALTERED),
        ]
        assert [(1, Action.DESTROY, "member-backups"), (2, Action.HOLD, "outbox")] == decisions(
            entries, shipped(), "2026-01-01T00:00:00"
        )

    def test_forward_after_a_delay(self) -> None:
        """A forward policy with ``keep`` waits that long before sending."""
        p = policy(
            '[match]\narea = "outbox"\n[retention]\nkeep = "2 working days"\nthen = "forward"\n'
        )
        entry = E(1, "tech", "outbox", "/outbox/x", at("2026-07-13T10:00:00"))
        assert [(1, Action.KEEP, "p")] == decisions([entry], [p], "2026-07-16T23:59:59")
        assert [(1, Action.FORWARD, "p")] == decisions([entry], [p], "2026-07-17T00:00:00")

    def test_due_and_reason_for_dry_run(self) -> None:
        """Each decision carries its due time and a reason a person reads."""
        entry = E(1, "m1", "member", "/x", at("2026-11-26T10:00:00"))
        (decision,) = plan([entry], shipped(), at("2026-12-01T00:00:00")).decisions
        assert at("2027-02-26T10:00:00") == decision.due
        assert "kept until 2027-02-26 10:00Z" == decision.reason

    def test_naive_now_refused(self) -> None:
        """``now`` must be aware: a naive time is a programming error."""
        with pytest.raises(ValueError, match="aware"):
            plan([], [], dt.datetime(2026, 1, 1))
