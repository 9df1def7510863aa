"""The nouns of intake: roles, accounts, and the life of an arrival.

The arrival state machine is written down here once; the catalog refuses any other move.

    receiving ──> received ──> forwarded ──> destroyed
        │            │  │                      ^
        │            │  └──────────────────────┘
        │            ├──> vanished   (gone from disk with no destruction record)
        │            └──> altered    (content no longer matches its SHA-256)
        └──> interrupted             (the connection dropped before the close)

``altered`` may still be destroyed (the certificate then says so).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    MEMBER = "member"
    TECHNICIAN = "technician"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Account:
    """An account as the rest of the system sees it: never with its secrets."""

    name: str
    role: Role
    enabled: bool


class ArrivalState(enum.StrEnum):
    RECEIVING = "receiving"
    RECEIVED = "received"
    FORWARDED = "forwarded"
    DESTROYED = "destroyed"
    INTERRUPTED = "interrupted"
    VANISHED = "vanished"
    ALTERED = "altered"


ALLOWED_TRANSITIONS: dict[ArrivalState, frozenset[ArrivalState]] = {
    ArrivalState.RECEIVING: frozenset({ArrivalState.RECEIVED, ArrivalState.INTERRUPTED}),
    ArrivalState.RECEIVED: frozenset(
        {
            ArrivalState.FORWARDED,
            ArrivalState.DESTROYED,
            ArrivalState.VANISHED,
            ArrivalState.ALTERED,
        }
    ),
    ArrivalState.FORWARDED: frozenset(
        {ArrivalState.DESTROYED, ArrivalState.VANISHED, ArrivalState.ALTERED}
    ),
    ArrivalState.ALTERED: frozenset({ArrivalState.DESTROYED, ArrivalState.VANISHED}),
    ArrivalState.DESTROYED: frozenset(),
    ArrivalState.INTERRUPTED: frozenset(),
    ArrivalState.VANISHED: frozenset(),
}


LIVE_STATES = (ArrivalState.RECEIVED, ArrivalState.FORWARDED, ArrivalState.ALTERED)
"""States of an arrival whose file is still expected on disk."""
ATTEMPT_STATES = (ArrivalState.RECEIVING, ArrivalState.INTERRUPTED)
"""States of an upload that never became a backup (hidden from listings by default)."""
OPEN_STATES = (ArrivalState.RECEIVING, *LIVE_STATES)
"""States that hold a path: being received there, or its file expected there."""


def can_move(current: ArrivalState, target: ArrivalState) -> bool:
    """True when an arrival in ``current`` may move to ``target``."""
    return target in ALLOWED_TRANSITIONS[current]
