"""A commit that fails at the close (not a name conflict): one audited outcome, a true reply.

The failure is a real one: the folder the upload goes to is removed on disk while the
upload is open, so the rename into place fails (``ENOENT``). The client must hear that
the file was not stored, the audit log must say ``upload.interrupted`` once, and the
catalog entry must not stay ``receiving``.
"""

from __future__ import annotations

import ftplib
import io
import json

import pytest
from paramiko.sftp import CMD_CLOSE

from tests.clients import FtpsClient, SftpClient
from tests.conftest import PASSWORD, RunningServer, TestInstance, wait_for


def attempts(instance: TestInstance) -> list[tuple[str, str]]:
    listed = json.loads(instance.cli("catalog", "list", "--all", "--json", check=True).stdout)
    return [(e["path"], e["state"]) for e in listed]


def check_outcome(instance: TestInstance) -> None:
    (record,) = wait_for(lambda: instance.audit("upload.interrupted"))
    assert "/sub/db.bak" == record["path"]
    assert "could not be stored" in str(record["reason"])
    assert [] == instance.audit("upload.complete")
    assert [] == list((instance.root / "data" / ".staging").iterdir())
    assert not (instance.area("mairie-a") / "sub").exists()
    assert [("/sub/db.bak", "interrupted")] == wait_for(lambda: attempts(instance))


class TestFailedCommit:
    def test_sftp_close_fails_truthfully(self, server: RunningServer) -> None:
        """SFTP: the CLOSE is answered with a failure, never OK; one interrupted record."""
        instance = server.instance
        instance.add_account("mairie-a")
        client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
        client.mkdir("/sub")
        handle = client.sftp.open("/sub/db.bak", "wb")
        handle.write(b"x" * 100_000)
        handle.flush()
        (instance.area("mairie-a") / "sub").rmdir()
        # paramiko's SFTPFile.close() swallows the server's status: send the CLOSE itself.
        handle._closed = True  # type: ignore[attr-defined]
        with pytest.raises(OSError, match=r"(?i)failure"):
            client.sftp._request(CMD_CLOSE, handle.handle)  # type: ignore[attr-defined]
        client.close()
        check_outcome(instance)

    def test_ftps_transfer_fails_truthfully(self, server: RunningServer) -> None:
        """FTPS: the STOR ends with a 451, never a 226; one interrupted record."""
        instance = server.instance
        instance.add_account("mairie-a")
        assert server.ftps is not None
        client = FtpsClient(
            *server.ftps, "mairie-a", PASSWORD, cafile=str(instance.root / "keys" / "tls.crt")
        )
        client.mkdir("/sub")
        removed: list[bool] = []

        def remove_folder(_block: bytes) -> None:
            if not removed:
                (instance.area("mairie-a") / "sub").rmdir()
                removed.append(True)

        with pytest.raises(ftplib.error_temp, match="451"):
            client.ftp.storbinary(
                "STOR /sub/db.bak", io.BytesIO(b"y" * 300_000), 8192, remove_folder
            )
        client.close()
        check_outcome(instance)
