"""One sweep as the sweeper would run it at another time: ``python bench/sweep_at.py CONFIG TIME``.

``intake sweep`` always reads the real clock (``--now`` is for ``--dry-run`` only), so a
bench that needs backups received today destroyed now (``bench/chaos.py``) runs the
sweeper service itself with the clock it chooses: the same ``Sweeper`` that ``intake sweep``
and ``serve`` run, given a ``FixedClock`` through the ``Clock`` every part of intake takes.
Exit 0 when the run succeeded, 1 otherwise (like ``intake sweep``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.core.clock import FixedClock, parse_iso  # noqa: E402
from intake.core.config import load  # noqa: E402
from intake.services.instance import open_instance  # noqa: E402
from intake.services.sweeper.sweep import Sweeper  # noqa: E402


def main(config: str, at: str) -> int:
    inst = open_instance(load(Path(config)), FixedClock(parse_iso(at)))
    try:
        report = Sweeper(inst).run()
    finally:
        inst.close()
    return 0 if report.ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/sweep_at.py CONFIG ISO-8601-TIME")
    sys.exit(main(sys.argv[1], sys.argv[2]))
