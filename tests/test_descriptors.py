"""Many short sessions leave the server as they found it: no descriptor, no thread kept.

A real ``intake serve`` process; sequential SFTP sessions (paramiko, key login, one small
upload, a listing; ``tests/sessions.py``); the ``/proc/PID/fd`` and ``/proc/PID/task`` of
the server and its worker processes are sampled every 50 sessions after a warm-up of 20,
and the leak is the least-squares slope of the samples (before the fix each session kept
2 descriptors: a slope of 2.0). ``make test`` runs 300 sessions; ``make soak`` runs the
issue's 2 000 (about ten minutes on 2 cores), where a leak of one descriptor per 500
sessions still shows.
"""

from __future__ import annotations

import os

import paramiko
import pytest

from tests.conftest import ServeProcess, TestInstance
from tests.sessions import Samples, run_sessions, session

# Per session. A leak of one descriptor per session is 1.0; the samples' noise (a thread
# still ending when one is taken) moves the slope of 300 sessions by about 0.002 per
# descriptor. One descriptor per 50 sessions fails.
MAX_DESCRIPTOR_SLOPE = 0.02
MAX_THREAD_SLOPE = 0.01
# Over the whole run, after the warm-up (what this test asserted over 1 000 sessions).
MAX_MORE_DESCRIPTORS = 4
MAX_MORE_THREADS = 2


def measure(instance: TestInstance, sessions: int) -> Samples:
    instance.add_account("mairie-a", key=True)
    key = paramiko.Ed25519Key.from_private_key_file(str(instance.keys["mairie-a"]))
    serve = ServeProcess(instance)
    try:
        address = serve.addresses["sftp"]
        samples = run_sessions(
            serve.proc.pid, lambda index: session(address, index, "mairie-a", pkey=key), sessions
        )
    finally:
        serve.kill()
    # every session's upload arrived: the loop really ran (warm-up included)
    assert len(list(instance.area("mairie-a").iterdir())) == sessions + 20
    return samples


def check_flat(samples: Samples, sessions: int) -> None:
    fds, threads = samples.descriptor_slope(), samples.thread_slope()
    assert fds < MAX_DESCRIPTOR_SLOPE, f"{fds:.4f} descriptors per session: {samples.table()}"
    assert threads < MAX_THREAD_SLOPE, f"{threads:.4f} threads per session: {samples.table()}"
    (warm_fds, warm_threads), (end_fds, end_threads) = samples.warm, samples.end
    assert end_fds - warm_fds <= MAX_MORE_DESCRIPTORS, (
        f"descriptors {warm_fds} -> {end_fds} over {sessions} sessions: {samples.table()}"
    )
    assert end_threads - warm_threads <= MAX_MORE_THREADS, (
        f"threads {warm_threads} -> {end_threads} over {sessions} sessions: {samples.table()}"
    )


class TestNoLeak:
    @pytest.mark.timeout(600)  # 320 SSH handshakes: about a minute on a loaded 2-core machine
    def test_sequential_sessions_leave_descriptors_and_threads_flat(
        self, instance: TestInstance
    ) -> None:
        """Over 300 sessions that each upload a file, the serve process's descriptors and
        threads do not grow with the sessions (before the fix: +2 descriptors each)."""
        check_flat(measure(instance, 300), 300)


@pytest.mark.soak
class TestSoak:
    @pytest.mark.timeout(3600)  # 2 000 SSH handshakes: minutes on a loaded 2-core machine
    def test_2000_sessions_leave_descriptors_and_threads_flat(self, instance: TestInstance) -> None:
        """The issue's 2 000 sessions: same slopes, and at most 4 more descriptors and 2
        more threads at the end than after the warm-up."""
        check_flat(measure(instance, 2000), 2000)


class TestTheMeasure:
    def test_a_leak_of_one_descriptor_per_session_is_a_slope_of_one(self) -> None:
        """The measure itself: sessions that each keep a descriptor (here, in this process)
        give a slope of 1.0, far above the limit."""
        kept: list[int] = []

        def leaky(index: int) -> None:
            kept.append(os.open(os.devnull, os.O_RDONLY))

        try:
            samples = run_sessions(os.getpid(), leaky, 100, warmup=5, every=25)
        finally:
            for fd in kept:
                os.close(fd)
        assert 0.95 < samples.descriptor_slope() < 1.05, samples.table()
        assert samples.end[0] - samples.warm[0] == 100
