"""The server's cost under each attack of issue 11 (items 1-4, 8): RSS, CPU, descriptors.

    .venv/bin/python bench/attacks.py [--only handles,read,ignore,sparse,fifo] [--json]

Not a test. Each attack runs against its own fresh ``intake serve`` process (so its peak
RSS, VmHWM, is the attack's own) on loopback, from a logged-in member, through paramiko's
SFTP packet layer driven by hand (tests/attacks.py). Printed per attack: what the client
saw, then the server's RSS before / peak, CPU seconds spent, and descriptors at the peak.

- handles: 20 000 pipelined OPENs of one file, then a second member logs in, then the
  attacker disconnects: how many ``download`` and ``denied`` records were written.
- read:    one READ of 64 MiB on a 64 MiB file.
- ignore:  one 64 MiB SSH_MSG_IGNORE after login.
- sparse:  1 byte written at offset 2 GiB, then CLOSE: the size catalogued.
- fifo:    OPEN of a FIFO planted in the member's area (5 s client timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.core.clock import SystemClock  # noqa: E402
from intake.services.instance import init_instance  # noqa: E402
from tests.attacks import ProcStats, RawSftp  # noqa: E402
from tests.clients import SftpClient  # noqa: E402
from tests.conftest import PASSWORD, ServeProcess, TestInstance, write_test_config  # noqa: E402

MIB = 1024 * 1024


def fresh(work: Path, name: str) -> tuple[TestInstance, ServeProcess]:
    root = work / name
    root.mkdir()
    conf = write_test_config(root)
    init_instance(root, SystemClock())
    inst = TestInstance(root, conf)
    inst.add_account("mairie-a")
    inst.add_account("mairie-b")
    inst.area("mairie-a").mkdir(parents=True, exist_ok=True)
    return inst, ServeProcess(inst)


def measure(
    work: Path, name: str, plant: Callable[[Path], None], attack: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    inst, proc = fresh(work, name)
    try:
        plant(inst.area("mairie-a"))
        stats = ProcStats(proc.proc.pid)
        time.sleep(1.0)  # let the start-up scan settle
        before = stats.sample()
        peak_fds = [before.fds]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                try:
                    peak_fds.append(stats.sample().fds)
                except (OSError, ValueError):
                    return
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        seen = attack(inst, proc)
        time.sleep(1.0)
        stop.set()
        watcher.join()
        after = stats.sample()
        return {
            "attack": name,
            "client": seen,
            "wall_s": round(time.monotonic() - started, 1),
            "rss_before_mib": round(before.rss_kib / 1024, 1),
            "rss_peak_mib": round(after.peak_kib / 1024, 1),
            "cpu_s": round(after.cpu_s - before.cpu_s, 2),
            "fds_before": before.fds,
            "fds_peak": max(peak_fds),
            "threads_after": after.threads,
        }
    finally:
        proc.kill()


def attack_handles(inst: TestInstance, proc: ServeProcess) -> dict[str, Any]:
    raw = RawSftp(*proc.addresses["sftp"], "mairie-a", PASSWORD)
    count = 20_000
    for _ in range(count):
        raw.open_read("/file.bak")
    handles = refused = 0
    for _ in range(count):
        reply = raw.reply()
        if reply.kind == 102:  # HANDLE
            handles += 1
        else:
            refused += 1
    try:
        other = SftpClient(*proc.addresses["sftp"], "mairie-b", PASSWORD)
        other.listdir("/")
        other.close()
        other_login = "ok"
    except Exception as exc:
        other_login = f"failed: {type(exc).__name__}"
    raw.close()
    time.sleep(3.0)
    return {
        "handles": handles,
        "refused": refused,
        "other_login": other_login,
        "download_records": len(inst.audit("download")),
        "denied_records": len(inst.audit("denied")),
    }


def attack_read(inst: TestInstance, proc: ServeProcess) -> dict[str, Any]:
    raw = RawSftp(*proc.addresses["sftp"], "mairie-a", PASSWORD)
    raw.open_read("/big.bak")
    handle = raw.handle(raw.reply())
    raw.read(handle, 0, 64 * MIB)
    reply = raw.reply()
    got = len(raw.data(reply)) if reply.kind == 103 else 0
    raw.close()
    return {"bytes_in_reply": got}


def attack_ignore(inst: TestInstance, proc: ServeProcess) -> dict[str, Any]:
    client = SftpClient(*proc.addresses["sftp"], "mairie-a", PASSWORD)
    try:
        client.transport.send_ignore(64 * MIB)
        time.sleep(2.0)
        alive = client.transport.is_active()
        if alive:
            client.listdir("/")
    except (OSError, EOFError, Exception) as exc:
        alive = False
        _ = exc
    client.close()
    return {"session_alive_after": alive}


def attack_sparse(inst: TestInstance, proc: ServeProcess) -> dict[str, Any]:
    raw = RawSftp(*proc.addresses["sftp"], "mairie-a", PASSWORD)
    raw.open_write("/sparse.bak")
    handle = raw.handle(raw.reply())
    raw.write(handle, 2048 * MIB, b"x")
    write_status = raw.reply().status()
    raw.close_handle(handle)
    close_status = raw.reply().status()
    raw.close()
    deadline = time.monotonic() + 60
    catalogued = None
    while time.monotonic() < deadline:
        listed = inst.cli("catalog", "list", "--json")
        entries = json.loads(listed.stdout or "[]")
        if entries:
            catalogued = entries[0]["size"]
            break
        if not (inst.area("mairie-a") / "sparse.bak").exists():
            break
        time.sleep(0.5)
    return {"write": write_status[1], "close": close_status[1], "catalogued_size": catalogued}


def attack_fifo(inst: TestInstance, proc: ServeProcess) -> dict[str, Any]:
    raw = RawSftp(*proc.addresses["sftp"], "mairie-a", PASSWORD)
    raw.open_read("/trap.bak")
    channel = raw.client.sftp.sock
    channel.settimeout(5.0)
    try:
        reply = raw.reply()
        answer = f"reply {reply.kind}"
    except TimeoutError:
        answer = "no reply within 5 s (connection thread blocked)"
    raw.close()
    return {"open": answer}


def plant_file(size: int) -> Callable[[Path], None]:
    def plant(area: Path) -> None:
        with open(area / ("big.bak" if size > MIB else "file.bak"), "wb") as out:
            out.truncate(0)
            block = os.urandom(MIB)
            for _ in range(max(1, size // MIB)):
                out.write(block)

    return plant


def plant_fifo(area: Path) -> None:
    os.mkfifo(area / "trap.bak")


ATTACKS: dict[str, tuple[Callable[[Path], None], Callable[..., dict[str, Any]]]] = {
    "handles": (plant_file(1), attack_handles),
    "read": (plant_file(64 * MIB), attack_read),
    "ignore": (lambda area: None, attack_ignore),
    "sparse": (lambda area: None, attack_sparse),
    "fifo": (plant_fifo, attack_fifo),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(ATTACKS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            plant, attack = ATTACKS[name]
            result = measure(Path(tmp), name, plant, attack)
            results.append(result)
            print(json.dumps(result) if args.json else result, flush=True)


if __name__ == "__main__":
    main()
