"""The disk reserve (``limits.min_free_space``) on a REAL small filesystem: the whole
instance lives on a tmpfs of ``SIZE`` (mounted by the test, as root), so data/, the
audit log and the catalog share the disk that fills up, as on a single-volume server.

What is checked is what a member and the operator see: the upload refused over SFTP and
FTPS before the disk is full, nothing kept, the refusal audited, an alert raised, the
audit log still written below the reserve, other uploads fine once space is back.
"""

from __future__ import annotations

import ftplib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.core import messages
from intake.core.clock import SystemClock
from intake.core.config_values import parse_free_space
from intake.core.errors import ConfigError
from intake.core.messages import Say
from intake.services.instance import init_instance
from tests.clients import FtpsClient, Refused
from tests.conftest import TestInstance, connect, running, wait_for, write_test_config
from tests.test_bounds import upload_checked

MIB = 1024 * 1024
SIZE = 48 * MIB
RESERVE = "16 MiB"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")


@pytest.fixture
def small(tmp_path: Path) -> Iterator[TestInstance]:
    """An instance on its own 48 MiB tmpfs, reserve 16 MiB, alerts to a command hook."""
    root = tmp_path / "inst"
    root.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "intake-test", str(root)],
        check=True,
    )
    try:
        hook = tmp_path / "hook.py"
        hook.write_text(
            "import sys, pathlib, time\n"
            "out = pathlib.Path(sys.argv[1]) / f'{time.time_ns()}.json'\n"
            "partial = out.with_suffix('.part')\n"
            "partial.write_text(sys.stdin.read())\n"
            "partial.rename(out)\n"
        )
        (tmp_path / "alerts").mkdir()
        conf = write_test_config(
            root,
            f'[alerts]\ncommand = "{sys.executable} {hook} {tmp_path / "alerts"}"\n',
        )
        conf.write_text(
            conf.read_text().replace("[limits]\n", f'[limits]\nmin_free_space = "{RESERVE}"\n')
        )
        init_instance(root, SystemClock())
        instance = TestInstance(root, conf)
        instance.add_account("mairie-a")
        instance.add_account("mairie-b")
        yield instance
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def free(instance: TestInstance) -> int:
    st = os.statvfs(instance.root)
    return st.f_bavail * st.f_frsize


def alerts_received(instance: TestInstance) -> list[dict[str, object]]:
    folder = instance.root.parent / "alerts"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def fill_to_reserve(instance: TestInstance) -> Path:
    """A file outside every area that leaves a little less than the reserve free."""
    filler = instance.root / "data" / "filler"
    with filler.open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, free(instance) - 15 * MIB)
    return filler


class TestDiskReserve:
    @pytest.mark.parametrize("protocol", ["sftp", "ftps"])
    def test_an_upload_stops_at_the_reserve(self, small: TestInstance, protocol: str) -> None:
        """A 40 MiB upload on a 48 MiB disk with a 16 MiB reserve is cut while it arrives:
        the disk never fills, nothing is kept, it is audited, the operator gets one disk
        alert; once the partial data is gone another upload goes through."""
        with running(small) as server:
            client = connect(server, protocol, "mairie-a")
            with pytest.raises((OSError, ftplib.Error, EOFError, Refused)) as refused:
                upload_checked(client, "/big.bak", b"b" * (40 * MIB))
            if isinstance(client, FtpsClient):
                reply = str(refused.value)
                if not isinstance(refused.value, ftplib.Error):  # cut under the client's writes
                    with pytest.raises(ftplib.Error) as late:
                        client.ftp.voidresp()
                    reply = str(late.value)
                assert f"552 {messages.text(Say.DISK_FULL)}." in reply  # the member's words
            client.close()
            assert not (small.area("mairie-a") / "big.bak").exists()
            wait_for(lambda: not list((small.root / "data" / ".staging").iterdir()))
            [denied] = [r for r in small.audit("denied") if r.get("path") == "/big.bak"]
            assert str(denied["reason"]).startswith("disk reserve:")
            assert int(str(denied["free"])) < int(str(denied["reserve"]))
            [cut] = [r for r in small.audit("upload.interrupted") if r.get("path") == "/big.bak"]
            assert str(cut["reason"]).startswith("disk reserve:")
            [alert] = wait_for(lambda: alerts_received(small), timeout=30)
            assert "disk" == alert["kind"]
            assert "Espace disque sous la réserve" in str(alert["subject"])
            assert "mairie-a /big.bak" in str(alert["text"])
            other = connect(server, protocol, "mairie-b")
            other.upload("/fine.bak", b"f" * MIB)
            other.close()
            assert (small.area("mairie-b") / "fine.bak").exists()

    def test_below_the_reserve_uploads_are_refused_at_open_and_the_audit_goes_on(
        self, small: TestInstance
    ) -> None:
        """With the disk already below the reserve an upload is refused when it opens,
        over both protocols; logins and refusals are still audited (the log may use the
        reserve); freeing space lets uploads in again."""
        filler = fill_to_reserve(small)
        with running(small) as server:
            for protocol in ("sftp", "ftps"):
                client = connect(server, protocol, "mairie-a")
                with pytest.raises((OSError, ftplib.Error, EOFError, Refused)):
                    upload_checked(client, f"/tiny-{protocol}.bak", b"tiny")
                client.close()
            refusals = [r for r in small.audit("denied") if "disk reserve" in str(r["reason"])]
            assert {"sftp", "ftps"} == {r["protocol"] for r in refusals}
            assert [] == sorted(p.name for p in small.area("mairie-a").iterdir())
            assert len(small.audit("login.ok")) >= 2
            alerts = wait_for(lambda: alerts_received(small), timeout=30)
            assert ["disk"] == [a["kind"] for a in alerts]  # one per throttle, not per refusal
            filler.unlink()
            client = connect(server, "sftp", "mairie-a")
            client.upload("/after.bak", b"room again")
            client.close()
        assert (small.area("mairie-a") / "after.bak").read_bytes() == b"room again"

    def test_the_reserve_can_be_turned_off(self, small: TestInstance) -> None:
        """``min_free_space = "0"``: no reserve; the disk's own limit applies."""
        small.config_file.write_text(small.config_file.read_text().replace(f'"{RESERVE}"', '"0"'))
        fill_to_reserve(small)
        with running(small) as server:
            client = connect(server, "sftp", "mairie-a")
            client.upload("/tiny.bak", b"tiny")
            client.close()
        assert (small.area("mairie-a") / "tiny.bak").exists()


class TestMinFreeSpaceSetting:
    @pytest.mark.parametrize(
        ("text", "total", "expected"),
        [
            ("5% or 2 GiB", 100 * 1024**3, 2 * 1024**3),  # a large volume: 2 GiB
            ("5% or 2 GiB", 10 * 1024**3, 512 * MIB),  # a small one: 5 %
            ("10%", 1000 * MIB, 100 * MIB),
            ("500 MiB", 10 * 1024**3, 500 * MIB),
            ("0", 10 * 1024**3, 0),
        ],
    )
    def test_forms(self, text: str, total: int, expected: int) -> None:
        """A share, an amount, both (the smaller applies) or "0" (off)."""
        assert expected == parse_free_space(text, "intake.toml", "k").bytes_of(total)

    @pytest.mark.parametrize("text", ["5 potatoes", "150%", "5% or 6%", "1 GiB or 2 GiB", ""])
    def test_mistakes_name_the_key(self, text: str) -> None:
        """A wrong value is one error naming the file and the key."""
        with pytest.raises(ConfigError, match=r"intake\.toml: limits\.min_free_space"):
            parse_free_space(text, "intake.toml", "limits.min_free_space")
