"""Check-then-open races: a folder swapped for a symlink while clients and the cataloguer
work never leads them outside the area; hard links planted by hand are refused.

A racer thread swaps a member's folder for a symlink to a folder outside the instance and
back, as fast as it can, for a bounded time (2 s), while a real client (paramiko) reads and
lists through it, or while the cataloguer reconciles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from intake.services.cataloguer.cataloguer import Cataloguer
from tests.clients import Missing, Refused, SftpClient
from tests.conftest import PASSWORD, RunningServer, TestInstance

RACE_SECONDS = 2.0
SECRET = b"root:x:0:0:SECRET-OUTSIDE-THE-AREA:/root:/bin/bash\n" * 10


RACER = """
import ctypes, os, sys, time
folder, link, outside, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
os.symlink(outside, link)
swaps, deadline = 0, time.monotonic() + seconds
while time.monotonic() < deadline:
    # RENAME_EXCHANGE: the name is always there, a folder or a symlink, flipping.
    if renameat2(-100, folder.encode(), -100, link.encode(), 2) != 0:
        sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
    swaps += 1
if swaps % 2:
    renameat2(-100, folder.encode(), -100, link.encode(), 2)
os.unlink(link)
print(swaps)
"""


@contextmanager
def swapping(folder: Path, outside: Path) -> Iterator[list[int]]:
    """Swap ``folder`` for a symlink to ``outside`` and back (atomically, so the name always
    exists), in another process truly concurrent with the server's threads, for
    ``RACE_SECONDS``; yields the swap count (filled in at the end)."""
    link = folder.with_name(folder.name + ".link")
    racer = subprocess.Popen(
        [sys.executable, "-c", RACER, str(folder), str(link), str(outside), str(RACE_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    swaps = [0]
    try:
        yield swaps
    finally:
        out, _ = racer.communicate(timeout=30)
        swaps[0] = int(out.strip() or 0)


def racing() -> Iterator[None]:
    """Iterations until the racer's time is over (plus a little)."""
    deadline = time.monotonic() + RACE_SECONDS
    while time.monotonic() < deadline:
        yield None


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_bytes(SECRET)
    for index in range(30):
        (folder / f"system-{index}.conf").write_bytes(SECRET)
    return folder


def member_folder(instance: TestInstance) -> Path:
    docs = instance.area("mairie-a") / "docs"
    docs.mkdir(parents=True)
    (docs / "passwd").write_bytes(b"the member's own file named passwd\n")
    return docs


class TestSymlinkSwap:
    def test_reads_never_serve_a_byte_from_outside(
        self, server: RunningServer, outside: Path
    ) -> None:
        """Reads and listings of /docs while it is swapped for a symlink: each one serves
        the member's file or fails; none serves the outside file or lists its folder."""
        server.instance.add_account("mairie-a")
        docs = member_folder(server.instance)
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        served: list[bytes] = []
        listed: list[list[str]] = []
        with swapping(docs, outside) as swaps:
            for _ in racing():
                with suppress(OSError), client.sftp.open("/docs/passwd") as handle:
                    served.append(handle.read())
                with suppress(Refused, Missing, OSError):
                    listed.append(client.listdir("/docs"))
        client.close()
        assert swaps[0] > 10, "the racer did not run"
        assert served, "no read got through at all"
        assert all(b"SECRET" not in data for data in served)
        assert all(not any(n.startswith("system-") for n in names) for names in listed)

    def test_cataloguer_never_walks_outside(self, instance: TestInstance, outside: Path) -> None:
        """Reconciliations while /docs is swapped: no file of the outside folder is ever
        catalogued (nor its content hashed as a member's backup)."""
        instance.add_account("mairie-a")
        docs = member_folder(instance)
        inst = instance.open()
        try:
            cataloguer = Cataloguer(inst.catalog, inst.storage, inst.audit, inst.clock, "cli")
            with swapping(docs, outside) as swaps:
                for _ in racing():
                    cataloguer.reconcile(None, "race")
            entries = inst.catalog.entries(include_attempts=True)
        finally:
            inst.close()
        assert swaps[0] > 10, "the racer did not run"
        assert [] == [e.path for e in entries if "system-" in e.path]
        assert all(e.size != len(SECRET) for e in entries)


class TestHardLinks:
    def test_planted_hard_link_is_neither_served_nor_catalogued(
        self, server: RunningServer, outside: Path
    ) -> None:
        """A hard link to a file outside, planted in an area by hand: reading it is refused
        (audited ``denied``), and the cataloguer does not take it for a backup."""
        server.instance.add_account("mairie-a")
        area = server.instance.area("mairie-a")
        area.mkdir(parents=True, exist_ok=True)
        os.link(outside / "passwd", area / "planted.bak")
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        with pytest.raises(Refused):
            client.download("/planted.bak")
        client.close()
        denied = server.instance.audit("denied")
        assert any(d.get("path") == "/planted.bak" for d in denied)
        scan = server.instance.cli("catalog", "scan", "--json", check=True)
        assert 0 == json.loads(scan.stdout)["catalogued"]
