"""A real SMTP server on loopback for the alert tests: aiosmtpd in its own thread.

``MailServer`` listens on 127.0.0.1 (port 0 unless told), speaks STARTTLS, implicit TLS
or clear text with a test certificate signed by a test CA (``TestPki``), requires AUTH
when given a user, and keeps every message it accepted (``messages``). It can be
stopped and started again on the same port (the mail server that was down).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import email
import email.policy
import ipaddress
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class TestPki:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    __test__ = False

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def key(self) -> Path:
        return self.folder / "server.key"

    def create(self) -> TestPki:
        self.folder.mkdir(parents=True, exist_ok=True)
        now = _dt.datetime.now(_dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intake test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return self

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None
    tls: bool

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_DATA(self, _server: SMTP, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        with self.server.lock:
            self.server.messages.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    message,
                    login,
                    session.ssl is not None or self.server.mode == "tls",
                )
            )
        return "250 OK"


@dataclass
class MailServer:
    """See the module docstring. ``mode``: "starttls", "tls" or "none"."""

    pki: TestPki
    mode: str = "starttls"
    user: str = ""
    password: str = ""
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    failed_logins: int = 0

    def _authenticate(
        self, _server: SMTP, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        if not ok:
            self.failed_logins += 1
        return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)

    def _factory(self) -> SMTP:
        # implicit TLS is TLS all along, though aiosmtpd only counts STARTTLS as such
        kwargs: dict[str, Any] = {"hostname": "mail.test", "auth_require_tls": self.mode != "tls"}
        if self.mode == "starttls":
            kwargs["tls_context"] = self.pki.server_context()
            kwargs["require_starttls"] = True
        if self.user:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # AUTH "without TLS": it is implicit TLS
            return SMTP(_Handler(self), **kwargs)

    def start(self) -> MailServer:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            ssl_context = self.pki.server_context() if self.mode == "tls" else None
            try:
                self._server = await asyncio.get_running_loop().create_server(
                    self._factory, "127.0.0.1", self.port, ssl=ssl_context
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                raise
            finally:
                ready.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve())
            except BaseException:
                return
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp-test", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None:
            return

        async def close() -> None:
            if server is not None:
                server.close()
                await server.wait_closed()
            loop.stop()

        if server is not None:
            asyncio.run_coroutine_threadsafe(close(), loop)
        else:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = self._server = self._thread = None

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.messages)


MAIL_USER = "intake-alerts"
MAIL_PASSWORD = "mail pass phrase 42"


def alerts_section(
    root: Path,
    pki: TestPki,
    port: int,
    recipients: tuple[str, ...],
    tls: str = "starttls",
    ca: bool = True,
) -> str:
    """An ``[alerts]`` section pointing at the test mail server (its password written to
    ``root/smtp-password``, 0600, as an operator would)."""
    secret = root / "smtp-password"
    secret.write_text(MAIL_PASSWORD + "\n")
    secret.chmod(0o600)
    listed = ", ".join(f'"{r}"' for r in recipients)
    return (
        "[alerts]\n"
        'smtp_host = "127.0.0.1"\n'
        f"smtp_port = {port}\n"
        f'smtp_tls = "{tls}"\n'
        f'smtp_user = "{MAIL_USER}"\n'
        'smtp_password_file = "smtp-password"\n'
        + (f'smtp_ca_file = "{pki.ca}"\n' if ca else "")
        + 'sender = "intake@sauvegardes.test"\n'
        f"recipients = [{listed}]\n"
        'retry = "1 second"\n'
    )
