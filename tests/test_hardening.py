"""The smaller findings of issue 11 (item 16): each through the real part it is about."""

from __future__ import annotations

import ast
import logging
import os
import stat
from pathlib import Path

import pytest

from intake.core.errors import InvalidName
from intake.core.paths import check_new_name
from intake.services.sweeper.retry import RetryBook
from tests.clients import Refused
from tests.conftest import RunningServer, TestInstance, connect

INTAKE = Path(__file__).resolve().parents[1] / "intake"


class TestRetryBook:
    def test_an_unreadable_book_is_kept_aside_with_a_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A corrupt book is renamed .bad (content intact), a warning says so, none is lost."""
        book = tmp_path / "forward-retry.json"
        book.write_text('{"12": {"attempts": "not a number"')
        with caplog.at_level(logging.WARNING, logger="intake.sweeper"):
            retries = RetryBook(book)
        assert {} == retries.items
        assert (
            '{"12": {"attempts": "not a number"'
            == (tmp_path / "forward-retry.json.bad").read_text()
        )
        assert any("kept as" in r.getMessage() for r in caplog.records)
        book.write_text("[]")  # a second bad one does not overwrite the first
        RetryBook(book)
        assert (tmp_path / "forward-retry.json.bad.1").exists()

    def test_a_saved_book_reads_back_and_is_private(self, tmp_path: Path) -> None:
        """save() writes the whole book (owner-only), and it reads back the same."""
        import datetime as dt

        book = RetryBook(tmp_path / "forward-retry.json")
        now = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
        book.failed(7, "vendor down", now, 300, 3600)
        book.save()
        again = RetryBook(tmp_path / "forward-retry.json")
        assert book.items == again.items
        assert 0o600 == stat.S_IMODE((tmp_path / "forward-retry.json").stat().st_mode)
        assert not (tmp_path / "forward-retry.tmp").exists()


class TestNoAssert:
    def test_production_code_has_no_assert_statement(self) -> None:
        """Runtime checks must hold under python -O: no ``assert`` in intake/."""
        found = []
        for path in sorted(INTAKE.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            found += [
                f"{path.relative_to(INTAKE)}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Assert)
            ]
        assert [] == found


class TestStagingName:
    @pytest.mark.parametrize("protocol", ["sftp", "ftps"])
    def test_a_member_cannot_make_a_staging_folder(
        self, server: RunningServer, protocol: str
    ) -> None:
        """.staging is a reserved name: mkdir and upload refused, audited."""
        server.instance.add_account("mairie-a")
        client = connect(server, protocol, "mairie-a")
        with pytest.raises(Refused):
            client.mkdir("/.staging")
        with pytest.raises(Refused):
            client.upload("/.staging", b"x")
        client.close()
        refusals = [r for r in server.instance.audit("denied") if r.get("path") == "/.staging"]
        assert 2 == len(refusals)

    def test_a_staging_folder_already_there_is_shown(self, server: RunningServer) -> None:
        """One made by hand before the rule is listed like any folder (never hidden)."""
        inst = server.instance
        inst.add_account("mairie-a")
        (inst.area("mairie-a") / ".staging").mkdir(parents=True)
        (inst.area("mairie-a") / ".staging" / "old.bak").write_bytes(b"old")
        client = connect(server, "sftp", "mairie-a")
        assert [".staging"] == client.listdir("/")
        assert ["old.bak"] == client.listdir("/.staging")
        client.close()


class TestDatabaseModes:
    def test_databases_are_owner_only_and_fixed_on_open(self, instance: TestInstance) -> None:
        """accounts.db and catalog.db are 0600; a 0644 one is narrowed when opened."""
        instance.open().close()
        state = instance.root / "state"
        for name in ("accounts.db", "catalog.db"):
            assert 0o600 == stat.S_IMODE((state / name).stat().st_mode), name
            os.chmod(state / name, 0o644)
        instance.add_account("mairie-a")  # opens both
        for path in state.glob("*.db*"):
            assert 0o600 == stat.S_IMODE(path.stat().st_mode), path.name


class TestInvisibleNames:
    @pytest.mark.parametrize(
        "name",
        [
            "facture\u202egpj.exe",  # right-to-left override
            "a\u2066b.bak",  # left-to-right isolate
            "zero\u200bwidth.bak",  # zero-width space
            "soft\u00adhyphen.bak",
            "\ufeffbom.bak",
            "line\u2028sep.bak",
            "\u3164.bak",  # Hangul filler: a blank letter
            "private\ue000.bak",
        ],
    )
    def test_refused(self, name: str) -> None:
        """Bidi controls, format characters, separators, fillers: refused like controls."""
        with pytest.raises(InvalidName):
            check_new_name(name)

    @pytest.mark.parametrize(
        "name", ["Sauvegarde déc. 2026.bak", "mairie_été-2026.sql.gz", "日本語.zip", "a b.bak"]
    )
    def test_accepted(self, name: str) -> None:
        """Accented letters, spaces and other scripts stay welcome."""
        assert name == check_new_name(name)

    @pytest.mark.parametrize("protocol", ["sftp", "ftps"])
    def test_an_upload_with_a_bidi_name_is_refused(
        self, server: RunningServer, protocol: str
    ) -> None:
        """Over both protocols the name is refused and audited; nothing lands."""
        server.instance.add_account("mairie-a")
        client = connect(server, protocol, "mairie-a")
        with pytest.raises(Refused):
            client.upload("/facture\u202egpj.exe", b"x")
        client.close()
        assert [] == [p for p in server.instance.area("mairie-a").iterdir()]
        assert server.instance.audit("denied")
