"""intake: a secure SFTP + FTPS backup intake server with automated expiry.

Layering (each layer imports only from the layers above it in this list):

    intake.core        pure: errors, clock, model (the arrival state machine), paths, alerts,
                       authz (who may do what), config + config_values, durations,
                       policy (plan).
                       stdlib only; no I/O except config.load reading one file; the
                       clock is read in intake.core.clock only, everything else gets "now".
    intake.adapters    one library or OS resource each: sqlite (sqlite3) under accounts
                       and catalog + catalog_* (a database file each), audit (structlog),
                       passwords (scrypt), keys (cryptography), storage (the filesystem),
                       holidays_fr (holidays), forwarder (paramiko, client side),
                       smtp (smtplib), hook (subprocess), alert_queue (state/alerts),
                       secrets (password files), diskspace (statvfs).
    intake.services    files (the one authorization + storage layer both front-ends use),
                       guard (connection caps, bans), login, instance (init, resolution),
                       cataloguer + cataloguer_* (watchdog in cataloguer_watch -> catalog),
                       sweeper + sweeper_* (plan -> apply: destroy, forward -> audit),
                       alerts (audit observer -> queue -> mail) + alerts_loop (serve's).
    intake.frontends   listener (TCP accept, shared), sftp + sftp_files (paramiko, server
                       side), ftps + ftps_fs + ftps_tls (pyftpdlib, pyOpenSSL), daemon
                       (start, stop, signals), cli + cli_catalog + cli_sweep + cli_alert
                       (argparse).
                       Thin: protocol in, service calls, errors out as protocol codes.
"""

__version__ = "0.1.0"
