"""Worker processes (``[server] workers``, issue 17 item 1): the real ``intake serve`` with
two worker processes, driven by real clients. Connections are spread over the workers;
what one process used to share between its threads (blocks and scores, the per-account
caps, the quota, the metrics) holds over the processes; a worker that dies is replaced
while the other serves on; a stop ends every worker's sessions cleanly.

The in-process test server serves from its own threads (``workers = 1``); every other
test that starts ``intake serve`` runs the default (one worker per core)."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko
import pytest

from tests.clients import FtpsClient, SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance, wait_for
from tests.sessions import service_pids

WORKERS = 2


def configure(
    instance: TestInstance, limits: dict[str, str] | None = None, extra: str = ""
) -> None:
    """``[server] workers = 2``, and ``limits`` replacing the test config's own values."""
    text = instance.config_file.read_text()
    for key, value in (limits or {}).items():
        if f"{key} =" in text:
            text = "\n".join(
                f"{key} = {value}" if line.startswith(f"{key} =") else line
                for line in text.splitlines()
            )
        else:
            text = text.replace("[limits]\n", f"[limits]\n{key} = {value}\n", 1)
    instance.config_file.write_text(f"{text}\n[server]\nworkers = {WORKERS}\n{extra}")


@contextmanager
def two_sessions(
    instance: TestInstance, limits: dict[str, str] | None = None, extra: str = ""
) -> Iterator[tuple[ServeProcess, SftpClient, SftpClient]]:
    """``serve`` with two workers (``configure``) and two SFTP sessions of ``mairie-a``,
    one in each worker; the service is killed at the end."""
    configure(instance, limits, extra)
    instance.add_account("mairie-a")
    process = ServeProcess(instance)
    try:
        one = SftpClient(*process.addresses["sftp"], "mairie-a", PASSWORD)
        two = SftpClient(*process.addresses["sftp"], "mairie-a", PASSWORD)
        wait_for(lambda: connections(instance) == [1, 1], timeout=20)
        yield process, one, two
    finally:
        process.kill()


@pytest.fixture
def served(instance: TestInstance) -> Iterator[ServeProcess]:
    configure(instance)
    process = ServeProcess(instance)
    try:
        yield process
    finally:
        process.kill()


def status(instance: TestInstance) -> dict[str, Any]:
    return dict(json.loads(instance.cli("status", "--json").stdout))


def workers_of(instance: TestInstance) -> list[dict[str, Any]]:
    return list(status(instance)["serve"].get("workers") or [])


def connections(instance: TestInstance) -> list[int]:
    return [w["connections"] for w in workers_of(instance)]


def staged_bytes(instance: TestInstance) -> int:
    """Bytes of the uploads arriving now (their staging files)."""
    return sum(p.stat().st_size for p in (instance.root / "data" / ".staging").iterdir())


