"""Chaos: uploads, downloads, sweeps and forwards while ``serve`` and ``sweep`` are SIGKILLed.

Loopback only, bounded. One fresh instance; each round starts ``intake serve`` (its own
sweeper every second), runs for a random 2-8 s with clients uploading (members and a
technician's outbox), downloading, and sweeps at a time FAR ahead (``bench/sweep_at.py``;
``intake sweep`` itself only reads the real clock) destroying and forwarding, then
SIGKILLs the server (the whole service, or the supervisor alone: its worker processes
then end their sessions by themselves, perhaps while the next serve starts) and any sweep
in flight at that random moment. The server is started
again (its recovery runs), and once its start reconciliation is done the invariants are
checked:

- every received file (``upload.complete``) is on disk, or its entry is destroyed with
  exactly one destruction certificate and one ``destroyed`` record;
- no file on disk (members, outbox, staging) lacks a live catalog entry at its path;
- no upload is both interrupted and received (audit and catalog);
- no forwarded-and-destroyed outbox file is missing at the vendor (when a vendor runs).

Forwarding needs a vendor: run as root with OpenSSH ``sshd`` installed and a vendor like
the tests' (``tests/vendor_sshd.py``) is started under ``/run``; otherwise outbox files
wait and the rest still runs.

    python bench/chaos.py [ROUNDS] [--seed N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.adapters.audit.writer import read_records  # noqa: E402
from intake.core.clock import SystemClock  # noqa: E402
from intake.core.config import load  # noqa: E402
from intake.core.model import Role  # noqa: E402
from intake.services.instance import init_instance, open_instance  # noqa: E402
from intake.services.sweeper.lock import RunLock, SweepBusy  # noqa: E402
from tests.vendor_sshd import Vendor, running_vendor, usable  # noqa: E402 - the tests' vendor

PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway loopback instance
INTAKE = [sys.executable, "-m", "intake"]
FAR = "2031-01-01T00:00:00Z"
MEMBERS = ("mairie-a", "mairie-b")
LIVE = {"received", "forwarded", "altered"}


class Serve:
    """``intake serve`` as a process: its SFTP address and its operational log."""

    def __init__(self, conf: Path, log: Path) -> None:
        self.log_path = log
        with log.open("a") as err:
            self.proc = subprocess.Popen(
                [*INTAKE, "--config", str(conf), "serve"],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,  # ``kill(whole=True)`` reaches its worker processes
            )
        assert self.proc.stdout is not None
        self.sftp = ("", 0)
        for line in self.proc.stdout:
            match = re.match(r"sftp: listening on (\S+):(\d+)", line)
            if match:
                self.sftp = (match[1], int(match[2]))
            if line.startswith("ready:"):
                break
        if not self.sftp[1]:
            raise SystemExit(f"serve did not start:\n{log.read_text()[-2000:]}")

    def wait_reconciled(self, since: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "(server start)" in self.log_path.read_text()[since:]:
                return
            time.sleep(0.2)
        raise SystemExit("the start reconciliation did not finish")

    def kill(self, whole: bool = True) -> None:
        """SIGKILL to the whole service (a crash of the machine, systemd's final kill), or
        to the supervisor alone (its worker processes then end their sessions by
        themselves, maybe while the next serve starts)."""
        if self.proc.poll() is None:
            if whole:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@contextlib.contextmanager
def vendor_server(base: Path) -> Iterator[Vendor | None]:
    """The tests' vendor (a real sshd) when this runs as root with sshd; else None."""
    if not usable():
        yield None
        return
    with running_vendor(prefix="intake-chaos-vendor-") as vendor:
        (base / "vendor_known_hosts").write_text(vendor.known_hosts_line())
        yield vendor


def make_instance(root: Path, vendor: Vendor | None) -> Path:
    conf = root / "intake.toml"
    text = (
        '[sftp]\nlisten = "127.0.0.1:0"\nlogin_timeout = 30\n[ftps]\nlisten = ""\n'
        '[limits]\nmax_login_failures = 1000\n[sweeper]\ninterval = "1 second"\n'
    )
    if vendor is not None:
        text += vendor.config_section()
    conf.write_text(text)
    init_instance(root, SystemClock())
    inst = open_instance(load(conf), SystemClock())
    try:
        for member in MEMBERS:
            inst.accounts.add(member, Role.MEMBER, PASSWORD, [])
        inst.accounts.add("tech", Role.TECHNICIAN, PASSWORD, [])
    finally:
        inst.close()
    return conf


class Workload:
    """Client threads against one server until ``stop``; counts what they did."""

    def __init__(self, address: tuple[str, int], conf: Path, rng: random.Random) -> None:
        self.address = address
        self.conf = conf
        self.rng = rng
        self.stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.sweeps: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._uploads, args=(user,), daemon=True)
            for user in (*MEMBERS, "tech")
        ]
        self.threads.append(threading.Thread(target=self._downloads, daemon=True))
        self.threads.append(threading.Thread(target=self._sweeps, daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def _session(self, user: str) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
        transport = paramiko.Transport(self.address)
        transport.connect(username=user, password=PASSWORD)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        return transport, sftp

    def _uploads(self, user: str) -> None:
        folder = "/outbox/" if user == "tech" else "/"
        while not self.stop.is_set():
            try:
                transport, sftp = self._session(user)
                try:
                    while not self.stop.is_set():
                        name = f"{folder}{user}-{time.monotonic_ns()}.bak"
                        size = self.rng.choice((10, 5_000, 300_000, 2_000_000))
                        sftp.putfo(io.BytesIO(os.urandom(size)), name, confirm=False)
                        self._count("uploads")
                finally:
                    transport.close()
            except Exception:  # the server was killed under us
                self._count("client errors")
                time.sleep(0.1)

    def _downloads(self) -> None:
        while not self.stop.is_set():
            try:
                transport, sftp = self._session(MEMBERS[0])
                try:
                    while not self.stop.is_set():
                        names = [n for n in sftp.listdir("/") if n.endswith(".bak")]
                        if names:
                            with contextlib.suppress(OSError):
                                sftp.getfo("/" + self.rng.choice(names), io.BytesIO())
                                self._count("downloads")
                        time.sleep(0.05)
                finally:
                    transport.close()
            except Exception:
                self._count("client errors")
                time.sleep(0.1)

    def _sweeps(self) -> None:
        while not self.stop.is_set():
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "sweep_at.py"), str(self.conf), FAR],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            with self._lock:
                self.sweeps.append(proc)
            proc.wait()
            self._count("sweeps run")
            time.sleep(self.rng.uniform(0, 0.5))

    def kill_sweeps(self) -> int:
        killed = 0
        with self._lock:
            for proc in self.sweeps:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    killed += 1
        return killed

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        for proc in self.sweeps:
            proc.wait(30)


