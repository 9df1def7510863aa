"""The auditor's report: real uploads, reads, refusals and a sweep, then ``intake report``,
opened in headless Chromium (Debian's ``chromium``): no console error, the expected rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import paramiko
import pytest

from tests.browser import open_in_chromium
from tests.clients import Missing, Refused, SftpClient
from tests.conftest import (
    PASSWORD,
    RunningServer,
    TestInstance,
    connect,
    running,
    wait_for,
    write_test_config,
)
from tests.sweeping import PastClock

HOSTILE = "<img src=x onerror=alert(1)>.sql"
DATA = b"pg_dump mairie-a" * 1000


class Tables(HTMLParser):
    """The report as a reader sees it: each ``h2`` with the rows of the table below it."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[list[str]]] = {}
        self.tags: list[str] = []
        self._current = ""
        self._text: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("h2", "td", "th"):
            self._text = []
        elif tag == "tr":
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._text is not None:
            self._current = "".join(self._text).strip()
            self.sections[self._current] = []
        elif tag in ("td", "th") and self._text is not None and self._row is not None:
            self._row.append("".join(self._text).strip())
        elif tag == "tr" and self._row is not None:
            if self._current:
                self.sections[self._current].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def parse(dom: str) -> Tables:
    tables = Tables()
    tables.feed(dom)
    return tables


@pytest.fixture
def history(instance: TestInstance) -> Iterator[TestInstance]:
    """100 days ago (a server on a clock set back), mairie-a uploads two backups (one with a
    hostile name), a technician reads one, mairie-a tries a delete and a wrong password;
    mairie-b uploads one. Today a sweep destroys the member backups."""
    with running(instance, PastClock(dt.datetime.now(dt.UTC) - dt.timedelta(days=100))) as then:
        yield from _history(then)


def _history(server: RunningServer) -> Iterator[TestInstance]:
    inst = server.instance
    inst.add_account("mairie-a")
    inst.add_account("mairie-b")
    inst.add_account("tech-julie", role="technician")
    a = connect(server, "sftp", "mairie-a")
    a.mkdir("/2026")
    a.upload("/2026/base.zip", DATA)
    a.upload(f"/{HOSTILE}", b"x")
    with pytest.raises(Refused):
        a.delete("/2026/base.zip")
    a.close()
    b = connect(server, "ftps", "mairie-b")
    b.upload("/b.sql", b"mairie-b")
    b.close()
    tech = connect(server, "sftp", "tech-julie")
    assert DATA == tech.download("/mairie-a/2026/base.zip")
    tech.close()
    with pytest.raises(Exception):
        SftpClient(*server.sftp, "mairie-a", PASSWORD + "x")
    swept = inst.cli("sweep")
    assert 0 == swept.returncode, swept.stderr
    yield inst


class TestReport:
    def test_member_report_in_chromium(self, history: TestInstance, tmp_path: Path) -> None:
        """The French report loads with no console error and shows each backup with its
        SHA-256, the technician's read, the destruction with its certificate, the refusal
        and the failed login; a hostile file name is text, never markup."""
        out = tmp_path / "rapport.html"
        done = history.cli("report", "--account", "mairie-a", "--out", str(out))
        assert 0 == done.returncode, done.stderr
        dom, console = open_in_chromium(out, tmp_path)
        assert [] == console
        page = parse(dom)
        assert "img" not in page.tags and "script" not in page.tags
        backups = page.sections["Sauvegardes reçues et leur empreinte"]
        digest = hashlib.sha256(DATA).hexdigest()
        assert any("/2026/base.zip" in r and digest in r for r in backups[1:])
        assert any(f"/{HOSTILE}" in r for r in backups[1:])
        reads = page.sections["Qui a lu quoi, et quand"]
        assert [("tech-julie", "/2026/base.zip")] == [(r[1], r[2]) for r in reads[1:]]
        destroyed = page.sections["Détruit, avec son certificat"]
        certificates = {
            str(r["path"]): r["certificate"]
            for r in history.audit("destroyed")
            if r["account"] == "mairie-a"
        }
        assert {("/2026/base.zip", certificates["/2026/base.zip"])} <= {
            (r[1], r[7]) for r in destroyed[1:]
        }
        assert all(r[6] == "vérifiée" for r in destroyed[1:])
        refused = page.sections["Tentatives refusées"]
        assert {"refusé", "connexion refusée"} <= {r[1] for r in refused[1:]}
        assert any(r[2] == "supprimer" and r[3] == "/2026/base.zip" for r in refused[1:])
        assert 1 <= len(page.sections["Connexions"]) - 1
        assert "intake audit verify-document" in dom
        assert 2 == dom.count("<svg")

    def test_english_and_period(self, history: TestInstance, tmp_path: Path) -> None:
        """``--lang en`` speaks English; a period before everything holds no row."""
        out = tmp_path / "en.html"
        history.cli(
            "report", "--account", "mairie-a", "--lang", "en", "--out", str(out), check=True
        )
        dom, console = open_in_chromium(out, tmp_path)
        assert [] == console
        assert "Backups received and their fingerprint" in parse(dom).sections
        empty = history.cli(
            "report", "--account", "mairie-a", "--until", "2020-01-01", "--lang", "en", check=True
        ).stdout
        assert "No backup received in the period." in empty
        assert "No login in the period." in empty

    def test_all_members_summary(self, history: TestInstance, tmp_path: Path) -> None:
        """``--all``: one row per member with its counts."""
        out = tmp_path / "all.html"
        history.cli("report", "--all", "--out", str(out), check=True)
        dom, console = open_in_chromium(out, tmp_path)
        assert [] == console
        rows = {r[0]: r for r in parse(dom).sections["Par adhérent"][1:]}
        assert {"mairie-a", "mairie-b"} == set(rows)
        assert ("2", "1") == (rows["mairie-a"][1], rows["mairie-a"][4])  # backups, tech reads
        assert "1" == rows["mairie-b"][1]

    def test_usage_errors(self, instance: TestInstance) -> None:
        """Bad usage is exit 2 with one line, never a traceback."""
        for args in (
            ["report"],
            ["report", "--all", "--account", "x"],
            ["report", "--account", "nobody"],
            ["report", "--all", "--since", "yesterday"],
            ["report", "--all", "--lang", "de"],
        ):
            done = instance.cli(*args)
            assert 2 == done.returncode, args
            assert "Traceback" not in done.stderr


