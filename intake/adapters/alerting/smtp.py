"""Sending one e-mail over SMTP: the one seam to ``smtplib`` and ``ssl``.

Rules:
- ``starttls``: plain connection, EHLO, STARTTLS (a server that does not offer it is an
  error, never a fallback to clear text), EHLO again. ``tls``: TLS from the first byte
  (port 465). ``none``: clear text, allowed by the configuration only towards a loopback
  relay (``intake.core.config`` refuses any other host).
- The server's certificate is always verified, with its host name: against the system's
  CA certificates, or the ``ca_file`` given (a private CA, the tests' own). TLS 1.2 at least.
- With a user, AUTH uses the password from its file (``Secret``): it never appears in
  argv, in a log line or in an error message. smtplib's debug output stays off.
- Every failure is one ``SmtpError`` whose message says where and what, in one line.
- Attachments (the signed audit head) are given as bytes with their name and type; the
  name is intake's, never a client's.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from intake.adapters.secrets import Secret
from intake.core.errors import IntakeError


class SmtpError(IntakeError):
    """The mail could not be handed to the SMTP server."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str  # starttls | tls | none
    sender: str
    recipients: tuple[str, ...]
    user: str = ""
    password: Secret | None = None
    ca_file: Path | None = None
    timeout: float = 30.0
    helo_name: str = "localhost"


def _context(settings: SmtpSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise SmtpError(f"cannot load the CA file {settings.ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    maintype: str = "application"
    subtype: str = "json"


def build_message(
    settings: SmtpSettings, subject: str, body: str, attachments: Sequence[Attachment] = ()
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body, charset="utf-8")
    for item in attachments:
        message.add_attachment(
            item.data, maintype=item.maintype, subtype=item.subtype, filename=item.filename
        )
    return message


def _login(client: smtplib.SMTP, user: str, password: Secret, where: str) -> None:
    """AUTH with one mechanism (PLAIN, else LOGIN; both inside TLS): a refused password
    is one failed attempt on the server, not one per mechanism as ``SMTP.login`` makes."""
    if not client.has_extn("auth"):
        raise SmtpError(f"{where} does not offer AUTH (smtp_user is set)")
    offered = client.esmtp_features.get("auth", "").upper().split()
    mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
    if mechanism is None:
        raise SmtpError(f"{where} offers no AUTH mechanism intake uses (PLAIN, LOGIN)")
    client.user, client.password = user, password.reveal()
    try:
        authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        client.auth(mechanism, authobject)
    finally:
        client.password = ""


def send_mail(
    settings: SmtpSettings, subject: str, body: str, attachments: Sequence[Attachment] = ()
) -> None:
    """Hand one message to the server for every recipient; ``SmtpError`` if it did not
    take it for at least one of them (recipients it refused are in the message)."""
    where = f"{settings.host}:{settings.port}"
    message = build_message(settings, subject, body, attachments)
    try:
        if settings.tls == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                local_hostname=settings.helo_name,
                timeout=settings.timeout,
                context=_context(settings),
            )
        else:
            client = smtplib.SMTP(
                settings.host,
                settings.port,
                local_hostname=settings.helo_name,
                timeout=settings.timeout,
            )
        with client:
            client.ehlo()
            if settings.tls == "starttls":
                if not client.has_extn("starttls"):
                    raise SmtpError(f"{where} does not offer STARTTLS: nothing sent in clear")
                client.starttls(context=_context(settings))
                client.ehlo()
            if settings.user:
                if settings.password is None:
                    raise SmtpError("smtp_user is set but no smtp_password_file")
                _login(client, settings.user, settings.password, where)
            refused = client.send_message(message)
        if refused:
            raise SmtpError(f"{where} refused recipient(s): {', '.join(sorted(refused))}")
    except SmtpError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise SmtpError(
            f"{where}: the server's certificate is not trusted ({exc.verify_message})"
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise SmtpError(
            f"{where} refused the login of {settings.user!r} ({exc.smtp_code})"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SmtpError(f"{where} refused every recipient: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        detail = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        raise SmtpError(f"{where} answered {exc.smtp_code} {detail[:200]}") from None
    except smtplib.SMTPException as exc:
        raise SmtpError(f"{where}: {exc}") from None
    except ssl.SSLError as exc:
        raise SmtpError(f"{where}: TLS failed ({exc.reason or exc})") from None
    except OSError as exc:
        raise SmtpError(f"cannot reach the mail server {where}: {exc.strerror or exc}") from None
