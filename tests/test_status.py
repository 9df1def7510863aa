"""``intake status``: what an operator or a monitoring probe sees of a real instance."""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
from typing import Any

from intake.adapters.alerting.queue import AlertQueue
from intake.core.alerts import Alert
from intake.core.clock import SystemClock
from intake.services.sweeper.retry import RetryBook
from tests.clients import SftpClient
from tests.conftest import INTAKE, PASSWORD, ServeProcess, TestInstance, wait_for


def status(instance: TestInstance) -> tuple[int, dict[str, Any]]:
    proc = instance.cli("status", "--json")
    assert proc.stderr == ""
    return proc.returncode, json.loads(proc.stdout)


class TestStatus:
    def test_a_stopped_instance_is_degraded(self, instance: TestInstance) -> None:
        """Nothing serving: exit 1, the problem named, the serve section says stopped."""
        code, doc = status(instance)
        assert 1 == code
        assert "stopped" == doc["serve"]["state"]
        assert ["serve is not running"] == doc["problems"]
        assert doc["disk"]["free"] > 0
        assert 0 == doc["forwards"]["pending"]
        text = instance.cli("status")
        assert 1 == text.returncode
        assert "DEGRADED" in text.stdout and "NOT RUNNING" in text.stdout

    def test_a_running_serve_is_healthy_and_counts_sessions(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """serve publishes its pid, addresses and open sessions; status exits 0."""
        instance.add_account("mairie-a")
        code, doc = status(instance)
        assert (0, "running") == (code, doc["serve"]["state"]), doc["problems"]
        assert serve_process.proc.pid == doc["serve"]["pid"]
        host, port = serve_process.addresses["sftp"]
        assert f"{host}:{port}" == doc["serve"]["listening"]["sftp"]
        client = SftpClient(host, port, "mairie-a", PASSWORD)
        try:
            wait_for(lambda: status(instance)[1]["sessions_open"].get("sftp") == 1, timeout=20)
        finally:
            client.close()
        text = instance.cli("status")
        assert 0 == text.returncode
        assert "healthy" in text.stdout.splitlines()[0]
        assert f"pid {serve_process.proc.pid}" in text.stdout

    def test_a_stopped_serve_says_when_and_a_killed_one_says_so(
        self, instance: TestInstance
    ) -> None:
        """SIGTERM leaves "stopped" with a time; kill -9 leaves "ended without stopping"."""
        process = ServeProcess(instance)
        assert 0 == process.signal(signal.SIGTERM)
        code, doc = status(instance)
        assert 1 == code
        assert doc["serve"]["stopped_at"] is not None
        process = ServeProcess(instance)
        wait_for(lambda: status(instance)[1]["serve"]["pid"] == process.proc.pid, timeout=20)
        process.kill()
        code, doc = status(instance)
        assert 1 == code
        assert any("ended without stopping" in p for p in doc["problems"])

    def test_the_last_sweep_is_shown(self, instance: TestInstance) -> None:
        """A sweep (the systemd timer's ``intake sweep``) leaves its result for status."""
        instance.cli("sweep", check=True)
        _code, doc = status(instance)
        sweep = doc["sweep"]
        assert sweep["ok"] is True
        assert 0 == sweep["failures"]
        assert sweep["duration"] >= 0
        assert "last sweep" in instance.cli("status").stdout

    def test_a_forward_that_keeps_failing_degrades(
        self, instance: TestInstance, serve_process: ServeProcess
    ) -> None:
        """Three failures in a row for one file (the sweeper's retry book) is a problem."""
        book = RetryBook.of_state(instance.root / "state")
        now = SystemClock().now()
        for _ in range(3):
            book.failed(7, "vendor unreachable: connection refused", now, 300, 21600)
        book.save()
        code, doc = status(instance)
        assert 1 == code
        assert 1 == doc["forwards"]["retrying"]
        assert any("connection refused" in p for p in doc["problems"])

    def test_status_on_no_instance_is_a_usage_error(self, tmp_path: Any) -> None:
        """A config file that does not exist: one line on stderr, exit 2."""
        proc = subprocess.run(
            [*INTAKE, "--config", str(tmp_path / "nope.toml"), "status"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert 2 == proc.returncode
        assert proc.stderr.startswith("intake: error:")
        assert "Traceback" not in proc.stderr

    def test_the_audit_chain_head_and_last_checkpoint(self, instance: TestInstance) -> None:
        """The head follows the records; ``audit head`` signs a checkpoint status then shows."""
        instance.cli("account", "add", "mairie-z", "--role", "member", check=True)
        instance.cli("audit", "head", check=True)
        _code, doc = status(instance)
        head, checkpoint = doc["audit"]["head"], doc["audit"]["checkpoint"]
        assert checkpoint is not None
        assert head["seq"] >= checkpoint["seq"] >= 1
        assert 64 == len(head["hash"])
        assert f"last checkpoint seq {checkpoint['seq']}" in instance.cli("status").stdout

    def test_an_alert_left_undelivered_degrades(self, instance: TestInstance) -> None:
        """An alert still queued after 15 minutes (the mail server down) is a problem."""
        queue = AlertQueue(instance.root / "state")
        queue.put(Alert("disk", SystemClock().now() - datetime.timedelta(minutes=20)))
        code, doc = status(instance)
        assert 1 == code
        assert 1 == doc["alerts"]["queued"]
        assert any("alert(s) undelivered since" in p for p in doc["problems"])
        assert "1 queued" in instance.cli("status").stdout
