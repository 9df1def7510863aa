"""TLS for FTPS: the per-connection context and the data connection (pyOpenSSL + pyftpdlib).

Rules:
- TLS 1.2 only, ECDHE with AES-GCM or ChaCha20, no compression, no renegotiation. TLS 1.3
  would send session tickets after the handshake on data connections, which cuts the
  tail of uploads (the client closes with them unread), pyOpenSSL cannot turn them off per
  connection, and a data connection can only resume a session of the control's version.
- TLS 1.2 session tickets (RFC 5077) are issued, inside the handshake (so nothing is
  left unread at the end of a transfer): Go's TLS client (rclone) resumes TLS 1.2 only
  with a ticket, never by session id.
- One server context (``TlsContexts``: session cache, session-id context, ticket keys)
  serves every new connection and is replaced every ``ROTATE_SECONDS`` and at SIGHUP:
  its ticket keys are OpenSSL's own, random, in memory only, never written anywhere, gone
  with the context; a connection keeps the context it started with (so do its transfers).
- The certificate and key are read into memory (``TlsMaterial``) at start and again at
  SIGHUP, never per connection: a renewed certificate (an ACME deploy hook, then
  ``systemctl reload``) is taken by new connections only once it loads and matches its
  key; a half-written or mismatched pair is refused and the old one kept. Sessions
  already open keep the context they started with.
- A data connection is accepted only when it resumed a session that belongs to its own
  control connection, or to another live control connection of the same account from
  the same address (rclone shares one TLS session cache between its parallel control
  connections, so it may offer the ticket of its other connection). Knowing such a
  session's master secret is what proves the data connection's peer is that client: a
  full handshake, or a session of anyone else, is refused (audited ``denied``, 522).
- A passive port waits for its client's own data connection (``DataListener``): a
  connection from another address, or from the client's address that does not resume a
  session of this client (a wrong session, a failed handshake, or still in its handshake
  when the right one is handed over), is closed, audited ``denied`` (operation ``data
  connection``, its address) and scored against its address by the guard; the transfer
  goes on with the right connection. A connection from the client's address that closes
  before its handshake, or does not start it within ``HANDSHAKE_SECONDS``, is closed
  quietly: a client whose command was refused closes the data connection it had opened.
  Nothing is said on the control connection then: when the port times out with no right
  connection after a refused session from the client's own address, the reply is the
  522 above (the client does not resume sessions).
- Nothing is sent on a data connection before its handshake is done.
- An upload is received only when the client ended the data connection with its TLS
  close_notify (every byte it meant to send has arrived); otherwise it is interrupted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from OpenSSL import SSL
from pyftpdlib.handlers import TLS_DTPHandler
from pyftpdlib.handlers.ftp.data import DTPHandler
from pyftpdlib.handlers.ftp.dispatchers import PassiveDTP
from pyftpdlib.ioloop import AsyncChat

from intake.adapters.keys import TlsPair, read_tls_pair
from intake.core import messages
from intake.core.errors import Denied, IntakeError, StartupError
from intake.core.messages import Say
from intake.core.model import Account
from intake.frontends.ftps.filesystem import CUT_REASON, UploadFile
from intake.services.files import FileSession

log = logging.getLogger("intake.ftps")
CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20"
TLS_SESSION_SECONDS = 24 * 3600  # the control connection's session must outlive its transfers
HANDSHAKE_SECONDS = 10.0  # a connection to a passive port must finish its TLS handshake
READ_AHEAD = 256 * 1024  # bytes one read event of an upload takes from records already arrived
MAX_WAITING = 8  # connections to one passive port in their handshake at once
NOT_RESUMED = "data connection did not resume a TLS session of this client"
REUSE_REQUIRED = (
    "522 Data connection must resume the TLS session of the control connection"
    " (session reuse required)."
)


@dataclass(frozen=True)
class TlsMaterial:
    """A certificate chain and its key, read once, checked to match."""

    pair: TlsPair

    @property
    def fingerprint(self) -> str:
        return self.pair.fingerprint

    @classmethod
    def load(cls, cert: Path, key: Path) -> TlsMaterial:
        """Read and check both files; ``StartupError`` (naming them) if they are unusable."""
        try:
            material = cls(read_tls_pair(cert, key))
            material.context()  # the key must match the certificate
        except StartupError as exc:
            raise StartupError(f"ftps: {exc}") from None
        except SSL.Error as exc:
            raise StartupError(f"ftps: cannot use {cert} and {key}: {exc}") from None
        return material

    def context(self) -> SSL.Context:
        """A fresh server context: its own session cache and random ticket keys."""
        ctx = _base_context()
        ctx.use_certificate(self.pair.chain[0])
        for extra in self.pair.chain[1:]:
            ctx.add_extra_chain_cert(extra)
        ctx.use_privatekey(self.pair.key)  # type: ignore[arg-type]
        ctx.check_privatekey()
        return ctx


def _base_context() -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(
        SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | getattr(SSL, "OP_NO_RENEGOTIATION", 0)
    )
    ctx.set_cipher_list(CIPHERS)
    ctx.set_session_id(os.urandom(16))
    ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    ctx.set_timeout(TLS_SESSION_SECONDS)
    return ctx


ROTATE_SECONDS = 3600  # a server context (and its ticket keys) serves new connections this long


class TlsContexts:
    """The server context new connections use: replaced every ``ROTATE_SECONDS``, and at
    once when the certificate is replaced (``use``)."""

    def __init__(self, material: TlsMaterial, rotate: float = ROTATE_SECONDS) -> None:
        self._material = material
        self._rotate = rotate
        self._lock = threading.Lock()
        self._context: SSL.Context | None = None
        self._born = 0.0

    def use(self, material: TlsMaterial) -> None:
        with self._lock:
            self._material = material
            self._context = None

    def current(self) -> SSL.Context:
        with self._lock:
            now = time.monotonic()
            if self._context is None or now - self._born >= self._rotate:
                self._context = self._material.context()
                self._born = now
            return self._context


class SessionOwners:
    """Whose TLS session each live control connection holds: (master key, address, account).

    A control connection is added when its TLS handshake ends (account still unknown) and
    gets its account at login. rclone may open two control connections at once and offer
    the second one's ticket on the first one's data connection before the second has
    logged in: ``belongs`` then waits (briefly) for that login instead of refusing.
    """

    WAIT_SECONDS = 5.0

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._owners: dict[int, tuple[bytes, str, str | None]] = {}  # id(control) -> owner

    def add(self, control: object, master_key: bytes, ip: str, account: str | None) -> None:
        with self._changed:
            self._owners[id(control)] = (master_key, ip, account)
            self._changed.notify_all()

    def discard(self, control: object) -> None:
        with self._changed:
            self._owners.pop(id(control), None)
            self._changed.notify_all()

    def belongs(self, master_key: bytes, account: str, ip: str) -> bool:
        """True if ``master_key`` is the session of a live control of ``account`` at ``ip``."""
        deadline = time.monotonic() + self.WAIT_SECONDS
        with self._changed:
            while True:
                owners = [o for o in self._owners.values() if o[:2] == (master_key, ip)]
                if any(o[2] == account for o in owners):
                    return True
                pending = any(o[2] is None for o in owners)
                left = deadline - time.monotonic()
                if not pending or left <= 0:
                    return False
                self._changed.wait(left)


class ControlConnection(Protocol):
    """What a data connection reads of its control connection (``server.ControlChannel``).

    A protocol, not an import: the control module imports this one, never the reverse.
    """

    socket: Any  # pyOpenSSL's SSL.Connection once TLS is up
    account: Account | None
    files: FileSession | None
    remote_ip: str
    require_session_reuse: bool
    tls_sessions: SessionOwners
    end_reason: str

    def refuse_data_connection(self, ip: str, reason: str) -> None:
        """A connection to this client's passive port that is not its data connection."""


