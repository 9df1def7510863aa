"""A sweep cut by a full audit log: no file is destroyed without its ``destroyed`` record.

The log folder is a small tmpfs (tests/test_audit_fail_closed.py's) filled up while a real
``intake sweep`` destroys 200 backups; needs root to mount (skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter

from tests.conftest import INTAKE, TestInstance
from tests.sweeping import AGES_AGO, drop
from tests.test_audit_fail_closed import fill, small_log_filesystem


def test_log_filled_mid_sweep_leaves_each_file_or_its_record(instance: TestInstance) -> None:
    """The log fills while 200 due backups are destroyed: the sweep stops (exit 1, one
    line), and every backup is either still on disk or has its ``destroyed`` record; once
    there is room again, the next sweep destroys the rest, each file certified once
    (issue 15 finding 5)."""
    instance.add_account("mairie-a")
    area = instance.area("mairie-a")
    drop(
        instance,
        "mairie-a",
        {f"d{i // 50}/b{i:03}.sql": os.urandom(64) for i in range(200)},
        received=AGES_AGO,
    )
    files = {f"/{f.relative_to(area)}": f for f in area.rglob("*.sql")}
    assert 200 == len(files)
    log_dir = instance.root / "log"
    with small_log_filesystem(log_dir, "1m"):
        proc = subprocess.Popen(
            [*INTAKE, "--config", str(instance.config_file), "sweep"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(not f.exists() for f in files.values()) >= 20:
                break
            time.sleep(0.002)
        filler = fill(log_dir)
        _, stderr = proc.communicate(timeout=60)
        gone = {path for path, f in files.items() if not f.exists()}
        recorded = {str(r["path"]) for r in instance.audit("destroyed")}
        assert 0 < len(gone) < 200, "the log did not fill mid-sweep"
        assert 1 == proc.returncode, stderr
        assert "audit log cannot be written" in stderr and "Traceback" not in stderr
        assert set() == gone - recorded, "destroyed without a record"
        filler.unlink()
        rerun = instance.cli("sweep")
        assert 0 == rerun.returncode, rerun.stderr
        assert not any(f.exists() for f in files.values())
        certified = Counter(str(r["path"]) for r in instance.audit("destroyed"))
        assert set(files) == set(certified) and {1} == set(certified.values())
        verify = instance.cli("audit", "verify")
        assert 0 == verify.returncode, verify.stdout + verify.stderr
