"""Values of ``intake.toml`` beyond plain strings and numbers: the disk reserve, mail
addresses, loopback hosts, the digest's time. Pure; each mistake is a ``ConfigError``
naming the file and the key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from intake.core.errors import ConfigError

BINARY_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")


@dataclass(frozen=True)
class FreeSpace:
    """``limits.min_free_space``: a share of the filesystem and/or an amount; with both
    (``"5% or 2 GiB"``) the smaller applies; ``"0"`` turns the reserve off."""

    percent: float = 5.0
    amount: int = 2 * 1024**3

    def bytes_of(self, total: int) -> int:
        """The reserve, in bytes, on a filesystem of ``total`` bytes."""
        candidates = []
        if self.percent:
            candidates.append(int(total * self.percent / 100))
        if self.amount:
            candidates.append(self.amount)
        return min(candidates) if candidates else 0

    def __str__(self) -> str:
        parts = []
        if self.percent:
            parts.append(f"{self.percent:g}%")
        if self.amount:
            parts.append(format_bytes(self.amount))
        return " or ".join(parts) or "0"


def format_bytes(count: int) -> str:
    """``2147483648`` -> ``2 GiB``; the largest binary unit that divides evenly."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        size = BINARY_UNITS[unit.lower()]
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} B"


def parse_free_space(text: str, file: str, key: str) -> FreeSpace:
    """``"5%"``, ``"2 GiB"``, ``"5% or 2 GiB"`` (the smaller applies) or ``"0"`` (off)."""
    percent = 0.0
    amount = 0
    if text.strip() == "0":
        return FreeSpace(0.0, 0)
    for part in text.lower().split(" or "):
        part = part.strip()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(%|[kmgt]ib|b)?", part)
        if not match or not part:
            raise ConfigError(file, key, f'expected "5%", "2 GiB" or "5% or 2 GiB", got {text!r}')
        number, unit = float(match[1]), match[2] or "b"
        if unit == "%":
            if percent or not 0 < number < 100:
                raise ConfigError(file, key, "expected one percentage between 0 and 100")
            percent = number
        else:
            if amount:
                raise ConfigError(file, key, "expected at most one amount")
            amount = int(number * BINARY_UNITS[unit])
    return FreeSpace(percent, amount)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_address(value: Any, file: str, key: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise ConfigError(
            file, key, f"expected an e-mail address like name@example.fr, got {value!r}"
        )
    return value


def parse_digest_time(text: str) -> tuple[int, int, str] | None:
    """``"08:00"`` -> (8, 0, "UTC"); ``"08:00 Europe/Paris"`` -> (8, 0, "Europe/Paris");
    ``""`` -> None. The zone's name is checked by whoever reads the tz database."""
    words = text.split()
    if not words:
        return None
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", words[0])
    if not match or len(words) > 2:
        raise ValueError(text)
    return int(match[1]), int(match[2]), words[1] if len(words) == 2 else "UTC"
