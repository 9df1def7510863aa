"""The ``intake`` command: argument parsing and output.

Entry point: ``main.main`` (the console script). One module per command group
(``accounts``, ``audit``, ``documents``, ``catalog``, ``sweep``, ``status``, ``alert``,
``report``, ``card``, ``ban``), each with a ``register`` function; what they share is in
``common``, which they import (never ``main``). To add a command: see docs/howto.md.
"""
