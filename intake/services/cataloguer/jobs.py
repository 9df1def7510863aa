"""The cataloguer worker's work items: one small typed event per kind (no string tags).

Producers: the watchdog handler (``watcher``), the upload listener and the worker itself
(``cataloguer``). The worker is their one consumer and handles each type in one place
(``Cataloguer._do``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """Bring the catalog in line with one file now (closed after writing, or suspect)."""

    path: str


@dataclass(frozen=True)
class Created:
    """A file appeared without a close (yet): it waits to settle."""

    path: str


@dataclass(frozen=True)
class Gone:
    """A file was removed from disk."""

    path: str


@dataclass(frozen=True)
class Moved:
    """A file was renamed (``dest`` empty: moved out of the tree)."""

    src: str
    dest: str


@dataclass(frozen=True)
class DirMoved:
    """A folder was renamed."""

    src: str
    dest: str


@dataclass(frozen=True)
class Retry:
    """An upload whose recording failed at once: record it again."""

    path: str


@dataclass(frozen=True)
class Settled:
    """The wait of files that appeared without a close is over: check them."""


@dataclass(frozen=True)
class Reconcile:
    """Carry out the pending reconciliation requests."""


@dataclass(frozen=True)
class Wake:
    """Nothing to do: wakes the worker so it sees it was stopped."""


Job = Check | Created | Gone | Moved | DirMoved | Retry | Settled | Reconcile | Wake
