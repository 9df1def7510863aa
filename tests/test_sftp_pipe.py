"""The SFTP channel's input buffer (``frontends/sftp/pipe.py``) against a plain bytearray:
whatever is fed comes out once, in order, whatever the sizes fed and read."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from intake.frontends.sftp.pipe import ChunkBuffer, ChunkPipe

Steps = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), st.binary(max_size=300)),
        st.tuples(st.just("take"), st.one_of(st.none(), st.integers(0, 400))),
    ),
    max_size=80,
)


@given(Steps)
def test_the_buffer_gives_back_what_it_was_fed_in_order(steps: list[tuple[str, object]]) -> None:
    buffer, reference = ChunkBuffer(), bytearray()
    for kind, value in steps:
        if kind == "feed":
            assert isinstance(value, bytes)
            buffer.frombytes(value)
            reference += value
        else:
            limit = value if isinstance(value, int) else None
            assert bytes(reference[:limit]) == buffer.peek(limit)
            del buffer[:limit]
            del reference[:limit]
        assert len(reference) == len(buffer)


def test_a_reader_thread_gets_every_byte_a_feeder_sends() -> None:
    """As the SFTP subsystem reads while the transport feeds: 4-byte then body reads."""
    pipe = ChunkPipe()
    messages = [bytes([n % 251]) * (n * 37 % 5000 + 1) for n in range(500)]
    got: list[bytes] = []

    def read_all(size: int) -> bytes:
        out = b""
        while len(out) < size:
            more = pipe.read(size - len(out), timeout=10)
            assert more, "closed early"
            out += more
        return out

    def reader() -> None:
        for _ in messages:
            size = int.from_bytes(read_all(4), "big")
            got.append(read_all(size))

    thread = threading.Thread(target=reader)
    thread.start()
    for message in messages:
        pipe.feed(len(message).to_bytes(4, "big") + message)
    thread.join(30)
    assert messages == got