def alive(pid: int) -> bool:
    """A running process (not gone, not a zombie nobody reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


class TestSpread:
    def test_connections_are_served_by_both_worker_processes(
        self, instance: TestInstance, served: ServeProcess
    ) -> None:
        """Four members' sessions held open: two in each worker process (neither the
        supervisor), every one uploads, ``status`` counts four open."""
        clients = []
        for n in range(4):
            instance.add_account(f"mairie-{n}")
            clients.append(SftpClient(*served.addresses["sftp"], f"mairie-{n}", PASSWORD))
        assert [2, 2] == wait_for(lambda: connections(instance) == [2, 2] and [2, 2], timeout=20)
        pids = [w["pid"] for w in workers_of(instance)]
        assert served.proc.pid not in pids and len(set(pids)) == WORKERS
        assert all(alive(pid) for pid in pids)
        for n, client in enumerate(clients):
            client.upload(f"/from-{n}.bak", b"x" * 1000)
        assert 4 == sum(status(instance)["sessions_open"].values())
        for client in clients:
            client.close()
        assert 4 == len(instance.audit("upload.complete"))
        assert [0, 0] == wait_for(lambda: connections(instance) == [0, 0] and [0, 0], timeout=20)


class TestSharedLimits:
    def test_failures_in_both_workers_add_up_to_one_block(self, instance: TestInstance) -> None:
        """``max_login_failures = 3``: three wrong passwords, each on a new connection
        (so served in turn by each worker), block the address over both protocols."""
        configure(instance, {"max_login_failures": "3"})
        instance.add_account("mairie-a")
        with_server = ServeProcess(instance)
        try:
            for _ in range(3):
                with pytest.raises(paramiko.AuthenticationException):
                    SftpClient(*with_server.addresses["sftp"], "mairie-a", "wrong password")
            wait_for(lambda: instance.audit("banned"), timeout=20)
            [ban] = instance.audit("banned")
            assert "127.0.0.1" == ban["ip"]
            with pytest.raises((OSError, EOFError, paramiko.SSHException)):
                SftpClient(*with_server.addresses["sftp"], "mairie-a", PASSWORD)
            cafile = str(instance.root / "keys" / "tls.crt")
            with pytest.raises(Exception, match="421"):
                FtpsClient(*with_server.addresses["ftps"], "mairie-a", PASSWORD, cafile=cafile)
        finally:
            with_server.kill()

    def test_the_open_files_cap_holds_over_both_workers(self, instance: TestInstance) -> None:
        """``max_account_open_files = 2``: one session in each worker; two files open in
        the first leave none to the second until one closes."""
        with two_sessions(instance, {"max_account_open_files": "2"}) as (_process, first, second):
            held = [first.sftp.open(f"/held-{n}.bak", "wb") for n in range(2)]
            with pytest.raises(OSError):
                second.sftp.open("/third.bak", "wb")
            held[0].close()
            with second.sftp.open("/third.bak", "wb") as handle:
                handle.write(b"now there is room")
            held[1].close()
            first.close()
            second.close()
        assert {"/held-0.bak", "/held-1.bak", "/third.bak"} == {
            str(r["path"]) for r in instance.audit("upload.complete")
        }

    def test_the_quota_counts_uploads_arriving_in_both_workers(
        self, instance: TestInstance
    ) -> None:
        """``account_quota = "1 MiB"``: two uploads of 600 KiB arriving at once, one in
        each worker: the second to pass the quota is refused, the first is received."""
        with two_sessions(instance, {"account_quota": '"1 MiB"'}) as (_process, one, two):
            first = one.sftp.open("/first.bak", "wb")
            second = two.sftp.open("/second.bak", "wb")
            first.write(b"1" * 600 * 1024)
            first.flush()
            with pytest.raises(OSError):
                second.write(b"2" * 600 * 1024)
                second.close()
            first.close()
            one.close()
            two.close()
        assert ["/first.bak"] == [r["path"] for r in instance.audit("upload.complete")]
        denied = [r for r in instance.audit("denied") if "quota" in str(r.get("reason"))]
        assert denied and "/second.bak" == denied[0]["path"]

    def test_one_name_is_uploaded_by_one_session_whichever_worker(
        self, instance: TestInstance, served: ServeProcess
    ) -> None:
        """Two sessions in two workers open the same name: the second is refused at once
        ("in progress"), the first is received whole."""
        instance.add_account("mairie-a")
        one = SftpClient(*served.addresses["sftp"], "mairie-a", PASSWORD)
        two = SftpClient(*served.addresses["sftp"], "mairie-a", PASSWORD)
        wait_for(lambda: connections(instance) == [1, 1], timeout=20)
        first = one.sftp.open("/same.bak", "wb")
        first.write(b"1" * 1000)
        with pytest.raises(OSError):
            two.sftp.open("/same.bak", "wb")
        first.close()
        assert b"1" * 1000 == (instance.area("mairie-a") / "same.bak").read_bytes()
        one.close()
        two.close()

    def test_metrics_sum_what_every_worker_counted(self, instance: TestInstance) -> None:
        """Two uploads served by two workers: the supervisor's /metrics says two."""
        with two_sessions(instance, extra='[metrics]\nlisten = "127.0.0.1:0"\n') as (
            process,
            one,
            two,
        ):
            one.upload("/one.bak", b"1" * 1000)
            two.upload("/two.bak", b"2" * 1000)
            host, port = process.addresses["metrics"]
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
                text = reply.read().decode()
            one.close()
            two.close()
        lines = text.splitlines()
        assert 'intake_uploads_total{protocol="sftp"} 2' in lines
        assert 'intake_upload_bytes_total{protocol="sftp"} 2000' in lines
        assert 'intake_logins_total{protocol="sftp"} 2' in lines
        assert 'intake_sessions_open{protocol="sftp"} 2' in lines


