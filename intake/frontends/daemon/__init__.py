"""``intake serve``: the long-running process.

Entry point: ``serve.serve(instance)`` (``serve.Daemon`` starts the SFTP and FTPS
services, the cataloguer, the sweeper and alert loops, and stops them cleanly).
``heartbeat`` is what each tick does (status file, metrics textfile, systemd watchdog);
``metrics_http`` serves ``GET /metrics``.
"""
