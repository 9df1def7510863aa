"""The cataloguer: every arrival in ``data/`` recorded once, with its SHA-256.

Entry point: ``cataloguer.Cataloguer``, which owns and composes its parts, each an object
with its own state: ``watcher.Watcher`` (watchdog's observer turned into jobs; the one
module that imports watchdog), ``scanner.Scanner`` (reconciliation: make the catalog match
the disk), ``checker.Checker`` (one file against the catalog); ``jobs`` holds the worker's
typed work items.
"""
