"""The cataloguer: every arrival in ``data/`` recorded once, with its SHA-256.

Entry point: ``cataloguer.Cataloguer``, which owns its parts: ``watcher`` (watchdog's
observer turned into jobs; the one module that imports watchdog), ``scanner``
(reconciliation: make the catalog match the disk), ``checker`` (one file against the
catalog), ``jobs`` (the worker's typed work items).
"""