class TestWorkerLife:
    def test_a_killed_worker_is_replaced_and_the_other_serves_on(
        self, instance: TestInstance, served: ServeProcess
    ) -> None:
        """SIGKILL to one worker mid-upload: its session is cut and its upload recorded
        interrupted by the supervisor (staging emptied); the other worker's upload goes
        on; a new worker takes its place (``status`` says so) and serves new logins."""
        instance.add_account("mairie-a")
        instance.add_account("mairie-b")
        a = SftpClient(*served.addresses["sftp"], "mairie-a", PASSWORD)
        b = SftpClient(*served.addresses["sftp"], "mairie-b", PASSWORD)
        wait_for(lambda: connections(instance) == [1, 1], timeout=20)
        victim, survivor = workers_of(instance)  # a's, then b's: each in turn
        cut = a.sftp.open("/cut.bak", "wb")
        cut.write(b"c" * 100_000)
        cut.flush()
        going_on = b.sftp.open("/going-on.bak", "wb")
        going_on.write(b"g" * 100_000)
        going_on.flush()
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: not a.transport.is_active(), timeout=20)
        [record] = wait_for(lambda: instance.audit("upload.interrupted"), timeout=20)
        assert ("/cut.bak", "mairie-a") == (record["path"], record["account"])
        assert "worker process" in str(record["reason"])
        staged = list((instance.root / "data" / ".staging").iterdir())
        assert 1 == len(staged)  # b's upload, still arriving
        going_on.write(b"g" * 100_000)
        going_on.close()
        b.upload("/during.bak", b"still served")

        def replaced() -> bool:
            now = workers_of(instance)
            return (
                len(now) == WORKERS
                and now[0]["pid"] != victim["pid"]
                and now[0]["restarts"] == 1
                and now[1]["pid"] == survivor["pid"]
            )

        wait_for(replaced, timeout=30)
        again = [SftpClient(*served.addresses["sftp"], "mairie-a", PASSWORD) for _ in range(2)]
        for n, client in enumerate(again):
            client.upload(f"/after-{n}.bak", b"served again")
            client.close()
        b.close()
        assert status(instance)["healthy"]
        completed = {str(r["path"]) for r in instance.audit("upload.complete")}
        assert {"/going-on.bak", "/during.bak", "/after-0.bak", "/after-1.bak"} == completed
        listed = instance.cli("catalog", "list", "--all", "--json")
        states = {e["path"]: e["state"] for e in json.loads(listed.stdout)}
        assert "interrupted" == states["/cut.bak"]
        assert [] == list((instance.root / "data" / ".staging").iterdir())

    def test_what_a_dead_worker_held_is_given_back(self, instance: TestInstance) -> None:
        """``max_account_open_files = 1`` and a quota: a worker killed while its upload
        holds the account's one open file and a quota lease; another session can open a
        file at once, and the quota counts nothing for the dead upload."""
        with two_sessions(
            instance, {"max_account_open_files": "1", "account_quota": '"64 MiB"'}
        ) as (_process, victim_client, other):
            victim = workers_of(instance)[0]
            held = victim_client.sftp.open("/held.bak", "wb")
            held.set_pipelined(True)
            held.write(b"h" * (60 << 20))  # 60 of the 64 MiB, leased to the victim
            held.flush()
            wait_for(lambda: staged_bytes(instance) >= 60 << 20, timeout=60)
            with pytest.raises(OSError):
                other.sftp.open("/refused.bak", "wb")  # the account's one open file
            os.kill(victim["pid"], signal.SIGKILL)
            wait_for(lambda: instance.audit("upload.interrupted"), timeout=20)
            with other.sftp.open("/after.bak", "wb") as handle:
                handle.set_pipelined(True)
                handle.write(b"a" * (32 << 20))  # fits only if the 60 MiB were given back
            other.close()
        assert ["/after.bak"] == [r["path"] for r in instance.audit("upload.complete")]

    def test_sigterm_ends_every_workers_sessions_and_stops(
        self, instance: TestInstance, served: ServeProcess
    ) -> None:
        """SIGTERM with an upload in flight in each worker: both become
        ``upload.interrupted``, serve exits 0, no worker is left, the log verifies."""
        instance.add_account("mairie-a")
        clients = [SftpClient(*served.addresses["sftp"], "mairie-a", PASSWORD) for _ in range(2)]
        wait_for(lambda: connections(instance) == [1, 1], timeout=20)
        pids = [w["pid"] for w in workers_of(instance)]
        handles = [c.sftp.open(f"/in-flight-{n}.bak", "wb") for n, c in enumerate(clients)]
        for handle in handles:
            handle.write(b"f" * 100_000)
            handle.flush()
        assert 0 == served.signal(signal.SIGTERM)
        assert not any(alive(pid) for pid in pids)
        interrupted = {str(r["path"]) for r in instance.audit("upload.interrupted")}
        assert {"/in-flight-0.bak", "/in-flight-1.bak"} == interrupted
        assert [] == instance.audit("upload.complete")
        proc = instance.cli("audit", "verify")
        assert 0 == proc.returncode, proc.stdout + proc.stderr


class TestOneProcess:
    def test_workers_1_serves_from_the_serve_process_alone(self, instance: TestInstance) -> None:
        """``workers = 1``: no child process, no worker in ``status``; uploads, bans and
        the rest work as in the in-process tests."""
        instance.config_file.write_text(
            instance.config_file.read_text() + "\n[server]\nworkers = 1\n"
        )
        instance.add_account("mairie-a")
        process = ServeProcess(instance)
        try:
            client = SftpClient(*process.addresses["sftp"], "mairie-a", PASSWORD)
            client.upload("/alone.bak", b"one process")
            assert [process.proc.pid] == [
                pid for pid in service_pids(process.proc.pid) if alive(pid)
            ]
            assert "workers" not in status(instance)["serve"]
            client.close()
        finally:
            process.kill()
        assert ["/alone.bak"] == [r["path"] for r in instance.audit("upload.complete")]