def check(root: Path, conf: Path, vendor: Vendor | None) -> tuple[list[str], Counter[str]]:
    """The invariants; returns what broke (nothing when all hold), and entries by state."""
    problems: list[str] = []
    cli = [*INTAKE, "--config", str(conf)]
    listed = json.loads(
        subprocess.run(
            [*cli, "catalog", "list", "--all", "--json"], capture_output=True, check=True
        ).stdout
    )
    records = list(read_records(root / "log"))
    by_path: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in listed:
        by_path.setdefault((entry["account"], entry["path"]), []).append(entry)
    destroyed_records = Counter(r.get("entry") for r in records if r["event"] == "destroyed")
    certificates = Counter(
        d.get("entry")
        for d in json.loads(
            subprocess.run(
                [*cli, "audit", "certificates", "--json"], capture_output=True, check=True
            ).stdout
        )
    )

    def disk(account: str, path: str) -> Path:
        if path.startswith("/outbox/"):
            return root / "data" / "outbox" / account / path[len("/outbox/") :]
        return root / "data" / "members" / account / path.lstrip("/")

    completed = {(r["account"], r["path"]) for r in records if r["event"] == "upload.complete"}
    interrupted = {(r["account"], r["path"]) for r in records if r["event"] == "upload.interrupted"}
    for key in sorted(completed & interrupted):
        problems.append(f"both received and interrupted: {key}")
    for key in sorted(completed):
        entries = [e for e in by_path.get(key, []) if e["state"] != "interrupted"]
        if not entries:
            problems.append(f"received but not catalogued: {key}")
            continue
        entry = entries[-1]
        on_disk = disk(*key).exists()
        if entry["state"] in LIVE and not on_disk:
            problems.append(f"received, {entry['state']}, but not on disk: {key}")
        elif entry["state"] == "destroyed":
            if on_disk:
                problems.append(f"destroyed but still on disk: {key}")
            if destroyed_records[entry["id"]] != 1 or certificates[entry["id"]] != 1:
                problems.append(
                    f"destroyed with {destroyed_records[entry['id']]} record(s) and "
                    f"{certificates[entry['id']]} certificate(s): {key}"
                )
        elif entry["state"] not in LIVE:
            problems.append(f"received but {entry['state']}: {key}")
    for key, entries in by_path.items():
        if any(e["state"] == "interrupted" for e in entries) and key in completed:
            problems.append(f"an interrupted entry for a received upload: {key}")
    live_paths = {disk(e["account"], e["path"]).resolve() for e in listed if e["state"] in LIVE}
    for area in ("members", "outbox"):
        for path in (root / "data" / area).rglob("*"):
            if path.is_file() and path.resolve() not in live_paths:
                problems.append(f"on disk without a live entry: {path.relative_to(root)}")
    leftovers = list((root / "data" / ".staging").iterdir())
    if leftovers:
        problems.append(f"{len(leftovers)} file(s) left in staging after the restart")
    if vendor is not None:
        held = {p.name for p in vendor.upload.rglob("*") if p.is_file()}
        for entry in listed:
            if entry["path"].startswith("/outbox/") and entry["forwarded_at"]:
                remote = Path(entry.get("remote_path") or entry["path"]).name
                if remote not in held and Path(entry["path"]).name not in held:
                    problems.append(f"forwarded but not at the vendor: {entry['path']}")
    return problems, Counter(e["state"] for e in listed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"chaos: {args.rounds} round(s), seed {seed}")
    failures = 0
    totals: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="intake-chaos-") as tmp:
        root = Path(tmp) / "inst"
        root.mkdir()
        with vendor_server(root) as vendor:
            conf = make_instance(root, vendor)
            log = root / "serve.log"
            print("forwarding:", "to a real sshd" if vendor else "off (no root or no sshd)")
            for number in range(1, args.rounds + 1):
                serve = Serve(conf, log)
                work = Workload(serve.sftp, conf, rng)
                work.start()
                alive = rng.uniform(2.0, 8.0)
                time.sleep(alive)
                whole = rng.random() < 0.5
                serve.kill(whole)
                killed_sweeps = work.kill_sweeps()
                work.join()
                mark = len(log.read_text())
                again = Serve(conf, log)
                again.wait_reconciled(mark)
                time.sleep(1.5)  # files that appeared without a close settle (1 s)
                lock = RunLock(root / "state")  # the restarted server's sweeper waits
                while True:
                    try:
                        lock.__enter__()
                        break
                    except SweepBusy:
                        time.sleep(0.1)
                try:
                    problems, states = check(root, conf, vendor)
                finally:
                    lock.__exit__()
                again.kill()  # the next round starts from a kill too
                totals.update(work.counts)
                totals["sweeps killed"] += killed_sweeps
                state = "ok" if not problems else f"{len(problems)} PROBLEM(S)"
                print(
                    f"round {number}: serve {'and its workers ' if whole else ''}killed after"
                    f" {alive:.1f} s, "
                    f"{killed_sweeps} sweep(s) killed, {dict(work.counts)}; "
                    f"catalog {dict(states)}: {state}"
                )
                for problem in problems[:10]:
                    print("   ", problem)
                failures += bool(problems)
    print(
        f"{args.rounds - failures}/{args.rounds} round(s) with every invariant holding; "
        f"totals {dict(totals)}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
