"""Upload rate of one large file with OpenSSH ``sftp``: intake vs OpenSSH ``sshd`` (internal-sftp).

Both servers run side by side on loopback in the same run, with the same client and the
same file; the figure that matters is the ratio. Three runs: the client's default cipher
(OpenSSH picks chacha20-poly1305 with sshd, which paramiko lacks, and aes128-ctr with
intake), then each server forced to aes128-ctr, then to aes128-gcm. Not a test.

    .venv/bin/python bench/sftp_upload.py [--size-mib 1024] [--rounds 2]

Needs root (sshd is started with its own config on a free port) and openssh-server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTAKE = [sys.executable, "-m", "intake"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_file(path: Path, size_mib: int) -> None:
    chunk = os.urandom(1 << 20)
    with path.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(chunk)


def start_intake(work: Path, pubkey: Path) -> tuple[subprocess.Popen[str], int]:
    inst = work / "intake"
    subprocess.run([*INTAKE, "init", str(inst)], check=True, capture_output=True)
    conf = inst / "intake.toml"
    text = conf.read_text().replace('"127.0.0.1:2222"', '"127.0.0.1:0"')
    conf.write_text(text.replace('listen = "127.0.0.1:2121"', 'listen = ""'))
    subprocess.run(
        [
            *INTAKE,
            "--config",
            str(conf),
            "account",
            "add",
            "bench",
            "--role",
            "member",
            "--authorized-key",
            str(pubkey),
        ],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*INTAKE, "--config", str(conf), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.match(r"sftp: listening on 127.0.0.1:(\d+)", line)
        if match:
            return proc, int(match[1])
    raise SystemExit("intake serve did not start")


def start_sshd(work: Path, pubkey: Path, extra: str = "") -> tuple[subprocess.Popen[bytes], int]:
    """sshd -D on a free loopback port, root logging in with ``pubkey`` (internal-sftp);
    ``extra``: more sshd_config lines (bench/targets.py raises MaxStartups)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    folder = work / "sshd"
    folder.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host")], check=True
    )
    shutil.copy(pubkey, folder / "authorized_keys")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {folder / 'host'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'pid'}\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nSubsystem sftp internal-sftp\n" + extra
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("sshd did not start")


def upload(
    port: int, user: str, key: Path, local: Path, remote: str, cipher: str | None, work: Path
) -> float:
    batch = work / "batch"
    batch.write_text(f"put {local} {remote}\n")
    options = [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        f"UserKnownHostsFile={work / 'kh'}",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        str(key),
    ]
    if cipher:
        options += ["-c", cipher]
    start = time.perf_counter()
    subprocess.run(
        ["sftp", "-b", str(batch), "-P", str(port), *options, f"{user}@127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    key = work / "client"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    local = work / "backup.bak"
    make_file(local, args.size_mib)
    intake_proc, intake_port = start_intake(work, key.with_suffix(".pub"))
    sshd_proc, sshd_port = start_sshd(work, key.with_suffix(".pub"))
    (work / "sshd-dest").mkdir()
    results: dict[str, dict[str, float]] = {}
    try:
        for cipher in (None, "aes128-ctr", "aes128-gcm@openssh.com"):
            label = cipher or "client default"
            best = {"intake": float("inf"), "sshd": float("inf")}
            for round_ in range(args.rounds):
                name = f"r{round_}-{label.replace('@', '_')}.bak".replace(" ", "-")
                best["intake"] = min(
                    best["intake"], upload(intake_port, "bench", key, local, name, cipher, work)
                )
                best["sshd"] = min(
                    best["sshd"],
                    upload(
                        sshd_port, "root", key, local, str(work / "sshd-dest" / name), cipher, work
                    ),
                )
                (work / "sshd-dest" / name).unlink()
            mib = args.size_mib
            results[label] = {
                "intake_mib_s": round(mib / best["intake"], 1),
                "sshd_mib_s": round(mib / best["sshd"], 1),
                "ratio_intake_over_sshd": round(best["sshd"] / best["intake"], 3),
            }
            print(
                f"{label:>24}: intake {mib / best['intake']:7.1f} MiB/s, "
                f"sshd {mib / best['sshd']:7.1f} MiB/s, ratio {best['sshd'] / best['intake']:.3f}"
            )
    finally:
        intake_proc.terminate()
        sshd_proc.terminate()
        intake_proc.wait(30)
        sshd_proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "sftp_upload.json").write_text(
        json.dumps({"size_mib": args.size_mib, "rounds": args.rounds, "results": results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
