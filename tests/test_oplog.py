"""The operational log: JSON lines for journald, readable on a terminal, one session per id."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

import pytest

from tests.clients import FtpsClient, SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance, wait_for


def json_lines(process: ServeProcess) -> list[dict[str, Any]]:
    """Every line of serve's stderr, each of which must be one JSON object."""
    return [json.loads(line) for line in process.log().splitlines() if line.strip()]


def session_of(lines: list[dict[str, Any]], event: str, account: str) -> list[dict[str, Any]]:
    """All the lines of the session in which ``event`` happened for ``account``."""
    ids = {
        line["session"]
        for line in lines
        if line["event"] == event and line.get("account") == account
    }
    assert 1 == len(ids), f"{event} for {account}: sessions {ids}"
    return [line for line in lines if line.get("session") in ids]


class TestOperationalLog:
    def test_one_sftp_upload_is_followed_from_accept_to_close(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """Every line is JSON; the session's lines carry its id, address, protocol and,
        once logged in, the account; the password appears nowhere."""
        instance.add_account("mairie-a")
        client = SftpClient(*serve_process.addresses["sftp"], "mairie-a", PASSWORD)
        client.upload("/backup.sql", b"z" * 2048)
        client.close()
        wait_for(lambda: "session closed" in serve_process.log(), timeout=20)
        lines = json_lines(serve_process)
        story = session_of(lines, "upload.complete", "mairie-a")
        events = [line["event"] for line in story]
        # A session's own lines start at its login (before it, a connection is noise).
        assert {"login.ok", "session opened"} == set(events[:2])
        assert events[-1].startswith("session closed")
        assert events.index("login.ok") < events.index("upload.complete")
        assert {("127.0.0.1", "sftp")} == {(line["ip"], line["protocol"]) for line in story}
        upload = next(line for line in story if line["event"] == "upload.complete")
        assert {"path": "/backup.sql", "size": 2048} == {
            k: upload["audit"][k] for k in ("path", "size")
        }
        assert all(line["timestamp"].endswith("Z") and line["level"] for line in lines)
        assert PASSWORD not in serve_process.log()

    def test_an_ftps_session_is_bound_to_its_account(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """FTPS too: one session id from accept to close, the account after the login."""
        instance.add_account("mairie-b")
        cafile = str(instance.root / "keys" / "tls.crt")
        client = FtpsClient(*serve_process.addresses["ftps"], "mairie-b", PASSWORD, cafile=cafile)
        client.upload("/b.sql", b"b" * 100)
        client.close()
        wait_for(lambda: serve_process.log().count("session closed") >= 1, timeout=20)
        story = session_of(json_lines(serve_process), "upload.complete", "mairie-b")
        assert {"ftps"} == {line["protocol"] for line in story}
        assert "session opened" in {line["event"] for line in story[:2]}

    def test_a_client_protocol_error_is_one_line_without_traceback(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """An HTTP request on the SFTP port: one line about that address (the first note
        of its kind; repeats are summarised), not an error level, no traceback; the server
        goes on serving."""
        with socket.create_connection(serve_process.addresses["sftp"], timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            conn.recv(100)
        wait_for(lambda: "sftp: before login 127.0.0.1" in serve_process.log(), timeout=30)
        lines = json_lines(serve_process)
        noted = [line for line in lines if "sftp: before login 127.0.0.1" in line["event"]]
        assert 1 == len(noted)
        assert noted[0]["level"] in ("info", "warning")
        assert "Traceback" not in serve_process.log()
        assert not [line for line in lines if line["level"] in ("error", "critical")]
        instance.add_account("mairie-c")
        SftpClient(*serve_process.addresses["sftp"], "mairie-c", PASSWORD).close()

    def test_a_terminal_format_on_request(self, instance: TestInstance) -> None:
        """INTAKE_LOG_FORMAT=console gives human lines (what a terminal gets by default)."""
        instance.add_account("mairie-a")
        process = ServeProcess(instance, env={"INTAKE_LOG_FORMAT": "console"})
        try:
            # Only logged-in sessions get their own opened/closed lines (the rest is noise).
            SftpClient(*process.addresses["sftp"], "mairie-a", PASSWORD).close()
            wait_for(lambda: "session closed" in process.log(), timeout=20)
        finally:
            process.kill()
        text = process.log()
        assert not text.lstrip().startswith("{")
        line = next(line for line in text.splitlines() if "session opened" in line)
        assert "protocol='sftp'" in line and "ip='127.0.0.1'" in line


class TestNoLocalsInTracebacks:
    """A traceback in the operational log never shows local variables (a password)."""

    SCRIPT = """
import io, logging, sys
from intake.adapters.logs import oplog
stream = io.StringIO()
stream.isatty = lambda: {tty}
oplog.configure(stream, {{"INTAKE_LOG_FORMAT": "{fmt}"}})
def login(password):
    raise ValueError("bad login")
try:
    login("hunter2-secret")
except ValueError:
    logging.getLogger("intake.test").exception("login crashed")
sys.stdout.write(stream.getvalue())
"""

    @pytest.mark.parametrize(
        ("fmt", "tty"), [("json", False), ("console", False), ("console", True)]
    )
    def test_a_password_local_is_not_rendered(self, fmt: str, tty: bool) -> None:
        """Console lines too (structlog's default console formatter shows locals with rich)."""
        code = self.SCRIPT.format(fmt=fmt, tty=tty)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert "login crashed" in out
        assert "bad login" in out
        assert "hunter2-secret" not in out
