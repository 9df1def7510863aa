"""``intake account card``: the member's connection card, checked as the agency prints it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.browser import open_in_chromium
from tests.conftest import PASSWORD, RunningServer, TestInstance


def _fingerprints(instance: TestInstance) -> list[str]:
    shown = json.loads(instance.cli("keys", "show", "--json", check=True).stdout)
    return [k["fingerprint"] for k in shown["ssh"]] + [shown["tls"]["sha256"]]


@pytest.fixture
def member(instance: TestInstance) -> TestInstance:
    instance.add_account("mairie-cerilly")
    return instance


class TestTextCard:
    def test_french_by_default_with_every_fingerprint(self, member: TestInstance) -> None:
        """The card is French, names the login and carries each fingerprint as keys show."""
        card = member.cli("account", "card", "mairie-cerilly", check=True).stdout
        assert "fiche de connexion" in card
        assert "Identifiant\u00a0: mairie-cerilly" in card
        for fingerprint in _fingerprints(member):
            assert fingerprint in card
        words = " ".join(card.split())  # sentences are wrapped to the page
        assert "conservés 3 mois" in words
        assert "Connexion FTP explicite sur TLS requise" in words

    def test_winscp_forms_of_the_fingerprints(self, member: TestInstance) -> None:
        """WinSCP shows SHA-256 host keys padded, with the type and 255 bits for ed25519,
        and the certificate in lower-case hex."""
        card = member.cli("account", "card", "mairie-cerilly", check=True).stdout
        ed25519 = _fingerprints(member)[0].removeprefix("SHA256:")
        assert f"ssh-ed25519 255 {ed25519}{'=' * (-len(ed25519) % 4)}" in card
        assert _fingerprints(member)[-1].lower() in card

    def test_address_and_public_ports_from_the_configuration(self, member: TestInstance) -> None:
        """Behind NAT the card gives the published ports and the configured host name."""
        with member.config_file.open("a") as conf:
            conf.write(
                '[server]\nhostname = "sauvegardes.example.fr"\npublic_sftp_port = 22\n'
                'public_ftps_port = 990\ncontact = "04 70 00 00 00"\n'
            )
        card = member.cli("account", "card", "mairie-cerilly", check=True).stdout
        assert "Adresse du serveur\u00a0: sauvegardes.example.fr" in card
        assert "Port SFTP (conseillé)\u00a0: 22\n" in card
        assert ": 990\n" in card
        assert "04 70 00 00 00" in card

    def test_english_on_request(self, member: TestInstance) -> None:
        """--lang en gives the same card in English."""
        card = member.cli("account", "card", "mairie-cerilly", "--lang", "en", check=True).stdout
        assert "connection card" in card
        assert "Login: mairie-cerilly" in card
        assert "kept 3 months" in " ".join(card.split())

    def test_unknown_account_is_exit_2(self, instance: TestInstance) -> None:
        """An unknown or malformed name: one line on stderr, exit 2, nothing printed."""
        for name in ("nobody", "Not/A/Name"):
            proc = instance.cli("account", "card", name)
            assert (2, "") == (proc.returncode, proc.stdout)
            assert 1 == len(proc.stderr.strip().splitlines())


class TestHtmlCard:
    def test_renders_in_chromium_with_every_fingerprint(
        self, member: TestInstance, tmp_path: Path
    ) -> None:
        """The printable page loads in a real browser without console messages, needs no
        outside asset, and shows every fingerprint."""
        page = member.cli(
            "account", "card", "mairie-cerilly", "--format", "html", check=True
        ).stdout
        assert "http://" not in page and "https://" not in page
        path = tmp_path / "card.html"
        path.write_text(page, encoding="utf-8")
        dom, console = open_in_chromium(path, tmp_path)
        assert [] == console
        assert "mairie-cerilly" in dom
        for fingerprint in _fingerprints(member):
            assert fingerprint in dom.replace("<wbr>", "")
        assert '<html lang="fr">' in dom


def _sha1(instance: TestInstance) -> str:
    done = subprocess.run(
        ["openssl", "x509", "-in", str(instance.root / "keys" / "tls.crt"), "-noout",
         "-fingerprint", "-sha1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().split("=", 1)[1]


@pytest.fixture
def roles(instance: TestInstance) -> TestInstance:
    """A member, a technician and an auditor, on an instance with a long public name."""
    with instance.config_file.open("a") as conf:
        conf.write(
            '[server]\nhostname = "sauvegardes.agence-technique-departementale.example.fr"\n'
            'organisation = "Agence technique départementale de l\'Allier"\n'
            'contact = "04 70 00 00 00 - assistance@agence-technique.example.fr"\n'
        )
    instance.add_account("mairie-cerilly")
    instance.add_account("tech-julie", role="technician")
    instance.add_account("dpo", role="auditor")
    return instance


class TestEachRoleItsCard:
    def test_technician_and_auditor_cards(self, roles: TestInstance) -> None:
        """A technician reads members' backups and feeds the outbox; an auditor reads
        /audit/ and the reports and learns how to verify; neither gets the member's
        retention and receipts sentences nor a "drag your backup" step."""
        tech = " ".join(roles.cli("account", "card", "tech-julie", check=True).stdout.split())
        dpo = " ".join(roles.cli("account", "card", "dpo", check=True).stdout.split())
        member = " ".join(roles.cli("account", "card", "mairie-cerilly", check=True).stdout.split())
        assert "Accès technicien" in tech and "/outbox/" in tech and "lecture seule" in tech
        assert "Accès auditeur" in dpo and "/audit/reports/" in dpo
        assert "intake audit verify --public-key audit.pub" in dpo
        key_id = json.loads(roles.cli("keys", "show", "--json", check=True).stdout)["audit"]
        assert str(key_id.get("key_id", key_id) if isinstance(key_id, dict) else key_id) in dpo
        for card in (tech, dpo):
            assert ".receipts" not in card and "conservés 3 mois" not in card
            assert "Faites glisser votre fichier de sauvegarde" not in card
        assert "conservés 3 mois" in member and "/audit/" not in member

    def test_the_host_keys_are_told_apart(self, roles: TestInstance) -> None:
        """Every fingerprint line has its own label: the key type tells the two apart."""
        card = roles.cli("account", "card", "mairie-cerilly", check=True).stdout
        labels = [line.split("\u00a0:")[0].strip() for line in card.splitlines()
                  if "affichée par" in line]  # fmt: skip
        assert len(labels) == len(set(labels)), labels
        assert "SFTP, clé ed25519, affichée par WinSCP" in labels
        assert "SFTP, clé rsa, affichée par WinSCP" in labels

    def test_french_typography_and_whole_byte_pairs(self, roles: TestInstance) -> None:
        """No line starts with ":" or ends with "«"; the TLS fingerprints break only after
        a ":" in the text card, and carry a break opportunity only there in HTML."""
        for name in ("mairie-cerilly", "tech-julie", "dpo"):
            card = roles.cli("account", "card", name, check=True).stdout
            for line in card.splitlines():
                assert not line.strip().startswith((":", ";", "»")), line
                assert not line.rstrip().endswith("«"), line
            assert " :" not in card and "« " not in card
            for line in card.splitlines():
                if re.fullmatch(r"\s+[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*:?", line):
                    assert re.fullmatch(r"\s+([0-9A-Fa-f]{2}:)*[0-9A-Fa-f]{2}:?", line), line
        page = roles.cli("account", "card", "dpo", "--format", "html", check=True).stdout
        for code in re.findall(r'<code class="hex">(.*?)</code>', page):
            assert all(part.endswith(":") for part in code.split("<wbr>")[:-1]), code
            assert re.fullmatch(r"([0-9A-Fa-f]{2}:<wbr>)+[0-9A-Fa-f]{2}", code), code

    @pytest.mark.parametrize("name", ["mairie-cerilly", "tech-julie", "dpo"])
    def test_html_card_prints_on_one_a4_page(
        self, roles: TestInstance, tmp_path: Path, name: str
    ) -> None:
        """Chromium's print of each role's HTML card is one A4 page (pdfinfo counts)."""
        if shutil.which("pdfinfo") is None:
            pytest.skip("pdfinfo (poppler-utils) is not installed")
        page = tmp_path / "card.html"
        page.write_text(roles.cli("account", "card", name, "--format", "html", check=True).stdout)
        pdf = tmp_path / "card.pdf"
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer",
             f"--print-to-pdf={pdf}", page.as_uri()],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
        assert "Pages:           1" in info.stdout, info.stdout
        assert "595.92 x 842.88 pts (A4)" in info.stdout or "(A4)" in info.stdout

    def test_receipts_folder_and_lftp_sha1(self, roles: TestInstance) -> None:
        """The member learns to type /.receipts in WinSCP and FileZilla; the card carries
        the certificate's SHA-1 as lftp prints it."""
        card = " ".join(roles.cli("account", "card", "mairie-cerilly", check=True).stdout.split())
        assert "tapez /.receipts" in card and "WinSCP" in card and "FileZilla" in card
        assert _sha1(roles) in card
        assert f"ssl:verify-certificate/{_sha1(roles)} no" in card


