"""Which byte ranges of an upload have been written: the guard against sparse "files".

A client may write out of order (SFTP clients pipeline requests, a resumed transfer
starts later), so a hole can be legitimate for a moment; it is never legitimate to stay.

Rules:
- The written ranges are kept merged and sorted; ``holes`` is the bytes below the
  furthest written byte that no write has covered yet.
- A write is refused (``Extent.check`` raises ``ValueError`` with the reason) when, after
  it, the holes would exceed ``window`` bytes, or the written ranges would be more than
  ``max_pieces`` separate pieces: clients pipeline a few MiB ahead, never gigabytes, and
  a ladder of tiny writes cannot grow this bookkeeping without bound either.
- Pure: no I/O.
"""

from __future__ import annotations

import bisect

HOLE_WINDOW = 64 * 1024 * 1024
MAX_PIECES = 1024


class Extent:
    """The merged byte ranges ``[start, end)`` written so far."""

    def __init__(self, window: int = HOLE_WINDOW, max_pieces: int = MAX_PIECES) -> None:
        self.window = window
        self.max_pieces = max_pieces
        self._starts: list[int] = []
        self._ends: list[int] = []
        self.covered = 0  # bytes written at least once

    @property
    def end(self) -> int:
        """One past the furthest byte written: the file's size."""
        return self._ends[-1] if self._ends else 0

    @property
    def holes(self) -> int:
        return self.end - self.covered

    @property
    def pieces(self) -> int:
        return len(self._starts)

    def _merged(self, start: int, end: int) -> tuple[int, int, int, int]:
        """(first, last) indexes of the pieces ``[start, end)`` touches, and its merged span."""
        first = bisect.bisect_left(self._ends, start)
        last = bisect.bisect_right(self._starts, end)
        if first < last:
            start = min(start, self._starts[first])
            end = max(end, self._ends[last - 1])
        return first, last, start, end

    def check(self, offset: int, length: int) -> None:
        """``ValueError`` (the reason) if writing ``length`` bytes at ``offset`` is refused."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        if length == 0:
            return
        first, last, start, end = self._merged(offset, offset + length)
        swallowed = sum(self._ends[i] - self._starts[i] for i in range(first, last))
        covered = self.covered - swallowed + (end - start)
        holes = max(self.end, end) - covered
        if holes > self.window:
            raise ValueError(
                f"write at offset {offset} would leave {holes} bytes unwritten"
                f" (more than {self.window} ahead of the data)"
            )
        if self.pieces - (last - first) + 1 > self.max_pieces:
            raise ValueError(f"writes scattered in more than {self.max_pieces} pieces")

    def add(self, offset: int, length: int) -> None:
        """Record a write (already checked and done)."""
        if length <= 0:
            return
        first, last, start, end = self._merged(offset, offset + length)
        self.covered -= sum(self._ends[i] - self._starts[i] for i in range(first, last))
        self.covered += end - start
        self._starts[first:last] = [start]
        self._ends[first:last] = [end]
