"""Issue 17's targets table, measured side by side in one run (``make bench``). Not a test.

    .venv/bin/python bench/targets.py [--rounds 3] [--quick] [--size-mib 1024]
                                      [--only sftp50,ftps50,...] [--out FILE]

intake, OpenSSH ``sshd`` (internal-sftp) and ``vsftpd`` (explicit FTPS, ``require_ssl_reuse``)
run side by side on loopback, each with its own config (``bench/sidebyside.py``); every row
is measured ``--rounds`` times (the two servers of a row in turns, the first one changing
each round; the disk synced before each timed part), then printed as median (min-max) with
the ratio of each round, the issue's target and whether the median meets it; the same
goes to ``bench/out/targets.json``. Rows (``--only`` picks some):

- ``sftp50``: 50 OpenSSH ``sftp -b`` uploads of 20 MiB started at once, wall seconds, intake
  vs sshd (the same client, key and cipher: ``--cipher``, aes128-gcm by default, since
  OpenSSH's client picks chacha20-poly1305 with sshd, which intake lacks, and aes128-ctr
  with intake); the servers' CPU seconds beside.
- ``ftps50``: 50 curl uploads of 20 MiB started at once (explicit FTPS, TLS session reuse),
  wall seconds, intake (member login: a password) vs vsftpd (anonymous over TLS).
- ``sftp1g``: one ``sftp -b`` upload of ``--size-mib`` MiB, MB/s, intake vs sshd; and from
  the same uploads ``cpu_gib``: the server's CPU seconds per GiB received.
- ``login``: paramiko password logins (connect to an open SFTP session; the client's
  socket has ``TCP_NODELAY``, as real clients' do), one after another, while 50 SFTP
  uploads run, against the same logins idle; sshd's own ratio (key logins during its
  own 50 uploads) is in the note, for context.
- ``rss``: a fresh intake serves ``--sessions`` short sessions one after another (login
  with a password, a 64-byte upload, a listing; SFTP and FTPS in turns), then the sum of
  its processes' PSS (``sidebyside.pss_mib``: worker processes share pages with the
  supervisor; the sum of their RSS is in the note), and 3 more blocks of a tenth as many:
  met when every sample is at most 150 MiB and flat, less than 1 MiB more per 100
  sessions (least-squares slope over the samples from ``--sessions`` on).
- ``receipts``: ``bench/receipts_stat.py`` (``--entries`` entries in the account): STAT/s of
  a receipt against a normal STAT.
- ``audit``: 50 paramiko clients log in at once (key: no password hash), ``login.ok``
  records over the wall time of the burst; and, for the log alone, ``audit_list``: 50
  logged-in sessions listing an empty folder for 3 s, ``list`` records per second.

A full run takes about 5 minutes on 2 cores; ``--quick`` (a smoke run, under 2 minutes):
4 MiB uploads, a 64 MiB large file, 200 sessions, 2 000 entries. Needs root,
openssh-server, vsftpd, curl. Nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import paramiko

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ftps_upload import Vsftpd, curl_upload  # noqa: E402
from bench.sftp_upload import make_file, start_sshd  # noqa: E402
from bench.sidebyside import (  # noqa: E402
    MEMBER,
    SSHD_EXTRA,
    Intake,
    at_once,
    cpu_seconds,
    login,
    pss_mib,
    rss_mib,
    settled_cpu,
    settled_rss,
    sftp_put,
)
from intake.core.clock import parse_iso  # noqa: E402
from tests.clients import FtpsClient  # noqa: E402
from tests.conftest import PASSWORD  # noqa: E402
from tests.sessions import session, slope  # noqa: E402

ROWS = ("sftp50", "ftps50", "sftp1g", "login", "rss", "receipts", "audit")
GIB = 1 << 30


@dataclass
class Row:
    """One line of the table: per-round values of intake and its anchor, and the ratio of
    each round; ``met`` compares the median ratio (or value) with ``limit``."""

    key: str
    measure: str
    unit: str
    target: str
    anchor_name: str = ""
    intake: list[float] = field(default_factory=list)
    anchor: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    limit: float | None = None
    at_most: bool = True  # the ratio (or the value, without an anchor) must be <= limit
    met: bool | None = None
    note: str = ""

    def judge(self) -> None:
        if self.limit is None or self.met is not None:
            return
        values = self.ratio or self.intake
        if values:
            median = statistics.median(values)
            self.met = median <= self.limit if self.at_most else median >= self.limit


@dataclass
class Server:
    """A server measured by its process tree; ``sftp`` is (port, user, remote folder) and
    ``ftps`` (URL of the upload folder, curl's login and trust arguments)."""

    name: str
    pid: int
    children: int
    sftp: tuple[int, str, str] | None = None
    ftps: tuple[str, tuple[str, ...]] | None = None
    clear: Callable[[], None] = lambda: None

    def cost(self, work: Callable[[], float]) -> tuple[float, float]:
        """(what ``work`` returns, the CPU seconds the server used for it)."""
        os.sync()  # the previous part's writes are not this one's to flush
        before = cpu_seconds(self.pid)
        result = work()
        return result, settled_cpu(self.pid, self.children) - before


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.cipher = None if args.cipher == "default" else args.cipher
        self.each = work / "each.bak"
        make_file(self.each, args.each_mib)
        with ExitStack() as started:  # what started is stopped if the rest fails
            self.intake = Intake(work / "intake")
            started.callback(self.intake.stop)
            self.key = self.intake.key
            sshd, sshd_port = start_sshd(work, self.key.with_suffix(".pub"), SSHD_EXTRA)
            started.callback(lambda: (sshd.terminate(), sshd.wait(30)))
            self.vsftpd = Vsftpd(work, self.intake.cafile, self.intake.tls_key)
            started.callback(self.vsftpd.stop)
            self.running = started.pop_all()
        dest = work / "sshd-dest"
        dest.mkdir()
        host, ftps_port = self.intake.ftps
        self.servers = {
            "intake": Server(
                "intake",
                self.intake.pid,
                self.intake.children,
                sftp=(self.intake.sftp[1], MEMBER, ""),
                ftps=(
                    f"ftp://{host}:{ftps_port}",
                    ("--cacert", self.intake.cafile, "--user", f"{MEMBER}:{PASSWORD}"),
                ),
            ),
            "sshd": Server(
                "sshd", sshd.pid, 0, sftp=(sshd_port, "root", str(dest)), clear=lambda: empty(dest)
            ),
            "vsftpd": Server(
                "vsftpd",
                self.vsftpd.proc.pid,
                0,
                ftps=(
                    f"ftp://127.0.0.1:{self.vsftpd.port}/upload",
                    ("--insecure", "--user", "anonymous:"),
                ),
                clear=lambda: empty(self.vsftpd.upload),
            ),
        }

    def stop(self) -> None:
        """Every server stopped (the last started first), even if one fails to."""
        self.running.close()

    def log(self, text: str) -> None:
        print(f"  {text}", flush=True)

    # -- the rows ----------------------------------------------------------------------

    def pair(self, round_: int, anchor: str) -> list[Server]:
        pair = [self.servers["intake"], self.servers[anchor]]
        return pair if round_ % 2 == 0 else pair[::-1]

    def sftp_put(self, server: Server, local: Path, name: str, client: int = 0) -> float:
        assert server.sftp is not None
        port, user, folder = server.sftp
        scratch = self.work / "clients" / str(client)
        return sftp_put(port, user, self.key, local, f"{folder}/{name}", self.cipher, scratch)

    def ftps_put(self, server: Server, local: Path, name: str) -> float:
        assert server.ftps is not None
        url, extra = server.ftps
        return curl_upload(f"{url}/{name}", local, *extra)[0]

    def concurrent(self, rows: dict[str, Row], protocol: str, anchor: str) -> None:
        wall, cpu = rows[f"{protocol}50"], rows[f"{protocol}50_cpu"]
        n = self.args.concurrent
        for r in range(self.args.rounds):
            got: dict[str, tuple[float, float]] = {}
            for server in self.pair(r, anchor):

                def batch(server: Server = server, r: int = r) -> float:
                    if protocol == "sftp":
                        return at_once(
                            n, lambda i: self.sftp_put(server, self.each, f"c{r}-{i:02}.bak", i)
                        )
                    return at_once(
                        n, lambda i: self.ftps_put(server, self.each, f"f{r}-{i:02}.bak")
                    )

                got[server.name] = server.cost(batch)
                server.clear()
            for row, index in ((wall, 0), (cpu, 1)):
                row.intake.append(got["intake"][index])
                row.anchor.append(got[anchor][index])
                row.ratio.append(got["intake"][index] / got[anchor][index])
            self.log(
                f"{protocol} x{n} round {r + 1}: intake {got['intake'][0]:.1f} s"
                f" ({got['intake'][1]:.1f} CPU s), {anchor} {got[anchor][0]:.1f} s"
                f" ({got[anchor][1]:.1f} CPU s)"
            )

    def large(self, rows: dict[str, Row]) -> None:
        big = self.work / "large.bak"
        make_file(big, self.args.size_mib)
        size = self.args.size_mib << 20
        rate, per_gib = rows["sftp1g"], rows["cpu_gib"]
        for r in range(self.args.rounds):
            got: dict[str, tuple[float, float]] = {}
            for server in self.pair(r, "sshd"):
                got[server.name] = server.cost(
                    lambda server=server, r=r: self.sftp_put(server, big, f"large{r}.bak")
                )
                server.clear()
            mbs = {name: size / seconds / 1e6 for name, (seconds, _) in got.items()}
            cpu = {name: spent * GIB / size for name, (_, spent) in got.items()}
            rate.intake.append(mbs["intake"])
            rate.anchor.append(mbs["sshd"])
            rate.ratio.append(mbs["intake"] / mbs["sshd"])
            per_gib.intake.append(cpu["intake"])
            per_gib.anchor.append(cpu["sshd"])
            per_gib.ratio.append(cpu["intake"] / cpu["sshd"])
            self.log(
                f"sftp {self.args.size_mib} MiB round {r + 1}: intake {mbs['intake']:.0f} MB/s"
                f" ({cpu['intake']:.2f} CPU s/GiB), sshd {mbs['sshd']:.0f} MB/s"
                f" ({cpu['sshd']:.2f} CPU s/GiB)"
            )
        big.unlink()

    def login_latency(self, row: Row) -> None:
        intake = self.servers["intake"]
        address = self.intake.sftp
        login(address, MEMBER, PASSWORD)  # warm-up
        sshd_ratios: list[float] = []
        for r in range(self.args.rounds):
            os.sync()
            idle = [login(address, MEMBER, PASSWORD) for _ in range(self.args.probes)]
            with ThreadPoolExecutor(1) as pool:
                running = pool.submit(
                    at_once,
                    self.args.concurrent,
                    lambda i, r=r: self.sftp_put(intake, self.each, f"l{r}-{i:02}.bak", i),
                )
                wait([running], timeout=1.0)  # the uploads under way (or over: no sample)
                busy = []
                while not running.done():
                    took = login(address, MEMBER, PASSWORD)
                    if not running.done():
                        busy.append(took)
                running.result()  # a failed upload stops the bench
            if not busy:
                raise SystemExit("login: the uploads ended before a login could be timed")
            row.intake.append(statistics.median(busy) * 1000)
            row.anchor.append(statistics.median(idle) * 1000)
            row.ratio.append(row.intake[-1] / row.anchor[-1])
            self.log(
                f"login round {r + 1}: {row.intake[-1]:.0f} ms during the uploads"
                f" ({len(busy)} logins), {row.anchor[-1]:.0f} ms idle"
            )
            loaded, quiet = self.sshd_login_latency(r)
            sshd_ratios.append(loaded / quiet)
            self.log(f"  sshd, the same: {loaded:.0f} ms during its uploads, {quiet:.0f} ms idle")
        row.note = (
            "paramiko clients with TCP_NODELAY (as OpenSSH's, PuTTY's and Go's); intake by"
            " password (remembered after the first), sshd by key; sshd's own ratio under its"
            f" 50 uploads: {spread(sshd_ratios)}"
        )

    def sshd_login_latency(self, r: int) -> tuple[float, float]:
        """OpenSSH's login latency, idle and during its own uploads (ms): the row's context."""
        sshd = self.servers["sshd"]
        assert sshd.sftp is not None
        port, user, _ = sshd.sftp
        pkey = paramiko.Ed25519Key.from_private_key_file(str(self.key))
        address = ("127.0.0.1", port)
        os.sync()
        idle = [login(address, user, pkey=pkey) for _ in range(self.args.probes)]
        busy: list[float] = []
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(
                at_once,
                self.args.concurrent,
                lambda i: self.sftp_put(sshd, self.each, f"l{r}-{i:02}.bak", i),
            )
            wait([running], timeout=1.0)
            while not running.done():
                took = login(address, user, pkey=pkey)
                if not running.done():
                    busy.append(took)
            running.result()
        if not busy:
            return float("nan"), float("nan")
        return statistics.median(busy) * 1000, statistics.median(idle) * 1000

    def audit(self, rows: dict[str, Row]) -> None:
        n = self.args.concurrent
        pkey = paramiko.Ed25519Key.from_private_key_file(str(self.key))
        spans = []
        for r in range(self.args.rounds):
            os.sync()
            before = len(self.intake.audit("login.ok"))
            wall = at_once(n, lambda i: login(self.intake.sftp, MEMBER, pkey=pkey))
            new = self.intake.audit("login.ok")[before:]
            rows["audit"].intake.append(len(new) / wall)
            first, last = (parse_iso(str(record["ts"])) for record in (new[0], new[-1]))
            spans.append((len(new) - 1) / max((last - first).total_seconds(), 1e-6))
            self.log(
                f"audit round {r + 1}: {len(new)} login.ok in {wall:.2f} s"
                f" (first to last record {(last - first).total_seconds():.2f} s)"
            )
        rows["audit"].note = (
            f"by the records' own times (first to last of a burst): {spread(spans)} records/s;"
            " the wall includes each client's SSH handshake and key check"
        )
        clients = []
        try:
            for _ in range(n):
                transport = paramiko.Transport(self.intake.sftp)
                transport.connect(username=MEMBER, pkey=pkey)
                sftp = paramiko.SFTPClient.from_transport(transport)
                assert sftp is not None
                clients.append((transport, sftp))
            clients[0][1].mkdir("/empty")
            for r in range(self.args.rounds):
                os.sync()
                before = len(self.intake.audit("list"))

                def lists(i: int) -> int:
                    end = time.monotonic() + self.args.list_seconds
                    count = 0
                    while time.monotonic() < end:
                        clients[i][1].listdir("/empty")
                        count += 1
                    return count

                wall = at_once(n, lists)
                records = len(self.intake.audit("list")) - before
                rows["audit_list"].intake.append(records / wall)
                self.log(f"audit (listings) round {r + 1}: {records} list in {wall:.2f} s")
        finally:
            for transport, sftp in clients:
                sftp.close()
                transport.close()

    def receipts(self, row: Row) -> None:
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "receipts_stat.py"),
                "--json",
                "--entries",
                str(self.args.entries),
                "--rounds",
                str(self.args.rounds),
                "--seconds",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"bench/receipts_stat.py failed: {proc.stderr.strip()[-2000:]}")
        result = json.loads(proc.stdout)
        normal = result["rounds"]["normal_stat_per_s"]
        receipt = result["rounds"]["receipt_stat_per_s"]
        row.intake.extend(receipt)
        row.anchor.extend(normal)
        row.ratio.extend(n / r for n, r in zip(normal, receipt, strict=True))
        row.note = f"{self.args.entries} entries catalogued in {result['fill_seconds']} s"
        self.log(f"receipts: {row.note}; {receipt} receipt STAT/s vs {normal} normal")

    def rss(self, row: Row) -> None:
        server = Intake(self.work / "rss-intake", passive=(61300, 61399))
        try:
            pid = server.pid
            sftp, ftps = server.sftp, server.ftps
            start, start_rss = pss_mib(pid), rss_mib(pid)
            rss_sums: list[float] = []

            def one(index: int) -> None:
                if index % 2 == 0:
                    session(sftp, index, MEMBER, password=PASSWORD)
                    return
                client = FtpsClient(*ftps, MEMBER, PASSWORD, cafile=server.cafile)
                try:
                    client.upload(f"/t{index:05d}.bak", b"t" * 64)
                    client.listdir("/")
                finally:
                    client.close()

            done, block = 0, max(1, self.args.sessions // 10)
            samples: list[tuple[int, float]] = []
            for upto in [self.args.sessions + block * k for k in range(4)]:
                while done < upto:
                    one(done)
                    done += 1
                settled_rss(pid)
                samples.append((done, pss_mib(pid)))
                rss_sums.append(rss_mib(pid))
                self.log(
                    f"rss: {done} sessions, PSS {samples[-1][1]:.1f} MiB"
                    f" (sum of RSS {rss_sums[-1]:.1f} MiB)"
                )
        finally:
            server.stop()
        per_100 = slope([n for n, _ in samples], [m for _, m in samples]) * 100  # type: ignore[list-item]
        row.intake.extend(m for _, m in samples)
        row.met = max(row.intake) <= 150 and per_100 < 1.0
        row.note = (
            f"PSS of serve and its worker processes (shared pages divided among them); at"
            f" start {start:.1f} MiB; after {samples[0][0]} sessions {samples[0][1]:.1f} MiB;"
            f" then {per_100:+.2f} MiB per 100 sessions up to {samples[-1][0]}; the sum of"
            f" their RSS (shared pages counted in each) {start_rss:.1f} -> {rss_sums[0]:.1f}"
            f" -> {rss_sums[-1]:.1f} MiB"
        )


def empty(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


def make_rows(args: argparse.Namespace) -> dict[str, Row]:
    """The issue's rows in its order (the info rows under the one they explain)."""
    n = args.concurrent
    uploads = f"{n} concurrent {args.each_mib} MiB"
    cpu = "  server CPU seconds for those uploads"
    specs: list[tuple[str, str, str, str, str, float | None, bool]] = [
        # key, measure, unit, target, anchor, limit, the ratio (or value) at most the limit
        ("sftp50", f"{uploads} SFTP uploads, wall", "s", "<= 1.3x sshd", "sshd", 1.3, True),
        ("sftp50_cpu", cpu, "s", "(info)", "sshd", None, True),
        ("ftps50", f"{uploads} FTPS uploads, wall", "s", "<= 1.3x vsftpd", "vsftpd", 1.3, True),
        ("ftps50_cpu", cpu, "s", "(info)", "vsftpd", None, True),
        ("sftp1g", f"SFTP upload, {args.size_mib} MiB", "MB/s", ">= 0.9x sshd", "sshd", 0.9, False),
        (
            "cpu_gib",
            "server CPU seconds per GiB received, SFTP",
            "s",
            "<= 1.2x sshd",
            "sshd",
            1.2,
            True,
        ),
        ("login", f"login latency while {n} uploads run", "ms", "<= 2x idle", "idle", 2.0, True),
        (
            "rss",
            f"RSS of the whole service after {args.sessions} short sessions",
            "MiB",
            "<= 150 MiB, flat after",
            "",
            None,
            True,
        ),
        (
            "receipts",
            f"/.receipts/ STAT with {args.entries} entries",
            "STAT/s",
            "within 2x a normal STAT",
            "normal STAT",
            2.0,
            True,
        ),
        (
            "audit",
            f"audit records/s, {n} sessions logging in at once",
            "/s",
            ">= 1 000",
            "",
            1000,
            False,
        ),
        (
            "audit_list",
            f"  audit records/s, {n} logged-in sessions listing",
            "/s",
            "(info)",
            "",
            None,
            True,
        ),
    ]
    return {
        key: Row(key, measure, unit, target, anchor, limit=limit, at_most=at_most)
        for key, measure, unit, target, anchor, limit, at_most in specs
    }


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    median = number(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({number(min(values))}-{number(max(values))})"


def table(rows: list[Row]) -> str:
    head = ("measure", "unit", "intake", "anchor", "ratio", "target", "met")
    lines = [head]
    for row in rows:
        anchor = f"{row.anchor_name} {spread(row.anchor)}" if row.anchor else row.anchor_name
        met = {None: "-", True: "yes", False: "NO"}[row.met]
        lines.append(
            (row.measure, row.unit, spread(row.intake), anchor, spread(row.ratio), row.target, met)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    text.insert(1, "  ".join("-" * width for width in widths))
    notes = [f"  {row.key}: {row.note}" for row in rows if row.note]
    return "\n".join(text + (["notes:", *notes] if notes else []))


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (
            (proc.stdout + proc.stderr).strip().splitlines()[0] if proc.stdout + proc.stderr else ""
        )

    return {
        "intake": first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        "sshd": first_line(["ssh", "-V"]),
        "vsftpd": first_line(["sh", "-c", "vsftpd -v 0>&1"]),  # it writes to its stdin
        "curl": first_line(["curl", "--version"]),
        "python": platform.python_version(),
        "paramiko": paramiko.__version__,
        "kernel": platform.release(),
        "cores": str(os.cpu_count()),
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--size-mib", type=int, help="the large SFTP upload (default 1024)")
    parser.add_argument("--each-mib", type=int, help="each concurrent upload (default 20)")
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--sessions", type=int, help="short sessions before RSS (default 1000)")
    parser.add_argument("--entries", type=int, help="catalog entries for receipts (10000)")
    parser.add_argument("--probes", type=int, default=10, help="idle logins timed per round")
    parser.add_argument("--list-seconds", type=float, default=3.0)
    parser.add_argument(
        "--cipher",
        default="aes128-gcm@openssh.com",
        help="the SFTP client's cipher for both servers ('default': its own)",
    )
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows among {','.join(ROWS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "targets.json")
    args = parser.parse_args()
    quick = {"size_mib": 64, "each_mib": 4, "sessions": 200, "entries": 2000}
    full = {"size_mib": 1024, "each_mib": 20, "sessions": 1000, "entries": 10_000}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.only = [row.strip() for row in args.only.split(",") if row.strip()]
    unknown = set(args.only) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    bounds = (
        (1 <= args.rounds <= 20, "--rounds 1..20"),
        (1 <= args.size_mib <= 8192, "--size-mib 1..8192"),
        (1 <= args.each_mib <= 1024, "--each-mib 1..1024"),
        (1 <= args.concurrent <= 100, "--concurrent 1..100"),
        (10 <= args.sessions <= 20_000, "--sessions 10..20000"),
        (1 <= args.entries <= 200_000, "--entries 1..200000"),
        (1 <= args.probes <= 100, "--probes 1..100"),
        (0 < args.list_seconds <= 30, "--list-seconds 0..30"),
    )
    for ok, text in bounds:
        if not ok:
            parser.error(text)
    return args


def main() -> int:
    args = parse()
    if os.geteuid() != 0:
        raise SystemExit("bench/targets.py needs root (sshd and vsftpd run with their own config)")
    for tool in ("sftp", "curl", "vsftpd", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    rows = make_rows(args)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="intake-targets-", dir="/var/tmp"))
    try:
        bench = Bench(args, work)
        try:
            steps: dict[str, Callable[[], None]] = {
                "sftp50": lambda: bench.concurrent(rows, "sftp", "sshd"),
                "ftps50": lambda: bench.concurrent(rows, "ftps", "vsftpd"),
                "sftp1g": lambda: bench.large(rows),
                "login": lambda: bench.login_latency(rows["login"]),
                "rss": lambda: bench.rss(rows["rss"]),
                "receipts": lambda: bench.receipts(rows["receipts"]),
                "audit": lambda: bench.audit(rows),
            }
            for key in ROWS:
                if key in args.only:
                    print(f"{key} ({time.monotonic() - started:.0f} s)", flush=True)
                    steps[key]()
        finally:
            bench.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    measured = [row for row in rows.values() if row.intake]
    for row in measured:
        row.judge()
    seconds = time.monotonic() - started
    print(
        f"\nissue 17 targets, {args.rounds} rounds, {seconds:.0f} s "
        f"(SFTP cipher: {args.cipher}; loopback, {os.cpu_count()} cores)\n"
    )
    print(table(measured))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(sys.argv),
        "seconds": round(seconds, 1),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": versions(),
        "rows": [
            {
                **asdict(row),
                "intake_median": statistics.median(row.intake),
                "anchor_median": statistics.median(row.anchor) if row.anchor else None,
                "ratio_median": statistics.median(row.ratio) if row.ratio else None,
            }
            for row in measured
        ],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
