"""What a member's connection card says: address, ports, login, fingerprints, retention.

The facts only; ``intake.frontends.cli.card`` words and lays them out (French by default).

Rules:
- The address is ``server.hostname``; the ports are ``server.public_sftp_port`` /
  ``public_ftps_port`` when set (the service published behind NAT), else the listen ports.
  A protocol that is turned off is left off the card.
- Every SSH host key is shown in the two forms members' clients print: ``SHA256:<base64>``
  without padding (OpenSSH, PuTTY, FileZilla; what ``intake keys show`` prints) and
  ``<type> <bits> <base64>=`` with padding (WinSCP: ed25519 counts 255 bits there). The TLS
  certificate in upper-case colon hex (``openssl``, ``keys show``) and lower case (WinSCP,
  FileZilla).
- The retention sentence comes from the policy that would govern a new file of the
  account, so the card never promises what the policies do not do.
- The certificate's SHA-1 too, in the upper-case colon form lftp prints when it does not
  trust a certificate (``ssl:verify-certificate/<SHA-1> no`` trusts exactly that one).
- An auditor's card carries the audit public key's id (what ``--public-key`` must match).
- Never a password or a hash: the card names the login; the password travels apart.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ssl
from dataclasses import dataclass

from intake.adapters import keys
from intake.adapters.accounts import AccountStore
from intake.core.authz import Area
from intake.core.config import Config
from intake.core.durations import Duration
from intake.core.errors import UsageError
from intake.core.model import ArrivalState, Role
from intake.core.policy import Then, choose
from intake.services.documents import signed
from intake.services.retention import load_policies


@dataclass(frozen=True)
class HostKeyPrint:
    kind: str  # "ssh-ed25519", "ssh-rsa"
    openssh: str  # SHA256:... as OpenSSH, PuTTY and FileZilla print it
    winscp: str  # "ssh-ed25519 255 ...=" as WinSCP prints it


@dataclass(frozen=True)
class CardFacts:
    account: str
    role: Role
    enabled: bool
    host: str
    sftp_port: int | None  # None: SFTP is off
    ftps_port: int | None  # None: FTPS is off
    host_keys: tuple[HostKeyPrint, ...]
    tls_upper: str | None
    tls_lower: str | None
    tls_sha1: str | None  # upper-case colon hex, as lftp prints it
    keep: Duration | None  # 3 months; None when no destroy policy governs new files
    organisation: str
    contact: str
    issued: _dt.date
    audit_key: str = ""  # the audit public key's id (auditors verify with it)


class _NewFile:
    """A file the account would upload now, as the policy matcher sees it."""

    def __init__(self, account: str, area: str, now: _dt.datetime) -> None:
        self.id = 0
        self.account = account
        self.area = area
        self.path = "/sauvegarde.zip" if area == Area.MEMBER.value else "/outbox/x/fichier.zip"
        self.size = 0
        self.received_at = now
        self.state = ArrivalState.RECEIVED
        self.forwarded_at = None


def winscp_form(kind: str, bits: int, fingerprint: str) -> str:
    """``SHA256:abc`` → ``ssh-ed25519 255 abc=`` (WinSCP pads the base64 and counts 255)."""
    digest = fingerprint.removeprefix("SHA256:")
    digest += "=" * (-len(digest) % 4)
    shown_bits = 255 if kind == "ssh-ed25519" else bits
    return f"{kind} {shown_bits} {digest}"


def certificate_sha1(cfg: Config) -> str | None:
    """The TLS certificate's SHA-1, ``AB:CD:...`` (lftp's form), or None without one."""
    path = cfg.keys_dir / keys.TLS_CERT_FILE
    try:
        der = ssl.PEM_cert_to_DER_cert(path.read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    digest = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def gather(cfg: Config, accounts: AccountStore, name: str, now: _dt.datetime) -> CardFacts:
    """The facts of ``name``'s card; ``UsageError`` (exit 2) for an unknown account."""
    account = accounts.get(name)
    if account is None:
        raise UsageError(f"no account named {name!r}")
    prints = tuple(
        HostKeyPrint(f.kind, f.fingerprint, winscp_form(f.kind, f.bits, f.fingerprint))
        for f in keys.host_key_fingerprints(cfg.keys_dir)
    )
    cert = keys.certificate_fingerprint(cfg.keys_dir)
    area = Area.OUTBOX.value if account.role is Role.TECHNICIAN else Area.MEMBER.value
    policy = choose(_NewFile(name, area, now), load_policies(cfg.policies_dir), account.role)
    keep = policy.keep if policy and policy.then is Then.DESTROY else None
    return CardFacts(
        account=name,
        role=account.role,
        enabled=account.enabled,
        host=cfg.server.hostname,
        sftp_port=(cfg.server.public_sftp_port or cfg.sftp.listen.port)
        if cfg.sftp.listen.enabled
        else None,
        ftps_port=(cfg.server.public_ftps_port or cfg.ftps.listen.port)
        if cfg.ftps.listen.enabled
        else None,
        host_keys=prints,
        tls_upper=cert.fingerprint if cert else None,
        tls_lower=cert.fingerprint.lower() if cert else None,
        tls_sha1=certificate_sha1(cfg) if cert else None,
        keep=keep,
        organisation=cfg.server.organisation,
        contact=cfg.server.contact,
        issued=now.date(),
        audit_key=signed.audit_signer(cfg).key_id if account.role is Role.AUDITOR else "",
    )