# Names a member may try: each refused and audited, each shown as a visible escape.
TRICKY = {
    "esc\x1b[31mred.sql": "esc\\x1b[31mred.sql",
    "bell\x07.sql": "bell\\x07.sql",
    "x\u202etxt.exe": "x\\u202etxt.exe",
    "zero\u200bwidth.sql": "zero\\u200bwidth.sql",
}
RAW_CONTROLS = [chr(c) for c in range(32) if chr(c) not in "\n"] + ["\x7f", "\u202e", "\u200b"]


class TestWhatTheDpoReads:
    def test_probes_apart_french_labels_paris_time(
        self, server: RunningServer, tmp_path: Path
    ) -> None:
        """rclone's hash probe (an exec of ``md5sum``) and a chmod after an upload (lftp,
        WinSCP) are counted as expected probes, not refusals; a delete stays a refusal,
        labelled in French; times are Paris times with their offset; sizes in Ko."""
        inst = server.instance
        inst.add_account("mairie-a")
        a = connect(server, "sftp", "mairie-a")
        a.upload("/base.zip", DATA)
        with pytest.raises(Refused):
            a.chmod("/base.zip", 0o644)
        with pytest.raises(Refused):
            a.delete("/base.zip")
        channel = a.transport.open_session()  # type: ignore[attr-defined]
        with pytest.raises(paramiko.SSHException):
            channel.exec_command("md5sum")  # what rclone sends; refused
        a.close()
        out = tmp_path / "r.html"
        inst.cli("report", "--account", "mairie-a", "--out", str(out), check=True)
        dom, console = open_in_chromium(out, tmp_path)
        assert [] == console
        page = parse(dom)
        refused = page.sections["Tentatives refusées"][1:]
        probes = page.sections["Sondes attendues des logiciels clients (pas des attaques)"][1:]
        assert [("refusé", "supprimer", "/base.zip")] == [(r[1], r[2], r[3]) for r in refused]
        assert "suppression refusée" in refused[0][4]
        assert {"changer les droits ou la taille", "exécuter une commande md5sum"} == {
            " ".join(r[1].split()) for r in probes
        }
        when = page.sections["Sauvegardes reçues et leur empreinte"][1][4]
        assert when.endswith(("UTC+01:00", "UTC+02:00")), when
        assert "15,6 Ko" in dom and "Kio" not in dom and "Mio" not in dom
        assert "(ouverte)" not in dom and "toute la période enregistrée" in dom

    def test_period_in_words(self, history: TestInstance) -> None:
        """A whole month is named; other periods are written as dates in words."""
        month = history.cli(
            "report", "--all", "--since", "2026-11-01T00:00:00Z", "--until",
            "2026-12-01T00:00:00Z", check=True,
        ).stdout  # fmt: skip
        assert "le mois de novembre 2026 (UTC)" in month
        since = history.cli("report", "--all", "--since", "2026-03-05T00:00:00Z", check=True)
        assert "depuis le 5 mars 2026 à 01:00 UTC+01:00" in since.stdout

    def test_all_shows_unknown_names_and_blocks(
        self, instance: TestInstance, tmp_path: Path
    ) -> None:
        """Failed logins under a name that is no account, and the block they bring, are in
        the ``--all`` report (they belong to no member)."""
        conf = write_test_config(instance.root)
        conf.write_text(
            conf.read_text().replace("max_login_failures = 50", "max_login_failures = 3")
        )
        instance.add_account("mairie-a")
        with running(instance) as server:
            for _ in range(4):
                with pytest.raises(Exception):
                    SftpClient(*server.sftp, "intrus", "guess")
            wait_for(lambda: instance.audit("banned"))
        out = tmp_path / "all.html"
        instance.cli("report", "--all", "--out", str(out), check=True)
        dom, console = open_in_chromium(out, tmp_path)
        assert [] == console
        section = "Hors comptes : blocages et connexions refusées sous un nom inconnu"
        rows = parse(dom).sections[section][1:]
        assert any(r[1] == "connexion refusée" and r[2] == "intrus" for r in rows)
        assert any(r[1] == "adresse bloquée" and r[7] != "—" for r in rows), rows
        assert any("compte inconnu" == r[4] for r in rows)

    def test_control_and_bidi_characters_are_visible_escapes(
        self, server: RunningServer, tmp_path: Path
    ) -> None:
        """Names with ESC, BEL, U+202E, U+200B tried by a member are refused and audited;
        the report (in Chromium, as text), ``audit show`` and the file itself show visible
        escapes and hold no raw control or bidi character."""
        inst = server.instance
        inst.add_account("mairie-a")
        a = connect(server, "sftp", "mairie-a")
        for name in TRICKY:
            with pytest.raises((Refused, OSError)):
                a.upload(f"/{name}", b"x")
        a.close()
        denied = {str(r.get("path")) for r in inst.audit("denied")}
        assert {f"/{n}" for n in TRICKY} <= denied
        out = tmp_path / "r.html"
        inst.cli("report", "--account", "mairie-a", "--out", str(out), check=True)
        raw = out.read_text(encoding="utf-8")
        assert [] == [c for c in RAW_CONTROLS if c in raw]
        dom, console = open_in_chromium(out, tmp_path)
        assert [] == console
        shown = {r[3] for r in parse(dom).sections["Tentatives refusées"][1:]}
        assert {f"/{v}" for v in TRICKY.values()} <= shown
        listing = inst.cli("audit", "show", "--event", "denied", check=True).stdout
        assert [] == [c for c in RAW_CONTROLS if c in listing]
        assert all(v in listing for v in TRICKY.values())


