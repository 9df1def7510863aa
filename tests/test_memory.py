"""Short sessions leave the service's memory flat: RSS of the whole service within the target.

A real ``intake serve``; sequential SFTP sessions as a member's backup makes them (paramiko,
password login, a 2 KB upload, close). What is measured is the whole service: the serve
process and every process below it (walked through ``/proc/*/stat``, so worker processes
count too), as the sum of ``VmRSS`` and the sum of ``Pss`` from ``smaps_rollup``. The
worker processes are forks of the supervisor (the spawner too): they share its pages
copy-on-write, and a sum of RSS counts each shared page once per process (four times
with two workers), so the service's memory in all is the sum of PSS (each shared page
divided among the processes sharing it); the bound is checked on it, and the growth on
both sums.

Why password logins: each one is an scrypt hash with a 16 MiB work buffer. Before
``intake.adapters.memory`` every malloc arena that served a hash kept those 16 MiB: 65 MiB
at start, 149 MiB after 100 sessions. ``make test`` runs 80 sessions then 40 more;
``make soak`` runs the issue's 1 000 then 500 more.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from intake.adapters import memory
from tests.conftest import PASSWORD, ServeProcess, TestInstance, wait_for
from tests.sessions import service_pids, slope

TARGET_MIB = 150.0  # issue 17: the whole service after 1 000 short sessions
WORKERS = 2  # its default on the 2-core machine
UPLOAD = b"m" * 2048
MEMBER = "mairie-m"


# -- the measure ---------------------------------------------------------------------


def _field_kib(path: str, name: str) -> int:
    try:
        text = Path(path).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def service_memory(root: int) -> tuple[float, float]:
    """(sum of VmRSS, sum of Pss) over the service's processes, MiB."""
    pids = service_pids(root)
    rss = sum(_field_kib(f"/proc/{pid}/status", "VmRSS") for pid in pids)
    pss = sum(_field_kib(f"/proc/{pid}/smaps_rollup", "Pss") for pid in pids)
    return rss / 1024, pss / 1024


def settled_memory(root: int) -> tuple[float, float]:
    """The service's memory once two readings agree within 0.2 MiB (the last session's
    threads have ended and freed what they held; bounded)."""
    last = service_memory(root)

    def settled() -> tuple[float, float] | None:
        nonlocal last
        now = service_memory(root)
        agreed = abs(now[0] - last[0]) < 0.2
        last = now
        return now if agreed else None

    return wait_for(settled, timeout=15.0)


# -- the sessions --------------------------------------------------------------------


def short_session(address: tuple[str, int], index: int) -> None:
    """A member's backup: password login, one 2 KB upload, close."""
    transport = paramiko.Transport(address)
    try:
        transport.connect(username=MEMBER, password=PASSWORD)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        sftp.putfo(io.BytesIO(UPLOAD), f"/m{index:05d}.bak", confirm=True)
        sftp.close()
    finally:
        transport.close()


def run(instance: TestInstance, blocks: list[int]) -> list[tuple[int, float, float]]:
    """Start serve, run ``blocks[0]`` sessions, then each further block; the settled
    (sessions done, RSS, PSS) at start (0) and after each block."""
    instance.add_account(MEMBER)
    with instance.config_file.open("a") as conf:  # the 2-core server, on any machine
        conf.write(f"[server]\nworkers = {WORKERS}\n")
    serve = ServeProcess(instance)
    try:
        pid = serve.proc.pid
        address = serve.addresses["sftp"]
        samples = [(0, *settled_memory(pid))]
        done = 0
        for block in blocks:
            for _ in range(block):
                short_session(address, done)
                done += 1
            samples.append((done, *settled_memory(pid)))
    finally:
        serve.kill()
    # every session's upload arrived: the sessions really ran
    assert len(list(instance.area(MEMBER).iterdir())) == done
    return samples


def shown(samples: list[tuple[int, float, float]]) -> str:
    return "; ".join(f"{n}: RSS {rss:.1f} PSS {pss:.1f} MiB" for n, rss, pss in samples)


# -- the tests -----------------------------------------------------------------------


class TestMemory:
    @pytest.mark.timeout(300)
    def test_short_sessions_keep_no_memory(self, instance: TestInstance) -> None:
        """80 password sessions add at most 25 MiB to the service (before the fix: 80 MiB,
        five malloc arenas keeping an scrypt buffer each), 40 more at most 3 MiB, and the
        whole stays within the issue's 150 MiB (PSS in all; the growth in RSS)."""
        samples = run(instance, [80, 40])
        (_, rss0, _), (_, rss1, _), (_, rss2, _) = samples
        assert rss1 - rss0 <= 25, f"80 sessions kept memory: {shown(samples)}"
        assert rss2 - rss1 <= 3, f"not flat after 80 sessions: {shown(samples)}"
        assert max(pss for _, _, pss in samples) <= TARGET_MIB, shown(samples)


@pytest.mark.soak
class TestSoak:
    @pytest.mark.timeout(3600)  # 1 500 SSH handshakes and scrypt hashes: minutes
    def test_1000_sessions_within_150_mib_and_flat_after(self, instance: TestInstance) -> None:
        """The issue's target: after 1 000 short sessions the whole service is within
        150 MiB (RSS and PSS), and the next 500 add less than 5 MiB (sampled every 100:
        least-squares slope under 1 MiB per 100 sessions)."""
        samples = run(instance, [1000] + [100] * 5)
        after = samples[1:]
        assert max(pss for _, _, pss in after) <= TARGET_MIB, shown(samples)
        assert after[-1][1] - after[0][1] < 5, f"not flat after 1 000: {shown(samples)}"
        per_100 = 100 * slope([n for n, _, _ in after], [rss for _, rss, _ in after])
        assert per_100 < 1.0, f"{per_100:+.2f} MiB per 100 sessions: {shown(samples)}"


class TestTheMeasure:
    def test_a_child_process_counts_in_the_service(self) -> None:
        """The measure walks the tree: a child that holds 64 MiB adds about 64 MiB to this
        process's service RSS and PSS (so worker processes will count)."""
        before = service_memory(os.getpid())
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; b = bytearray(64 << 20); print(1, flush=True); sys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == "1\n"
            assert child.pid in service_pids(os.getpid())
            during = service_memory(os.getpid())
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(30)
        assert during[0] - before[0] >= 60, (before, during)
        assert during[1] - before[1] >= 60, (before, during)


class TestWithoutGlibc:
    def test_no_glibc_changes_nothing_and_says_so(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where the C library is not glibc (musl, macOS) nothing is set, never an error,
        and the answer says why."""
        monkeypatch.setattr(memory, "_glibc", lambda: None)
        bounds = memory.bound_process_memory()
        assert not bounds.applied
        assert str(bounds) == "not glibc: malloc left at its defaults"

    def test_with_glibc_the_bounds_are_set(self) -> None:
        """Here (glibc): the threshold and the arena cap are both accepted."""
        bounds = memory.bound_process_memory()
        assert bounds.applied, bounds.detail
        assert bounds.mmap_threshold == memory.MMAP_THRESHOLD
        assert bounds.arena_max == memory.arena_max() >= 2