class TestFtpsTrustStepsWork:
    """The card's (and the README's) steps for lftp, curl and rclone, run as written."""

    def test_lftp_curl_rclone_with_the_card_steps(
        self, server: RunningServer, tmp_path: Path
    ) -> None:
        """lftp refuses at first showing the card's SHA-1; with the card's
        ssl:verify-certificate line it uploads; the certificate saved by the card's
        openssl command has the card's SHA-256 and lets curl (--cacert) and rclone
        (SSL_CERT_FILE) upload."""
        for tool in ("lftp", "curl", "rclone", "openssl"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed")
        inst = server.instance
        inst.add_account("mairie-cerilly")
        assert server.ftps is not None
        host, port = server.ftps
        card = " ".join(inst.cli("account", "card", "mairie-cerilly", check=True).stdout.split())
        sha1 = _sha1(inst)
        local = tmp_path / "a.bak"
        local.write_bytes(os.urandom(20_000))
        env = {**os.environ, "LFTP_PASSWORD": PASSWORD, "HOME": str(tmp_path)}
        base = "set net:max-retries 1; set ftp:ssl-force true; set ftp:ssl-protect-data true;"
        opened = f" open --env-password -u mairie-cerilly -p {port} {host};"
        first = subprocess.run(["lftp", "-c", base + opened + " cls /"],
                               capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
        assert 0 != first.returncode and f"({sha1})" in first.stderr, first.stderr
        trust = f" set ssl:verify-certificate/{sha1} no;"
        assert trust.strip().rstrip(";") in card
        done = subprocess.run(
            ["lftp", "-c", base + trust + opened + f" put {local} -o /lftp.bak"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert 0 == done.returncode, done.stderr
        crt = tmp_path / "intake.crt"
        fetched = subprocess.run(  # the card's "openssl s_client ... | openssl x509" pipe
            ["openssl", "s_client", "-connect", f"{host}:{port}", "-starttls", "ftp"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
        )  # fmt: skip
        subprocess.run(["openssl", "x509", "-out", str(crt)], input=fetched.stdout, check=True)
        assert "-starttls ftp < /dev/null | openssl x509 -out intake.crt" in card
        shown = subprocess.run(
            ["openssl", "x509", "-in", str(crt), "-noout", "-fingerprint", "-sha256"],
            capture_output=True, text=True, check=True,
        ).stdout.strip().split("=", 1)[1]  # fmt: skip
        assert shown in card
        netrc = tmp_path / "netrc"
        netrc.write_text(f'machine {host} login mairie-cerilly password "{PASSWORD}"\n')
        netrc.chmod(0o600)
        curl = subprocess.run(
            ["curl", "-sS", "--ssl-reqd", "--cacert", str(crt), "--netrc-file", str(netrc),
             "-T", str(local), f"ftp://{host}:{port}/curl.bak"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert 0 == curl.returncode, curl.stderr
        obscured = subprocess.run(
            ["rclone", "obscure", "-"], input=PASSWORD, capture_output=True, text=True, check=True
        ).stdout.strip()
        remote = (f":ftp,host={host},port={port},user=mairie-cerilly,pass={obscured},"
                  "explicit_tls=true:/")  # fmt: skip
        rclone = subprocess.run(
            ["rclone", "copyto", str(local), remote + "rclone.bak"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "SSL_CERT_FILE": str(crt),
                 "RCLONE_CONFIG": str(tmp_path / "none.conf")},
        )  # fmt: skip
        assert 0 == rclone.returncode, rclone.stderr
        names = {e["path"] for e in json.loads(inst.cli("catalog", "list", "--json").stdout)}
        assert {"/lftp.bak", "/curl.bak", "/rclone.bak"} <= names
