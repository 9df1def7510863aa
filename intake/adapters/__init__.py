"""Adapters: one library or OS resource each, behind a small interface the services use.

Packages: ``audit`` (the chained, signed audit log), ``catalog`` (SQLite catalog of
arrivals), ``logs`` (the operational log; ``logs.structlog_seam`` is structlog's one seam),
``alerting`` (alert queue, SMTP, the command hook). Modules: ``storage`` (the filesystem
jail), ``accounts`` + ``passwords`` + ``secrets``, ``keys`` (cryptography), ``sqlite``,
``forwarder`` (paramiko client), ``bans`` (blocks shared with the CLI, SQLite),
``holidays_fr``, ``diskspace``, ``locks``, ``systemd``, ``memory`` (the server
process's malloc bounds: ``bound_process_memory``).
Adapters import ``intake.core`` only, never a service or a front-end.
"""