class DataListener(PassiveDTP):  # type: ignore[misc]
    """The passive port of one PASV/EPSV: hands its client's data connection over, and only it.

    pyftpdlib's ``PassiveDTP`` answers a connection from another address with a 425 on
    the control connection (the client's transfer fails) and gives the port to the first
    connection from the client's address, before any TLS. Here every connection from the
    client's address becomes a waiting ``DataChannel``; the first whose TLS session
    proves it is the client's is handed over (and the port closed); any other is closed
    and reported to the control connection (``refuse_data_connection``).
    """

    def __init__(self, cmd_channel: Any, extmode: bool = False) -> None:
        self.waiting: list[DataChannel] = []
        self.refused_session = False
        super().__init__(cmd_channel, extmode)

    def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
        control = self.cmd_channel
        ip = str(addr[0])
        if not control.connected:
            sock.close()
            self.close()
            return
        if ip != control.remote_ip:
            control.refuse_data_connection(ip, "connection to another client's passive port")
            sock.close()
            return
        if not (control._prot and control.require_session_reuse):
            super().handle_accepted(sock, addr)  # the session is not what decides
            return
        if len(self.waiting) >= MAX_WAITING:
            control.refuse_data_connection(ip, "too many data connections in their handshake")
            sock.close()
            return
        channel = self.cmd_channel.dtp_handler(sock, control, self)
        if not channel._closed:
            self.waiting.append(channel)

    def hand_over(self, channel: DataChannel) -> bool:
        """``channel`` proved its session: it becomes the data connection, the port closes."""
        control = self.cmd_channel
        if self._closed or not control.connected or control._dtp_acceptor is not self:
            return False
        self.waiting.remove(channel)
        others, self.waiting = self.waiting, []
        for other in others:  # a client opens one data connection per PASV: not its own
            other.drop("another connection to the passive port, once the data connection came")
        self.close()
        control.data_channel = channel
        control._on_dtp_connection()
        return True

    def handle_timeout(self) -> None:
        control = self.cmd_channel
        if self.refused_session and control.connected and not self._closed:
            control.respond(REUSE_REQUIRED, logfun=log.info)
            self.close()
            return
        super().handle_timeout()

    def close(self) -> None:
        waiting, self.waiting = self.waiting, []
        for channel in waiting:
            channel.drop(None)
        super().close()


