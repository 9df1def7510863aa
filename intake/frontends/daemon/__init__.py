"""``intake serve``: the long-running process.

Entry point: ``serve.serve(instance)`` (``serve.Daemon`` starts the SFTP and FTPS
services, the cataloguer, the sweeper and alert loops, and stops them cleanly).
``heartbeat`` is what each tick does (status file, metrics textfile, systemd watchdog);
``metrics_http`` serves ``GET /metrics``.

With ``[server] workers`` above 1 the ``serve`` process is the supervisor: it accepts and
admits every connection and hands it to a worker process (``pool``), forked by the
``spawner``; ``worker`` is a worker's life, ``remote`` its side of what the supervisor
owns (the guard, the budget), ``channel`` the messages between them.
"""
