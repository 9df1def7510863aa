"""``intake account card``: the member's connection card, checked as the agency prints it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser import open_in_chromium
from tests.conftest import TestInstance


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
        assert "Identifiant : mairie-cerilly" in card
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
        assert "Adresse du serveur : sauvegardes.example.fr" in card
        assert "Port SFTP (conseillé) : 22\n" in card
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
            assert fingerprint in dom
        assert '<html lang="fr">' in dom
