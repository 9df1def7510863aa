"""``python -m intake`` is the ``intake`` command."""

from intake.frontends.cli import main

raise SystemExit(main())