class TestMonthlyReports:
    def test_sweep_writes_last_month_for_the_auditor(
        self, instance: TestInstance, tmp_path: Path
    ) -> None:
        """A sweep writes last month's report per member in ``/audit/reports/YYYY-MM/``; the
        auditor lists and reads them and cannot write there; a second sweep keeps them.
        The backup arrives in the middle of last month (a server on a clock set back)."""
        last_month = (dt.datetime.now(dt.UTC).replace(day=1) - dt.timedelta(days=20)).replace(
            day=14, hour=12
        )
        with running(instance, PastClock(last_month)) as server:
            self._last_month_for_the_auditor(server, last_month.strftime("%Y-%m"), tmp_path)

    def _last_month_for_the_auditor(
        self, server: RunningServer, month: str, tmp_path: Path
    ) -> None:
        inst = server.instance
        inst.add_account("mairie-a")
        inst.add_account("dpo", role="auditor")
        a = connect(server, "sftp", "mairie-a")
        a.upload("/a.sql", DATA)
        a.close()
        assert 0 == inst.cli("sweep").returncode
        folder = inst.root / "log" / "reports" / month
        assert {"mairie-a.html", "_all.html"} == {p.name for p in folder.iterdir()}
        before = (folder / "mairie-a.html").read_bytes()
        auditor = connect(server, "sftp", "dpo")
        try:
            assert "reports" in auditor.listdir("/audit")
            assert ["_all.html", "mairie-a.html"] == auditor.listdir(f"/audit/reports/{month}")
            page = auditor.download(f"/audit/reports/{month}/mairie-a.html")
            assert "/a.sql" in page.decode() and hashlib.sha256(DATA).hexdigest() in page.decode()
            with pytest.raises(Refused):
                auditor.upload(f"/audit/reports/{month}/forged.html", b"<p>")
            with pytest.raises((Refused, Missing)):
                auditor.delete(f"/audit/reports/{month}/mairie-a.html")
        finally:
            auditor.close()
        assert 0 == inst.cli("sweep").returncode
        assert before == (folder / "mairie-a.html").read_bytes()
        dom, console = open_in_chromium(folder / "mairie-a.html", tmp_path)
        assert [] == console and "/a.sql" in dom

    def test_reports_folder_is_there_before_the_first_sweep(self, server: RunningServer) -> None:
        """An auditor's ``ls /audit/reports`` works on a new instance: the folder is there,
        empty, before any sweep (issue 16 item 9)."""
        server.instance.add_account("dpo", role="auditor")
        auditor = connect(server, "sftp", "dpo")
        try:
            assert "reports" in auditor.listdir("/audit")
            assert [] == auditor.listdir("/audit/reports")
        finally:
            auditor.close()
        ftps = connect(server, "ftps", "dpo")
        try:
            assert [] == ftps.listdir("/audit/reports")
        finally:
            ftps.close()

    def test_monthly_off(self, instance: TestInstance) -> None:
        """``[reports] monthly = false``: a sweep writes no report."""
        with instance.config_file.open("a") as conf:
            conf.write("[reports]\nmonthly = false\n")
        assert 0 == instance.cli("sweep").returncode
        assert [] == list((instance.root / "log" / "reports").iterdir())
        doc = json.loads(instance.cli("sweep", "--json").stdout)
        assert doc is not None
