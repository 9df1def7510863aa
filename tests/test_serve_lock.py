"""One ``serve`` per instance: a second one touches nothing, and a failed start recovers nothing.

A real ``intake serve`` process, a real paramiko client holding an upload open, and a
second ``intake serve`` started on the same instance.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess

from tests.clients import SftpClient
from tests.conftest import INTAKE, PASSWORD, ServeProcess, TestInstance, write_test_config


def second_serve(instance: TestInstance) -> subprocess.CompletedProcess[str]:
    """Run another ``intake serve`` on the instance; it must exit by itself."""
    proc = subprocess.Popen(
        [*INTAKE, "--config", str(instance.config_file), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, -9, out, err + "\n(still serving)")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class TestOneServePerInstance:
    def test_second_serve_leaves_the_first_servers_upload_alone(
        self, instance: TestInstance
    ) -> None:
        """A second ``serve`` exits 1 naming the first one's pid; the upload open in the first
        server meanwhile completes whole, catalogued, never marked interrupted."""
        instance.add_account("mairie-a")
        first = ServeProcess(instance)
        try:
            client = SftpClient(*first.addresses["sftp"], "mairie-a", PASSWORD)
            head, tail = os.urandom(700_000), os.urandom(300_000)
            handle = client.sftp.open("/db.bak", "wb")
            handle.write(head)
            handle.flush()
            second = second_serve(instance)
            handle.write(tail)
            handle.close()
            client.close()
        finally:
            first.kill()
        assert 1 == second.returncode, second.stderr
        assert f"already served by PID {first.proc.pid}" in second.stderr
        assert 1 == len(second.stderr.strip().splitlines())
        assert head + tail == (instance.area("mairie-a") / "db.bak").read_bytes()
        assert [] == instance.audit("upload.interrupted")
        (complete,) = instance.audit("upload.complete")
        assert hashlib.sha256(head + tail).hexdigest() == complete["sha256"]
        listed = json.loads(instance.cli("catalog", "list", "--all", "--json", check=True).stdout)
        assert [("/db.bak", "received")] == [(e["path"], e["state"]) for e in listed]

    def test_taken_port_fails_before_any_recovery(self, instance: TestInstance) -> None:
        """A port already taken fails the start (exit 1) before staging is cleared: what a
        previous run left in ``data/.staging`` is still there."""
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen(1)
            port = squatter.getsockname()[1]
            write_test_config(instance.root)
            text = instance.config_file.read_text().replace(
                '[sftp]\nlisten = "127.0.0.1:0"', f'[sftp]\nlisten = "127.0.0.1:{port}"'
            )
            instance.config_file.write_text(text)
            leftover = instance.root / "data" / ".staging" / "left-by-another-run.part"
            leftover.write_bytes(b"in flight")
            done = second_serve(instance)
        assert 1 == done.returncode, done.stderr
        assert "cannot listen" in done.stderr
        assert leftover.exists()

    def test_served_again_once_the_first_is_gone(self, instance: TestInstance) -> None:
        """The lock dies with its process: after a SIGKILL the instance can be served again."""
        first = ServeProcess(instance)
        first.kill()
        again = ServeProcess(instance)
        again.kill()
        assert "sftp" in again.addresses


class TestRecoveryAtStart:
    def test_upload_in_place_but_unrecorded_is_received_not_interrupted(
        self, instance: TestInstance
    ) -> None:
        """A server killed after the rename into place, before recording it: at the next
        start the upload is received (one entry, hashed), never interrupted."""
        instance.add_account("mairie-a")
        inst = instance.open()
        try:
            target = instance.area("mairie-a") / "db.bak"
            target.parent.mkdir(parents=True, exist_ok=True)
            entry_id = inst.catalog.begin_receiving(
                "mairie-a", "member", "/db.bak", str(target.resolve()), "sftp"
            )
        finally:
            inst.close()
        target.write_bytes(b"committed just before the kill")
        serve = ServeProcess(instance)
        try:
            listed = json.loads(
                instance.cli("catalog", "list", "--all", "--json", check=True).stdout
            )
        finally:
            serve.kill()
        assert [(entry_id, "/db.bak", "received")] == [
            (e["id"], e["path"], e["state"]) for e in listed
        ]
        assert hashlib.sha256(b"committed just before the kill").hexdigest() == listed[0]["sha256"]
