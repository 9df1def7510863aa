"""The audit log: append-only JSON lines, hash-chained, signed by checkpoints.

Entry points: ``writer.AuditLog`` (append a record; fail closed), ``chain`` (how every
process appends under one lock, checkpoints, the head), ``group`` (group commit:
which records are durable), ``verify.verify_log`` (what ``intake audit verify`` runs),
``signing`` (the Ed25519 audit key and signed documents),
``tsa`` (RFC 3161 tokens: request, check) and ``stamps`` (the tokens of a log, checked).
"""
