"""The operational log (stderr/journald), not the audit log.

Entry points: ``oplog.configure`` (once, by ``intake serve``), ``oplog.Session`` (a
connection's fields on every line), ``noise.NoiseLog`` (floods summarised per address),
``structlog_seam`` (the one module that imports structlog, for this log and the audit's).
"""
