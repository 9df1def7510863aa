"""Password checks: scrypt, and right passwords remembered for a while (SFTPGo's password
caching) so a client that opens one connection per file pays the hash once."""

from __future__ import annotations

import pytest

from intake.adapters import passwords
from intake.adapters.passwords import REMEMBER_SECONDS, REMEMBERED, Remembered, verify_password

STORED = passwords.hash_password("le bon mot de passe")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The scrypt derivations run from now on (the real function, counted)."""
    calls: list[int] = []
    real = passwords._derive

    def counted(*args: object) -> bytes:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(passwords, "_derive", counted)
    return calls


class TestRemembered:
    def test_a_right_password_is_hashed_once_then_remembered(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hashes = count_hashes(monkeypatch)
        memory = Remembered(Clock())
        assert verify_password("le bon mot de passe", STORED, memory)
        assert verify_password("le bon mot de passe", STORED, memory)
        assert 1 == len(hashes)

    def test_a_wrong_password_always_costs_a_hash(self, monkeypatch: pytest.MonkeyPatch) -> None:
        hashes = count_hashes(monkeypatch)
        memory = Remembered(Clock())
        assert verify_password("le bon mot de passe", STORED, memory)
        for _ in range(3):
            assert not verify_password("un mauvais", STORED, memory)
        assert not verify_password("le bon mot de passe", None, memory)  # unknown account
        assert 5 == len(hashes)

    def test_a_changed_password_is_not_remembered(self) -> None:
        memory = Remembered(Clock())
        assert verify_password("le bon mot de passe", STORED, memory)
        changed = passwords.hash_password("le bon mot de passe")  # same text, new salt
        assert not memory.knows(b"le bon mot de passe", changed)
        assert verify_password("le bon mot de passe", changed, memory)

    def test_it_forgets_after_its_time_and_keeps_a_bounded_number(self) -> None:
        clock = Clock()
        memory = Remembered(clock)
        assert verify_password("le bon mot de passe", STORED, memory)
        clock.now += REMEMBER_SECONDS + 1
        assert not memory.knows(b"le bon mot de passe", STORED)
        for n in range(REMEMBERED + 10):
            memory.remember(f"p{n}".encode(), STORED)
        assert not memory.knows(b"p0", STORED)
        assert memory.knows(f"p{REMEMBERED + 9}".encode(), STORED)
        assert REMEMBERED == len(memory._until)
