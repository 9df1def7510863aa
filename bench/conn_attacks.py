"""Pre-login attacks on a running ``intake serve``: threads, descriptors, RSS, CPU, log lines.

    .venv/bin/python bench/conn_attacks.py [slots|banner|kex|refused|spread|all] [--src DIR]

Not a test. Each attack starts a fresh instance and a real ``intake serve`` process (the
intake found at ``--src``, default this checkout, so an older tree can be measured the same
way), attacks it on loopback only, samples ``/proc/PID`` every 0.1 s and prints one JSON
line: peak threads, peak descriptors, peak RSS, CPU seconds, operational log lines and
bytes, tracebacks, audit records, and what a real member saw meanwhile.

Source addresses are other loopback addresses (127.0.X.Y: all of 127/8 is loopback on
Linux), so per-address and per-network rules see distinct clients. The floods are the
tests' own (tests/attacks.py, used by tests/test_preauth_flood.py).

- slots:   200 connections that never log in (20 from each of 10 addresses in 10 /24s),
           held open; a member then logs in from 127.0.0.1 and uploads.
- banner:  connections that send only an SSH banner, reopened for 20 s from one address:
           audit records and bans they cause.
- kex:     300 connections sending a KEXINIT with no usable algorithm.
- refused: an address banned first (10 wrong passwords), then 5 000 connections from it.
- spread:  40 addresses in 40 /24s guess one account's password once each, then 40 more
           from one /24: the records (``banned``, ``account.attacked``), and the member's
           own login afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.attacks import bad_kexinit, connect_from, hold_unauthenticated  # noqa: E402

PASSWORD = "correct horse battery staple"  # noqa: S105 (a test account)


class Server:
    def __init__(self, src: Path, root: Path, limits: str = "") -> None:
        self.src = src
        self.root = root
        env = dict(os.environ, PYTHONPATH=str(src))
        self.env = env
        self.cli("init", str(root))
        (root / "intake.toml").write_text(
            '[sftp]\nlisten = "127.0.0.1:0"\n[ftps]\nlisten = "127.0.0.1:0"\n'
            'passive_ports = "61000-61099"\n[limits]\n' + limits
        )
        self.cli(
            "--config",
            str(root / "intake.toml"),
            "account",
            "add",
            "mairie-a",
            "--role",
            "member",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        self.log_path = root / "serve.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intake", "--config", str(root / "intake.toml"), "serve"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
                cwd=src,
            )
        self.ports: dict[str, int] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.match(r"(\w+): listening on (\S+):(\d+)", line)
            if found:
                self.ports[found[1]] = int(found[3])
            if line.startswith("ready:"):
                break
        self.samples: list[tuple[int, int, int]] = []
        self._stop = threading.Event()
        self.cpu0 = self.cpu()
        threading.Thread(target=self._sample, daemon=True).start()

    def cli(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run(
            [sys.executable, "-m", "intake", *args],
            input=stdin,
            text=True,
            capture_output=True,
            check=True,
            env=self.env,
            cwd=self.src,
        )

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
                threads = int(re.search(r"Threads:\s+(\d+)", status)[1])  # type: ignore[index]
                rss = int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]
                fds = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
                self.samples.append((threads, fds, rss))
            except (OSError, TypeError):
                pass
            time.sleep(0.1)

    def audit(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted((self.root / "log").glob("audit-*.jsonl")):
            records += [json.loads(line) for line in path.read_text().splitlines() if line]
        return records

    def finish(self) -> dict[str, Any]:
        cpu = self.cpu() - self.cpu0
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(30)
        log = self.log_path.read_text(errors="replace")
        audit = self.audit()
        counts: dict[str, int] = {}
        for record in audit:
            counts[record["event"]] = counts.get(record["event"], 0) + 1
        return {
            "threads_max": max(s[0] for s in self.samples),
            "fds_max": max(s[1] for s in self.samples),
            "rss_max_mib": round(max(s[2] for s in self.samples) / 1024, 1),
            "cpu_s": round(cpu, 2),
            "log_lines": log.count("\n"),
            "log_bytes": len(log),
            "tracebacks": log.count("Traceback"),
            "audit": counts,
        }


def member_upload(port: int, timeout: float = 60) -> dict[str, Any]:
    """A member logs in from 127.0.0.1 and uploads, retrying until ``timeout``."""
    start = time.monotonic()
    tries = 0
    while time.monotonic() - start < timeout:
        tries += 1
        try:
            transport = paramiko.Transport(("127.0.0.1", port))
            transport.banner_timeout = 10
            transport.connect(username="mairie-a", password=PASSWORD)
            sftp = paramiko.SFTPClient.from_transport(transport)
            assert sftp is not None
            with sftp.open(f"/up-{time.monotonic_ns()}.bak", "wb") as handle:
                handle.write(b"x" * 1000)
            transport.close()
            return {
                "member_ok": True,
                "member_s": round(time.monotonic() - start, 2),
                "member_tries": tries,
            }
        except (paramiko.SSHException, OSError, EOFError):
            time.sleep(0.5)
    return {
        "member_ok": False,
        "member_s": round(time.monotonic() - start, 2),
        "member_tries": tries,
    }


def attack_slots(server: Server) -> dict[str, Any]:
    port = server.ports["sftp"]
    held = hold_unauthenticated(("127.0.0.1", port), networks=10, per_network=20, timeout=5)
    time.sleep(1.0)
    alive = 0
    for sock in held:
        sock.setblocking(False)
        try:
            alive += sock.recv(65536, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    result = {"flood_open": len(held), "flood_alive_after_1s": alive}
    result.update(member_upload(port, timeout=45))
    for sock in held:
        sock.close()
    return result


def attack_banner(server: Server, seconds: float = 20) -> dict[str, Any]:
    sftp = ("127.0.0.1", server.ports["sftp"])
    deadline = time.monotonic() + seconds
    opened = refused = 0
    while time.monotonic() < deadline:
        try:
            sock = connect_from("127.0.20.1", sftp, timeout=5)
            sock.sendall(b"SSH-2.0-banner-only\r\n")
            opened += 1
            sock.settimeout(1)
            try:
                if sock.recv(100) == b"":
                    refused += 1
            except TimeoutError:
                pass
            sock.close()
        except OSError:
            refused += 1
    return {"banner_conns": opened, "closed_at_once": refused}


def attack_kex(server: Server, count: int = 300) -> dict[str, Any]:
    sftp = ("127.0.0.1", server.ports["sftp"])
    done = 0
    for i in range(count):
        try:
            sock = connect_from(f"127.0.{40 + i % 10}.{1 + i // 10 % 200}", sftp, timeout=5)
            sock.sendall(b"SSH-2.0-badkex\r\n" + bad_kexinit())
            sock.settimeout(5)
            while sock.recv(65536):
                pass
            done += 1
        except OSError:
            pass
        finally:
            sock.close()
    return {"kex_conns": done}


def attack_refused(server: Server, count: int = 5000) -> dict[str, Any]:
    port = server.ports["sftp"]
    sftp = ("127.0.0.1", port)
    for _ in range(12):
        try:
            transport = paramiko.Transport(connect_from("127.0.30.1", sftp, timeout=5))
            transport.connect(username="mairie-a", password="wrong")  # noqa: S106
        except (paramiko.SSHException, OSError, EOFError):
            pass
        finally:
            transport.close()
    done = 0
    for _ in range(count):
        try:
            sock = connect_from("127.0.30.1", sftp, timeout=5)
            sock.settimeout(5)
            sock.recv(100)
            done += 1
        except OSError:
            pass
        finally:
            sock.close()
    result = {"refused_conns": done}
    result.update(member_upload(port, timeout=30))
    return result


def attack_spread(server: Server) -> dict[str, Any]:
    port = server.ports["sftp"]
    sftp = ("127.0.0.1", port)

    def guess(source: str) -> None:
        try:
            transport = paramiko.Transport(connect_from(source, sftp, timeout=30))
            transport.banner_timeout = 30
            transport.connect(username="mairie-a", password="guess")  # noqa: S106
        except (paramiko.SSHException, OSError, EOFError):
            pass
        finally:
            transport.close()

    start = time.monotonic()
    for net in range(1, 41):
        guess(f"127.0.{100 + net}.1")
    spread_s = time.monotonic() - start
    for host in range(1, 41):
        guess(f"127.0.200.{host}")
    result: dict[str, Any] = {"spread_40_s": round(spread_s, 1)}
    result.update(member_upload(port, timeout=60))
    return result


ATTACKS: dict[str, tuple[Callable[[Server], dict[str, Any]], str]] = {
    "slots": (attack_slots, ""),
    "banner": (attack_banner, ""),
    "kex": (attack_kex, ""),
    "refused": (attack_refused, ""),
    "spread": (attack_spread, ""),
}


def main() -> None:
    logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)
    parser = argparse.ArgumentParser()
    parser.add_argument("attack", choices=[*ATTACKS, "all"])
    parser.add_argument("--src", type=Path, default=ROOT)
    args = parser.parse_args()
    names = list(ATTACKS) if args.attack == "all" else [args.attack]
    for name in names:
        attack, limits = ATTACKS[name]
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(args.src.resolve(), Path(tmp) / "inst", limits)
            result = {"attack": name}
            result.update(attack(server))
            result.update(server.finish())
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
