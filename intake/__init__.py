"""intake: a secure SFTP + FTPS backup intake server with automated expiry.

Layering (each floor imports only from the floors below it; ``make lint`` checks it with
import-linter, see ``[tool.importlinter]`` in pyproject.toml and docs/architecture.md):

    intake.frontends   cli > daemon > sftp | ftps > listener. Thin: protocol in, service
                       calls, errors out as protocol codes.
    intake.services    files (the one authorization + storage layer both front-ends use),
                       instance, access (guard, login, budget, sessions), cataloguer,
                       sweeper, documents, reports, alerts, health, metrics, retention.
    intake.adapters    one library or OS resource each: audit, catalog, logs (structlog's
                       one seam), alerting, storage, accounts, keys, sqlite, forwarder, ...
    intake.core        pure: errors, clock, model (the arrival state machine), paths,
                       authz (who may do what), config, durations, policy (plan).
                       stdlib only; no I/O except config.load reading one file; the
                       clock is read in intake.core.clock only, everything else gets "now".

Every package's ``__init__`` says what it is for and names its entry points.
"""

__version__ = "0.1.0"
