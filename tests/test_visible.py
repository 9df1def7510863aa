"""The one rule for showing a client-chosen name to a person (``intake.core.visible``),
and the alert mail that uses it."""

from __future__ import annotations

import datetime as dt

import pytest

from intake.adapters.audit.writer import display
from intake.core.alerts import Alert, compose
from intake.core.visible import visible

AT = dt.datetime(2026, 12, 2, 9, 14, 3, tzinfo=dt.UTC)


class TestVisible:
    @pytest.mark.parametrize(
        ("name", "shown"),
        [
            ("/2026/base.zip", "/2026/base.zip"),
            ("été/Réunion.sql", "été/Réunion.sql"),  # accents stay readable
            ("a\x1b[31mb", "a\\x1b[31mb"),
            ("bell\x07\x00", "bell\\x07\\x00"),
            ("/x\u202etxt.exe", "/x\\u202etxt.exe"),
            ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
            ("nbsp\u00a0line\u2028", "nbsp\\xa0line\\u2028"),
            ("tag\U000e0041", "tag\\U000e0041"),
            ("back\\u202e", "back\\\\u202e"),  # a typed escape never reads as a real one
        ],
    )
    def test_hidden_characters_become_escapes(self, name: str, shown: str) -> None:
        """Control, format, bidi, separators: escaped; everything else kept."""
        assert shown == visible(name)
        assert shown == display(name)


class TestAlertMail:
    def test_a_name_cannot_reorder_or_drive_the_mail(self) -> None:
        """A file name with U+202E and ESC is shown escaped in the body and the subject."""
        alert = Alert(
            "vanished", AT, subject="mairie\u202ea", files=("/x\u202etxt.exe", "/e\x1b[2J")
        )
        message = compose([alert], "sauvegardes.example.fr", "/srv/intake")
        for text in (message.subject, message.body):
            assert "\u202e" not in text and "\x1b" not in text
        assert "/x\\u202etxt.exe" in message.body and "/e\\x1b[2J" in message.body
        assert "mairie\\u202ea" in message.subject
