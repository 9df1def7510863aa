"""``python -m intake`` is the ``intake`` command."""

from intake.frontends.cli.main import main

raise SystemExit(main())
