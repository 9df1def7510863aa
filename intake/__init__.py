"""intake: a secure SFTP + FTPS backup intake server with automated expiry.

Layering (each layer imports only from the layers above it in this list):

    intake.core        pure: errors, clock, model, paths, authz, config, policy.
                       stdlib only; no I/O except config.load_file reading one file;
                       the clock is read in intake.core.clock only.
    intake.adapters    one library or OS resource each: audit (structlog), accounts
                       (sqlite3 + scrypt), keys (cryptography), storage (the filesystem).
                       Each third-party library is imported in exactly one module.
    intake.services    files (the one authorization + storage layer both front-ends use),
                       guard (login throttling and bans), instance (init, resolution).
    intake.frontends   sftp (paramiko), daemon (listeners, signals), cli (argparse).
                       Thin: protocol in, service calls, errors out as protocol codes.
"""

__version__ = "0.1.0"
