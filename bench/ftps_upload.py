"""Upload rate of one large file with curl over explicit FTPS: intake vs vsftpd, same run.

    .venv/bin/python bench/ftps_upload.py [--size-mib 1024] [--rounds 1] [--logins 16]

Not a test. Both servers run as child processes on loopback, with their own config in a
temporary folder, the same certificate and key, and explicit FTPS with session reuse
required on data connections:

- intake: ``intake serve`` on a fresh instance (SFTP off), one member account.
- vsftpd: ``listen=YES``, ``background=NO``, ``ssl_enable=YES``, ``require_ssl_reuse=YES``,
  anonymous login forced over TLS with ``anon_upload_enable`` into a temporary folder owned
  by the ``ftp`` user that the vsftpd package creates (no user is created here).

Each upload is checked: intake's audited sha256, and vsftpd's file hashed on disk. Then,
with ``--logins N``, a login burst: one logged-in client sends NOOPs while N clients log in
over and over; the NOOP round-trip times show whether password hashing stalls others.
"""

from __future__ import annotations

import argparse
import ftplib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PASSWORD = secrets.token_urlsafe(18)
USER = "mairie-bench"


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """Data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(  # type: ignore[attr-defined]
                conn, server_hostname=self.host, session=self.sock.session
            )
        return conn, size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_file(path: Path, size: int) -> str:
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            handle.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def curl_upload(url: str, local: Path, *extra: str) -> tuple[float, float]:
    """(seconds, MB/s as curl measured) for one upload; fails loudly."""
    proc = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--ssl-reqd",
            *extra,
            "-T",
            str(local),
            url,
            "--write-out",
            "%{time_total} %{speed_upload}",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"curl {url} failed ({proc.returncode}): {proc.stderr.strip()}")
    seconds, speed = proc.stdout.split()
    return float(seconds), float(speed) / 1e6


class Intake:
    def __init__(self, work: Path) -> None:
        self.root = work / "intake"
        self.root.mkdir()
        self.config = self.root / "intake.toml"
        self.config.write_text(
            '[sftp]\nlisten = ""\n[ftps]\nlisten = "127.0.0.1:0"\npassive_ports = "61100-61199"\n'
            "[limits]\nmax_login_failures = 1000\nmax_connections_per_ip = 100\n"
        )
        self._cli("init", str(self.root), config=False)
        self._cli("account", "add", USER, "--role", "member", "--password-stdin", stdin=PASSWORD)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "intake", "--config", str(self.config), "serve"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        match = None
        for line in self.proc.stdout:
            match = re.match(r"ftps: listening on (\S+):(\d+)", line)
            if match:
                break
        if not match:
            self.stop()
            raise SystemExit("intake serve did not start")
        self.host, self.port = match[1], int(match[2])
        self.cafile = str(self.root / "keys" / "tls.crt")

    def _cli(self, *args: str, stdin: str | None = None, config: bool = True) -> None:
        prefix = ["--config", str(self.config)] if config else []
        subprocess.run(
            [PYTHON, "-m", "intake", *prefix, *args],
            cwd=ROOT,
            input=stdin,
            text=True,
            check=True,
            capture_output=True,
        )

    def audited_sha256(self, path: str) -> str:
        proc = subprocess.run(
            [
                PYTHON,
                "-m",
                "intake",
                "--config",
                str(self.config),
                "audit",
                "show",
                "--event",
                "upload.complete",
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return str([r for r in records if r.get("path") == path][-1]["sha256"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Vsftpd:
    def __init__(self, work: Path, cert: str, key: str) -> None:
        self.dir = work / "vsftpd"
        self.anon = self.dir / "anon"
        self.upload = self.anon / "upload"
        self.upload.mkdir(parents=True)
        os.chmod(self.anon, 0o555)  # noqa: S103 (vsftpd refuses a writable anonymous root)
        # The "ftp" user comes with the vsftpd package; it owns only the upload folder.
        shutil.chown(self.upload, user="ftp", group="ftp")
        self.port = free_port()
        conf = self.dir / "vsftpd.conf"
        conf.write_text(
            "\n".join(
                [
                    "listen=YES",
                    "listen_ipv6=NO",
                    "listen_address=127.0.0.1",
                    f"listen_port={self.port}",
                    "background=NO",
                    "anonymous_enable=YES",
                    "local_enable=NO",
                    "no_anon_password=YES",
                    "write_enable=YES",
                    "anon_upload_enable=YES",
                    f"anon_root={self.anon}",
                    "ftp_username=ftp",
                    "anon_umask=022",
                    "ssl_enable=YES",
                    "allow_anon_ssl=YES",
                    "force_anon_logins_ssl=YES",
                    "force_anon_data_ssl=YES",
                    "require_ssl_reuse=YES",
                    "ssl_sslv2=NO",
                    "ssl_sslv3=NO",
                    "ssl_tlsv1=NO",
                    "ssl_ciphers=HIGH",
                    f"rsa_cert_file={cert}",
                    f"rsa_private_key_file={key}",
                    "pasv_enable=YES",
                    "pasv_min_port=61200",
                    "pasv_max_port=61299",
                    "seccomp_sandbox=NO",
                    "isolate=NO",
                    "isolate_network=NO",
                    "xferlog_enable=NO",
                    "secure_chroot_dir=/var/run/vsftpd/empty",
                    "",
                ]
            )
        )
        os.chmod(conf, 0o600)
        self.proc = subprocess.Popen(
            ["vsftpd", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise SystemExit("vsftpd did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def login_burst(intake: Intake, clients: int, seconds: float = 6.0) -> dict[str, float]:
    """NOOP round-trips of one logged-in client, before and during a burst of logins."""
    ctx = ssl.create_default_context(cafile=intake.cafile)
    probe = ReusingFTP_TLS(context=ctx, timeout=60)
    probe.connect(intake.host, intake.port)
    probe.login(USER, PASSWORD)

    def noops(duration: float) -> list[float]:
        times = []
        end = time.monotonic() + duration
        while time.monotonic() < end:
            start = time.perf_counter()
            probe.voidcmd("NOOP")
            times.append((time.perf_counter() - start) * 1000)
            time.sleep(0.01)
        return times

    quiet = noops(2.0)
    stop = threading.Event()
    logins = [0]
    lock = threading.Lock()

    def hammer() -> None:
        while not stop.is_set():
            client = ReusingFTP_TLS(context=ctx, timeout=60)
            client.connect(intake.host, intake.port)
            client.login(USER, PASSWORD)
            client.quit()
            with lock:
                logins[0] += 1

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    busy = noops(seconds)
    stop.set()
    for t in threads:
        t.join(60)
    probe.quit()

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))]

    return {
        "quiet_p50_ms": statistics.median(quiet),
        "quiet_max_ms": max(quiet),
        "burst_p50_ms": statistics.median(busy),
        "burst_p99_ms": pct(busy, 0.99),
        "burst_max_ms": max(busy),
        "logins_per_s": logins[0] / (seconds + 0.5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--logins", type=int, default=16, help="0 skips the login burst")
    args = parser.parse_args()
    for tool in ("curl", "vsftpd"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    with tempfile.TemporaryDirectory(prefix="intake-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        size = args.size_mib << 20
        local = work / "payload.bin"
        expected = make_file(local, size)
        intake = Intake(work)
        vsftpd = Vsftpd(work, intake.cafile, str(intake.root / "keys" / "tls.key"))
        results: dict[str, list[float]] = {"intake": [], "vsftpd": []}
        try:
            for n in range(args.rounds):
                name = f"bench-{n}.bin"
                seconds, _ = curl_upload(
                    f"ftp://{intake.host}:{intake.port}/{name}",
                    local,
                    "--cacert",
                    intake.cafile,
                    "--user",
                    f"{USER}:{PASSWORD}",
                )
                if intake.audited_sha256(f"/{name}") != expected:
                    raise SystemExit("intake: the uploaded file differs")
                results["intake"].append(size / seconds / 1e6)
                seconds, _ = curl_upload(
                    f"ftp://127.0.0.1:{vsftpd.port}/upload/{name}",
                    local,
                    "--insecure",
                    "--user",
                    "anonymous:",
                )
                if sha256_of(vsftpd.upload / name) != expected:
                    raise SystemExit("vsftpd: the uploaded file differs")
                results["vsftpd"].append(size / seconds / 1e6)
                print(
                    f"round {n + 1}: intake {results['intake'][-1]:.1f} MB/s,"
                    f" vsftpd {results['vsftpd'][-1]:.1f} MB/s",
                    flush=True,
                )
            print(f"file: {args.size_mib} MiB, curl --ssl-reqd, TLS session reuse required")
            for label, pick in (("best", max), ("median", statistics.median)):
                rate_i, rate_v = pick(results["intake"]), pick(results["vsftpd"])
                print(
                    f"{label} of {args.rounds}: intake FTPS {rate_i:.1f} MB/s,"
                    f" vsftpd FTPS {rate_v:.1f} MB/s, ratio intake/vsftpd {rate_i / rate_v:.2f}"
                )
            if args.logins:
                burst = login_burst(intake, args.logins)
                print(
                    f"login burst ({args.logins} clients logging in again and again,"
                    f" {burst['logins_per_s']:.1f} logins/s): NOOP round-trip of a logged-in"
                    f" client p50 {burst['quiet_p50_ms']:.1f} ms quiet ->"
                    f" p50 {burst['burst_p50_ms']:.1f} / p99 {burst['burst_p99_ms']:.1f}"
                    f" / max {burst['burst_max_ms']:.1f} ms during the burst"
                )
        finally:
            vsftpd.stop()
            intake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