class DataChannel(TLS_DTPHandler):  # type: ignore[misc]
    """A data connection: must resume its control session; tells finished from cut uploads.

    Made by a ``DataListener`` it waits (``listener`` set) until its handshake: handed
    over if its session is the client's, else dropped (``drop``) without a word on the
    control connection and without touching its transfer.
    """

    def __init__(
        self,
        sock: socket.socket,
        cmd_channel: ControlConnection,
        listener: DataListener | None = None,
    ) -> None:
        self._refusal: str | None = None
        self._settled = False
        self._close_notified = False  # met by a read-ahead (``_read_ahead``)
        self._listener = listener
        self._handshake_timer: Any = None
        super().__init__(sock, cmd_channel)
        if listener is not None and not self._closed:
            self._handshake_timer = self.ioloop.call_later(
                HANDSHAKE_SECONDS, self._handshake_expired, _errback=self.handle_error
            )

    def _handshake_expired(self) -> None:
        if self._listener is not None:
            self.drop(None)  # like a close before the handshake: see ``close``

    def drop(self, reason: str | None) -> None:
        """Close a connection that never became the data connection; with ``reason``, it
        is refused (audited and scored against its address by the control connection)."""
        listener, self._listener = self._listener, None
        self._settled = True
        if self._handshake_timer is not None and not self._handshake_timer.cancelled:
            self._handshake_timer.cancel()
        if self._idler is not None and not self._idler.cancelled:
            self._idler.cancel()
        if listener is not None:
            if self in listener.waiting:
                listener.waiting.remove(self)
            if reason is not None:  # recorded before the client sees the connection end
                if reason == NOT_RESUMED:
                    listener.refused_session = True
                self.cmd_channel.refuse_data_connection(self.cmd_channel.remote_ip, reason)
        AsyncChat.close(self)  # the socket only: nothing said, no transfer touched

    def handle_ssl_established(self) -> None:
        control: ControlConnection = self.cmd_channel
        key = self.socket.master_key()
        if self._handshake_timer is not None and not self._handshake_timer.cancelled:
            self._handshake_timer.cancel()
        if (
            control.require_session_reuse
            and key != control.socket.master_key()
            and not (
                control.account is not None
                and control.tls_sessions.belongs(key, control.account.name, control.remote_ip)
            )
        ):
            if self._listener is not None:  # waiting: not the client's; the port waits on
                self.drop(NOT_RESUMED)
                return
            self._refusal = NOT_RESUMED
            if control.files is not None:
                control.files.refused("data connection", self._refusal)
            self._resp = (
                "522 Data connection must resume the TLS session of the control connection"
                " (session reuse required).",
                log.info,
            )
            self.close()
            return
        listener, self._listener = self._listener, None
        if listener is not None and not listener.hand_over(self):
            self._listener = listener
            self.drop(None)  # the port was closed meanwhile (new PASV, control gone)
            return
        if not self.receive and self.producer_fifo:
            self.initiate_send()  # what waited for the handshake (see ``initiate_send``)

    def handle_failed_ssl_handshake(self) -> None:
        if self._listener is not None:
            self.drop("TLS handshake failed on the data connection")
            return
        super().handle_failed_ssl_handshake()

    def initiate_send(self) -> None:
        # pyftpdlib starts sending (and, for an empty listing or file, closes) as soon as
        # the transfer is queued, before the TLS handshake ends: the client then sees a
        # connection cut in its handshake. Nothing is sent before the handshake is done.
        if self._ssl_requested and not self._ssl_established:
            return
        super().initiate_send()

    def send(self, data: bytes) -> int:
        if not data:  # SSL_write of nothing reads as a broken connection to pyftpdlib
            return 0
        sent: int = super().send(data)
        return sent

    def recv(self, buffer_size: int) -> bytes:
        try:
            data: bytes = super().recv(buffer_size)
        except SSL.Error:
            # OpenSSL 3 reports a TCP close without close_notify as an error: a cut upload.
            DTPHandler.handle_close(self)
            return b""
        if data and self.receive and self._ssl_established:
            data = self._read_ahead(data)
        return data

    def _read_ahead(self, first: bytes) -> bytes:
        """The TLS records that already arrived after ``first``, up to ``READ_AHEAD``
        bytes: one read returns one record (16 KiB), so one file write and one loop turn
        per 16 KiB become one per ``READ_AHEAD``. Stops at the first record not there yet;
        a close_notify met here is acted on once this data is written
        (``handle_read_event``); any other error is met again by the next read."""
        parts = [first]
        got = len(first)
        while got < READ_AHEAD:
            try:
                more = self.socket.recv(READ_AHEAD - got)
            except SSL.ZeroReturnError:
                self._close_notified = True
                break
            except (SSL.Error, OSError):
                break
            if not more:
                break
            parts.append(more)
            got += len(more)
        return first if len(parts) == 1 else b"".join(parts)

    def handle_read_event(self) -> None:
        super().handle_read_event()
        if self._close_notified and not self._closed:
            self._close_notified = False
            DTPHandler.handle_close(self)  # what pyftpdlib does when a read meets it

    def _clean_end(self) -> bool:
        """True once the client sent its TLS close_notify: every byte it meant has arrived."""
        sock = self.socket
        if not self._ssl_established or not isinstance(sock, SSL.Connection):
            return False
        return bool(sock.get_shutdown() & SSL.RECEIVED_SHUTDOWN)

    def _settle(self) -> None:
        upload = self.file_obj
        if not isinstance(upload, UploadFile) or upload.closed:
            return
        # pyftpdlib answers 226 to any end of a receiving connection; only a clean end is one.
        said_complete = bool(self._resp) and self._resp[0].startswith("226")
        if self._refusal is None and self.receive and self._clean_end():
            try:
                upload.commit()
            except Denied:
                self.transfer_finished = False
                self._resp = (f"550 {messages.text(Say.EXISTS)}.", log.info)
            except IntakeError:  # audited as upload.interrupted by the session
                self.transfer_finished = False
                self._resp = (f"451 {messages.text(Say.FAILED)}.", log.warning)
            except Exception:
                log.exception("ftps: storing %s failed", upload.name)
                upload.abort("the server could not store the file")
                self.transfer_finished = False
                self._resp = (f"451 {messages.text(Say.FAILED)}.", log.warning)
            return
        upload.abort(self._refusal or self.cmd_channel.end_reason or CUT_REASON)
        self.transfer_finished = False
        if said_complete:
            self._resp = (f"426 {messages.text(Say.INTERRUPTED)}.", log.info)

    def close(self) -> None:
        if self._listener is not None:  # waiting: closed before it proved its session
            # Not refused: a client whose command was refused (550) closes the data
            # connection it had opened, before any handshake (rclone does).
            self.drop(None)
            return
        if not self._settled and not self._closed:
            self._settled = True
            try:
                self._settle()
            except Exception:
                log.exception("ftps: ending a data connection failed")
        super().close()

    def handle_error(self) -> None:
        upload = self.file_obj
        if isinstance(upload, UploadFile) and upload.refused_by_limit:
            # A limit (file size, quota, hole): 552 is FTP's "exceeded storage allocation".
            self._resp = (f"552 {upload.failure_text}.", log.info)  # the audit names it
        elif isinstance(upload, UploadFile) and upload.failed:
            # The disk failed, not TLS: end the connection with a close_notify, so the
            # client keeps its TLS session usable for the next data connection.
            self._resp = (f"451 {upload.failure_text}.", log.info)
        else:
            self._error = True
            log.warning("ftps: data connection error", exc_info=True)
            if not self._resp:
                self._resp = (f"426 {messages.text(Say.INTERRUPTED)}.", log.info)
        self.close()
