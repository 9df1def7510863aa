"""Cataloguer figures: scan of many small files, hashing rate, close-to-catalog delay. Not a test.

    .venv/bin/python bench/catalog_scan.py scan   [--files 100000] [--per-folder 1000]
    .venv/bin/python bench/catalog_scan.py hash   [--size-mib 1024]
    .venv/bin/python bench/catalog_scan.py upload [--size-mib 1024]
    .venv/bin/python bench/catalog_scan.py drop   [--size-mib 1024]
    .venv/bin/python bench/catalog_scan.py all

scan:   makes N small files in member areas of a fresh instance, then times
        ``intake catalog scan`` (a real process) twice: the first scan hashes, catalogues and
        audits every file; the rescan finds nothing changed (stat only, no hashing).
hash:   streaming SHA-256 of one file (the cataloguer's hashing, page cache warm).
upload: a real SFTP upload into a running server (in-process ``Daemon``): the time from
        the client's CLOSE request to its reply (fsync, rename, catalog write) and to the
        entry being readable in the catalog. The SHA-256 is computed in flight, not after.
drop:   a file written by hand into an area while the server runs: from the writer's
        close to the entry in the catalog (watchdog event + hashing on the worker).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.adapters.catalog.catalog import Catalog  # noqa: E402
from intake.adapters.storage import sha256_file  # noqa: E402
from intake.core.clock import SystemClock  # noqa: E402
from intake.core.model import Role  # noqa: E402
from intake.frontends.daemon.serve import Daemon  # noqa: E402
from intake.services.instance import init_instance, open_instance  # noqa: E402

INTAKE = [sys.executable, "-m", "intake"]
PASSWORD = "bench password for the catalog"  # noqa: S105 - a throwaway instance


def make_instance(work: Path) -> Path:
    root = work / "inst"
    root.mkdir()
    conf = root / "intake.toml"
    conf.write_text('[sftp]\nlisten = "127.0.0.1:0"\n[ftps]\nlisten = ""\n')
    init_instance(root, SystemClock())
    return conf


def make_file(path: Path, size_mib: int) -> None:
    chunk = os.urandom(1 << 20)
    with path.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(chunk)


def bench_scan(work: Path, files: int, per_folder: int) -> dict[str, object]:
    conf = make_instance(work)
    members = conf.parent / "data" / "members"
    started = time.monotonic()
    for i in range(files):
        folder = members / f"m{i // per_folder:04d}"
        if i % per_folder == 0:
            folder.mkdir()
        (folder / f"backup-{i:06d}.bak").write_bytes(os.urandom(64 + i % 900))
    made = time.monotonic() - started
    time.sleep(1.5)  # dropped a while ago, not "still being written"
    result: dict[str, object] = {"files": files, "make_s": round(made, 2)}
    for run in ("first", "rescan"):
        t0 = time.monotonic()
        proc = subprocess.run(
            [*INTAKE, "--config", str(conf), "catalog", "scan", "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.monotonic() - t0
        report = json.loads(proc.stdout)
        result[run] = {
            "wall_s": round(wall, 2),
            "scan_s": report["seconds"],
            "hashed": report["hashed"],
            "catalogued": report["catalogued"],
        }
    t0 = time.monotonic()
    subprocess.run(
        [*INTAKE, "--config", str(conf), "catalog", "list", "--json"],
        capture_output=True,
        check=True,
    )
    result["list_json_s"] = round(time.monotonic() - t0, 2)
    return result


def bench_hash(work: Path, size_mib: int) -> dict[str, object]:
    path = work / "hash.bin"
    make_file(path, size_mib)
    sha256_file(str(path))  # warm the page cache
    t0 = time.monotonic()
    sha256_file(str(path))
    seconds = time.monotonic() - t0
    path.unlink()
    return {
        "size_mib": size_mib,
        "seconds": round(seconds, 3),
        "mb_per_s": round(size_mib * 1.048576 / seconds, 1),
    }


def _running(work: Path) -> tuple[Daemon, object, Catalog, Path]:
    conf = make_instance(work)
    from intake.core.config import load

    inst = open_instance(load(conf), SystemClock())
    inst.accounts.add("bench", Role.MEMBER, PASSWORD, [])
    daemon = Daemon(inst, workers=1)
    daemon.start()
    catalog = Catalog(conf.parent / "state" / "catalog.db", SystemClock())
    return daemon, inst, catalog, conf.parent


def _wait_entry(catalog: Catalog, path: str, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.path == path for e in catalog.entries("bench")):
            return time.monotonic()
        time.sleep(0.002)
    raise SystemExit(f"{path} never catalogued")


def bench_upload(work: Path, size_mib: int) -> dict[str, object]:
    import paramiko

    daemon, inst, catalog, _ = _running(work)
    try:
        transport = paramiko.Transport(daemon.addresses["sftp"])
        transport.connect(username="bench", password=PASSWORD)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        chunk = os.urandom(1 << 20)
        t_start = time.monotonic()
        handle = sftp.open("/big.bak", "wb")
        handle.set_pipelined(True)
        for _ in range(size_mib):
            handle.write(chunk)
        handle.flush()
        t_close = time.monotonic()
        handle.close()
        t_closed = time.monotonic()
        t_entry = _wait_entry(catalog, "/big.bak")
        transport.close()
        return {
            "size_mib": size_mib,
            "upload_s": round(t_close - t_start, 2),
            "close_reply_s": round(t_closed - t_close, 3),
            "close_to_entry_s": round(t_entry - t_close, 3),
        }
    finally:
        catalog.close()
        daemon.stop()
        inst.close()  # type: ignore[attr-defined]


def bench_drop(work: Path, size_mib: int) -> dict[str, object]:
    daemon, inst, catalog, root = _running(work)
    try:
        area = root / "data" / "members" / "bench"
        area.mkdir(parents=True, exist_ok=True)
        chunk = os.urandom(1 << 20)
        with (area / "dropped.bak").open("wb") as handle:
            for _ in range(size_mib):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        t_close = time.monotonic()
        t_entry = _wait_entry(catalog, "/dropped.bak")
        return {"size_mib": size_mib, "close_to_entry_s": round(t_entry - t_close, 3)}
    finally:
        catalog.close()
        daemon.stop()
        inst.close()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["scan", "hash", "upload", "drop", "all"])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--per-folder", type=int, default=1000)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        work = Path(tmp)
        results: dict[str, object] = {}
        if args.what in ("hash", "all"):
            results["hash"] = bench_hash(work, args.size_mib)
        if args.what in ("upload", "all"):
            (work / "upload").mkdir()
            results["upload"] = bench_upload(work / "upload", args.size_mib)
        if args.what in ("drop", "all"):
            (work / "drop").mkdir()
            results["drop"] = bench_drop(work / "drop", args.size_mib)
        if args.what in ("scan", "all"):
            (work / "scan").mkdir()
            results["scan"] = bench_scan(work / "scan", args.files, args.per_folder)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
