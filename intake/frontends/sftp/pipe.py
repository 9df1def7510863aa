"""The SFTP channel's input buffer, without paramiko's copy of the whole buffer per read.

paramiko's ``BufferedPipe`` keeps a channel's input in one ``array``: each read copies
what it takes and then deletes it from the front, which moves everything left behind.
The SFTP server reads each message in two reads (its 4-byte length, then its body), and
with an 8 MiB window (``server.WINDOW_SIZE``) up to 8 MiB is moved for a 4-byte read:
on a fast upload most of the server's time went there.

Rules:
- ``ChunkPipe`` is a ``BufferedPipe`` (same lock, condition, event and close rules: only
  the storage changes): the chunks as fed, in a deque, and an offset into the first.
  A read copies only the bytes it returns; taking them off costs the chunks it empties.
- ``take_over`` replaces a channel's buffer before its SFTP subsystem starts reading
  (``check_channel_subsystem_request``, on the transport thread: no feed runs meanwhile),
  carrying over anything already buffered.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import paramiko
from paramiko.buffered_pipe import BufferedPipe

if TYPE_CHECKING:  # generic in the stubs only
    _Pipe = BufferedPipe[bytes]
else:
    _Pipe = BufferedPipe


class ChunkBuffer:
    """Bytes in arrival order: ``frombytes`` at the end, ``peek`` and ``del [:n]`` at the
    front (the three operations ``BufferedPipe`` does on its ``array``)."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._offset = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def frombytes(self, data: bytes) -> None:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)

    def peek(self, limit: int | None = None) -> bytes:
        """The first ``limit`` bytes (all without a limit), left in place."""
        wanted = self._size if limit is None else max(0, min(limit, self._size))
        if not wanted:
            return b""
        first = self._chunks[0]
        if self._offset + wanted <= len(first):
            return first[self._offset : self._offset + wanted]
        parts = []
        offset = self._offset
        for chunk in self._chunks:
            piece = chunk[offset : offset + wanted]
            parts.append(piece)
            wanted -= len(piece)
            offset = 0
            if not wanted:
                break
        return b"".join(parts)

    def __delitem__(self, key: slice) -> None:
        if not isinstance(key, slice) or key.start not in (None, 0) or key.step is not None:
            raise TypeError("only del buffer[:n] is supported")
        dropping = self._size if key.stop is None else max(0, min(key.stop, self._size))
        self._size -= dropping
        while dropping:
            left = len(self._chunks[0]) - self._offset
            if dropping < left:
                self._offset += dropping
                return
            dropping -= left
            self._chunks.popleft()
            self._offset = 0
        if not self._chunks:
            self._offset = 0


class ChunkPipe(_Pipe):
    """paramiko's pipe over a ``ChunkBuffer``."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = ChunkBuffer()

    def _buffer_frombytes(self, data: bytes) -> None:
        self._buffer.frombytes(data)

    def _buffer_tobytes(self, limit: int | None = None) -> bytes:
        return self._buffer.peek(limit)


def take_over(channel: paramiko.Channel) -> None:
    """Give ``channel`` a ``ChunkPipe`` holding what its old buffer held."""
    if isinstance(channel.in_buffer, ChunkPipe):
        return
    pipe = ChunkPipe()
    pipe.feed(channel.in_buffer.empty())
    channel.in_buffer = pipe
