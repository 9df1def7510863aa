"""The FTPS front-end (pyftpdlib): explicit FTPS over the same accounts, rules and audit as SFTP.

Thin: each FTP command goes through ``SessionFS`` (``filesystem.py``) to the session's
``FileSession``; pyftpdlib's permission letters are never consulted for a rule. TLS and
the data connection live in ``tls.py``.

Rules (docs/pitfalls.md says why each exists):
- TLS on the control AND data connections: ``USER``/``PASS`` before ``AUTH TLS`` get a 530
  (the password is never read; the attempt is a ``login.failed``), ``PASV``/``PORT``
  before ``PROT P`` a 550. TLS 1.2 with session tickets; data connections must resume a
  TLS session of the same client (``[ftps] require_session_reuse``, on by default; the
  rule is in ``tls.py``).
- ``PORT``/``EPRT`` to another address than the client's is refused (no FTP bounce) and
  audited as ``denied``; passive ports come from ``passive_ports``; ``masquerade_address``
  is announced in PASV replies.
- An upload is received only when its data connection ended with the client's TLS
  close_notify; otherwise (killed client, cut network, ABOR, timeout, server stop) it is
  ``upload.interrupted``. A resumed upload (``REST`` then ``STOR``) is refused; ``APPE``
  onto an existing file is an overwrite, refused by ``FileSession``; ``STOU`` and
  ``REIN`` are not served; ``SITE CHMOD`` is refused as an attribute change.
- ``MFMT YYYYMMDDHHMMSS[.fff] path`` (FileZilla's "preserve timestamps") and ``SITE UTIME``
  (``SITE UTIME YYYYMMDDHHMM[SS] path`` or ``SITE UTIME path atime mtime ctime UTC``) set
  a file's times through ``FileSession.set_times``; times are UTC.
- Every connection runs in its own thread with its own pyftpdlib IOLoop: a password hash,
  a TLS handshake or the fsync of a finished upload never stalls another client. The
  guard admits each connection first (bans and caps shared with SFTP); a login deadline
  runs from ``accept`` (NOOP does not extend it); ``idle_timeout`` applies after login.
- A connection that ends without a login is a ``login.failed``: nothing tried or a
  failed TLS handshake (a client that refused the certificate) costs a tenth of a
  failure and is audited per network and minute by the guard, an eviction costs
  nothing; a blocked address gets ``421`` saying until when (Paris time). A
  logged-in session is registered with the instance's ``Sessions``; a reload that voids
  its login ends it from its own thread (its open upload becomes interrupted).
- No class attribute of pyftpdlib is changed: ``FtpsService`` builds its own handler
  subclass, and pyftpdlib's global IOLoop and its logging setup are never used.
- Every reply text comes from ``intake.core.messages`` in ``[server] lang``: intake's
  own replies name a ``Say``; pyftpdlib's English ones are replaced in ``respond``
  (``replies.translate``); the code is never changed.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop

from intake.adapters.audit.writer import display
from intake.adapters.keys import TLS_CERT_FILE, TLS_KEY_FILE
from intake.adapters.logs import oplog
from intake.core import messages
from intake.core.config import FtpsSection, Listen
from intake.core.errors import AuditUnavailable, IntakeError, StartupError
from intake.core.messages import Say
from intake.core.model import Account
from intake.frontends.ftps import replies
from intake.frontends.ftps.filesystem import SessionFS
from intake.frontends.ftps.tls import (
    DataChannel,
    DataListener,
    SessionOwners,
    TlsContexts,
    TlsMaterial,
)
from intake.frontends.listener import Handler, ThreadedListener
from intake.services.access.guard import Refusal, Slot
from intake.services.access.sessions import Credential, LiveSession
from intake.services.files import FileSession
from intake.services.instance import Instance

log = logging.getLogger("intake.ftps")
PROTOCOL = "ftps"
POLL_SECONDS = 0.5
PARIS = ZoneInfo("Europe/Paris")


class _Rules:
    """pyftpdlib's authorizer slot: allows every letter, because ``FileSession`` decides."""

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        return True

    def get_perms(self, username: str) -> str:
        return "elr"

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        pass

    def terminate_impersonation(self, username: str) -> None:
        pass


class ControlChannel(TLS_FTPHandler):  # type: ignore[misc]
    """One FTPS control connection. ``FtpsService`` subclasses it with its settings."""

    # Set by FtpsService on its own subclass (never on this class).
    instance: Instance
    tls: TlsMaterial  # replaced whole at SIGHUP (``FtpsService.reload_tls``)
    contexts: TlsContexts  # the server context of new connections (rotated, ``tls``)
    tls_sessions: SessionOwners  # whose TLS session each live control connection holds
    login_timeout = 30
    require_session_reuse = True
    lang = "fr"  # ``[server] lang``: the language of every reply
    # pyftpdlib's own instance state, declared for the type checker.
    authenticated: bool
    username: str
    _restart_position: int

    tls_control_required = True
    tls_data_required = True
    dtp_handler = DataChannel
    passive_dtp = DataListener
    abstracted_fs = SessionFS
    authorizer = _Rules()
    banner = ""  # ``[server] banner``, set by FtpsService
    permit_foreign_addresses = False
    permit_privileged_ports = False
    use_sendfile = False
    max_login_attempts = 3
    proto_cmds = {
        **{
            cmd: spec
            for cmd, spec in TLS_FTPHandler.proto_cmds.items()
            if cmd not in ("REIN", "STOU")
        },
        # perm None: pyftpdlib leaves the argument alone (it holds times and a path).
        "SITE UTIME": {
            "perm": None,
            "auth": True,
            "arg": True,
            "help": "Syntax: SITE UTIME <SP> YYYYMMDDHHMMSS <SP> path (set modification time).",
        },
    }

    @classmethod
    def get_ssl_context(cls) -> Any:
        return cls.contexts.current()

    def __init__(self, conn: socket.socket, server: Any, ioloop: Any = None) -> None:
        self.files: FileSession | None = None
        self.account: Account | None = None
        self.end_reason = ""
        self.accepted = time.monotonic()
        self.slot: Slot | None = None
        self.live: LiveSession | None = None
        self.kick: str | None = None  # set from another thread: end with this reason
        self._tried: str | None = None
        self._login_audited = False
        self._finished = False
        super().__init__(conn, server, ioloop)
        # MLSD/MLST give the mode LIST shows (FileZilla and lftp display it).
        if "unix.mode" not in self._current_facts:
            self._current_facts.append("unix.mode")

    # -- connection life -------------------------------------------------------------

    def handle(self) -> None:
        remaining = max(0.1, self.login_timeout - (time.monotonic() - self.accepted))
        self.call_later(remaining, self._login_expired)
        self.on_connect()
        if not self._closed and not self._closing:
            # A multi-line 220: every line but the last "220-", the last "220 ".
            for line in self.banner.splitlines():
                if line.strip():
                    self.push(f"220-{line.strip()}\r\n")
            self.reply(220, Say.WELCOME)

    def _login_expired(self) -> None:
        if self.authenticated or self._closed:
            return
        self._login_audited = True
        self.instance.auth.failed_session(self._tried, self.remote_ip, PROTOCOL, "login timeout")
        if self._ssl_accepting:
            self.close()
            return
        self.reply(421, Say.LOGIN_TIMEOUT)
        self.close_when_done()

    def _kick(self, reason: str) -> None:
        """End this session (from any thread): its own loop closes it within a poll."""
        self.kick = reason

    def handle_timeout(self) -> None:
        self.end_reason = "idle timeout"
        super().handle_timeout()

    def finish(self, reason: str = "") -> None:
        """The connection is over: open uploads are interrupted, a login never made is audited."""
        if self._finished:
            return
        self._finished = True
        if self.live is not None:
            self.instance.sessions.unregister(self.live)
        self.tls_sessions.discard(self)
        if self.files is not None:
            self.files.end(reason or self.end_reason or "connection closed before the upload ended")
        elif self._tried is not None and not self._login_audited:
            self.instance.auth.failed_session(
                self._tried, self.remote_ip, PROTOCOL, "connection closed before login"
            )
        elif not self._login_audited:
            self._login_audited = True
            evicted = self.slot is not None and self.slot.evicted
            why = (
                "evicted: too many unauthenticated connections"
                if evicted
                else ("closed without trying to log in")
            )
            self.instance.auth.no_login(self.remote_ip, PROTOCOL, why, evicted=evicted)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._closed:
                self.finish()

    def handle_ssl_established(self) -> None:
        # Known before the login, so a data connection of this client's other control
        # connection may wait for the login rather than be refused (``SessionOwners``).
        self.tls_sessions.add(self, self.socket.master_key(), self.remote_ip, None)
        super().handle_ssl_established()

    # -- replies: every text from the message table ----------------------------------

    def respond(self, resp: str, logfun: Any = log.debug) -> None:
        super().respond(replies.translate(resp, self.lang), logfun)

    def reply(self, code: int, say: Say) -> None:
        """Send ``code`` with the table's text for ``say`` in ``[server] lang``."""
        self.respond(f"{code} {replies.text(say, self.lang)}")

    def refuse_data_connection(self, ip: str, reason: str) -> None:
        """A connection to this client's passive port that is not its data connection
        (``tls.DataListener``): audited ``denied`` and scored against its address, once
        that address is not already banned (so a blocked source adds no more records)."""
        gate = self.instance.auth.gate
        if gate.banned(ip):
            return
        try:
            if ip == self.remote_ip and self.files is not None:
                self.files.refused("data connection", reason)
            else:
                self.instance.audit.record(
                    "denied", ip=ip, protocol=PROTOCOL, operation="data connection", reason=reason
                )
            gate.login_failed(ip, PROTOCOL)
        except AuditUnavailable as exc:  # the connection is closed all the same
            log.error("ftps: %s", exc)

    # -- commands --------------------------------------------------------------------

    def process_command(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        if cmd in ("USER", "PASS") and not self._ssl_established:
            self.reply(530, Say.TLS_REQUIRED)
            if cmd == "USER" and not self._login_audited:
                self._login_audited = True
                self.instance.auth.failed_session(
                    args[0], self.remote_ip, PROTOCOL, "login without TLS refused", attempted=False
                )
            return
        super().process_command(cmd, *args, **kwargs)

    def ftp_USER(self, line: str) -> None:
        if self.authenticated:
            self.reply(503, Say.ALREADY_LOGGED_IN)
            return
        self._tried = line
        super().ftp_USER(line)

    def ftp_PASS(self, line: str) -> None:
        if self.authenticated:
            self.reply(503, Say.ALREADY_LOGGED_IN)
            return
        if not self.username:
            self.reply(503, Say.USER_FIRST)
            return
        # Runs in this connection's own thread: the hash never stalls another client.
        account = self.instance.auth.password(self.username, line, self.remote_ip, PROTOCOL)
        if account is None:
            self._login_audited = True
            self.handle_auth_failed("", "")  # pyftpdlib's 530, its text from the table
            return
        self._login_audited = True
        if self.slot is not None:
            self.slot.logged_in()
        session = oplog.current()  # this connection's own thread
        if session is not None:
            session.bind(account=account.name)
        try:
            self.instance.auth.succeeded(account, self.remote_ip, PROTOCOL, "password")
        except AuditUnavailable as exc:  # fail closed: no record, no session
            log.error("ftps login of %s refused: %s", display(account.name), exc)
            self.reply(421, Say.UNAVAILABLE)
            self.close_when_done()
            return
        self.account = account
        token = self.instance.accounts.credential_token(account.name, "password")
        self.live = LiveSession(
            Credential(account.name, "password", token), self.remote_ip, PROTOCOL, self._kick
        )
        self.instance.sessions.register(self.live)
        self.files = FileSession(
            account,
            self.remote_ip,
            PROTOCOL,
            self.instance.storage,
            self.instance.audit,
            self.instance.listeners,
            receipts=self.instance.receipts,
            budget=self.instance.budget,
        )
        self.tls_sessions.add(self, self.socket.master_key(), self.remote_ip, account.name)
        self.authenticated = True
        self.attempted_logins = 0
        self.fs = self.abstracted_fs("/", self)
        self.reply(230, Say.LOGGED_IN)

    def ftp_STOR(self, file: str, mode: str = "w") -> str | None:
        if self._restart_position:
            self._restart_position = 0
            if self.files is not None:
                self.files.refused("upload", "resume refused: an upload starts at byte 0", file)
            self.reply(554, Say.RESUME)
            return None
        result: str | None = super().ftp_STOR(file, mode)
        return result

    def _set_mtime(self, path: str, when: str, atime: str | None = None) -> str | None:
        """Set ``path``'s times from FTP time values; the reply's text, or None if refused."""
        if self.files is None:  # pyftpdlib sends MFMT/SITE only after a login; never trust it
            self.reply(530, Say.NOT_LOGGED_IN)
            return None
        try:
            mtime_ns = parse_ftp_time(when)
            atime_ns = None if atime is None else parse_ftp_time(atime)
        except ValueError:
            self.reply(501, Say.BAD_TIME)
            return None
        try:
            self.files.set_times(path, atime_ns, mtime_ns)
        except IntakeError as exc:
            self.respond(f"550 {messages.for_error(exc, self.lang)}.")
            return None
        return time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime_ns // 1_000_000_000))

    def ftp_MFMT(self, path: str, timeval: str) -> None:
        done = self._set_mtime(path, timeval)
        if done is not None:
            self.respond(f"213 Modify={done}; {path}")

    def ftp_SITE_UTIME(self, line: str) -> None:
        words = line.split()
        if len(words) >= 5 and words[-1].upper() == "UTC":
            # SITE UTIME path atime mtime ctime UTC (the path may hold spaces)
            path, atime, mtime = " ".join(words[:-4]), words[-4], words[-3]
        elif len(words) >= 2:
            atime, mtime, path = None, words[0], line.split(" ", 1)[1].strip()
        else:
            self.reply(501, Say.BAD_TIME)
            return
        if self._set_mtime(self.fs.ftpnorm(path), mtime, atime) is not None:
            self.reply(200, Say.TIMES_SET)

    def ftp_MLSD(self, path: str) -> str | None:
        # pyftpdlib answers 501 for a missing folder; clients (rclone) expect 550 for
        # "not there" (501 stays for a file, as RFC 3659 says).
        if not self.fs.lexists(path):
            self.reply(550, Say.NOT_FOUND)
            return None
        listed: str | None = super().ftp_MLSD(path)
        return listed

    def ftp_RMD(self, path: str) -> None:
        try:
            self.fs.rmdir(path)
        except Exception as exc:
            self.respond(f"550 {exc}.")

    def _make_eport(self, ip: str, port: int) -> None:
        remote = self.remote_ip.removeprefix("::ffff:")
        if ip != remote and self.files is not None:
            self.files.refused("port", f"active data connection to {ip}:{port} (FTP bounce)")
        super()._make_eport(ip, port)


def parse_ftp_time(value: str) -> int:
    """An FTP time value (``YYYYMMDDHHMM[SS][.fff]``, UTC) as nanoseconds since the epoch."""
    whole, _, fraction = value.partition(".")
    if not whole.isdigit() or len(whole) not in (12, 14) or (fraction and not fraction.isdigit()):
        raise ValueError(value)
    when = datetime.strptime(whole.ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return int(when.timestamp()) * 1_000_000_000 + nanos


class _ServerView:
    """What pyftpdlib's handlers read from their "server", per connection: no shared state."""

    def __init__(self, client: socket.socket) -> None:
        self.socket = client  # PassiveDTP reads its address family
        self.backlog = 5
        self.ip_map: list[str] = []  # pyftpdlib's per-IP count; the guard does it here

    def _accept_new_cons(self) -> bool:
        return True


def _refuse(client: socket.socket, refusal: Refusal, lang: str = "fr") -> None:
    if refusal.until is not None:
        until = refusal.until.astimezone(PARIS)
        text = messages.text(Say.BLOCKED, lang).format(
            time=until.strftime("%H:%M:%S"), date=until.strftime("%d/%m/%Y")
        )
        client.sendall(f"421 {text}.\r\n".encode())
        return
    client.sendall(f"421 {replies.text(Say.UNAVAILABLE, lang)}\r\n".encode())


class FtpsService:
    """Each connection runs in its own thread (the shared listener), with its own IOLoop."""

    def __init__(
        self, instance: Instance, settings: FtpsSection, hand_off: Handler | None = None
    ) -> None:
        """``hand_off``: the supervisor's (admitted connections go to worker processes)."""
        self._instance = instance
        self._settings = settings
        self._handler: type[ControlChannel] | None = None
        self._listener = ThreadedListener(
            "ftps",
            instance.guard,
            self._run,
            refuse=lambda client, refusal: _refuse(client, refusal, instance.config.server.lang),
            metrics=instance.metrics if hand_off is None else None,
            hand_off=hand_off,
        )

    def _tls_material(self) -> TlsMaterial:
        keys = self._instance.config.keys_dir
        return TlsMaterial.load(keys / TLS_CERT_FILE, keys / TLS_KEY_FILE)

    def _handler_class(self) -> type[ControlChannel]:
        low, high = self._settings.passive_ports
        material = self._tls_material()
        attributes = {
            "instance": self._instance,
            "tls": material,
            "contexts": TlsContexts(material),
            "tls_sessions": SessionOwners(),
            "login_timeout": self._settings.login_timeout,
            "timeout": self._settings.idle_timeout,
            "require_session_reuse": self._settings.require_session_reuse,
            "lang": self._instance.config.server.lang,
            "banner": self._instance.config.server.banner,
            "passive_ports": range(low, high + 1),
            "masquerade_address": self._settings.masquerade_address or None,
        }
        return type("IntakeControlChannel", (ControlChannel,), attributes)

    def bind(self, listen: Listen) -> tuple[str, int]:
        """Check the TLS files and bind, accepting nothing yet."""
        if self._handler is None:
            self._handler = self._handler_class()
        return self._listener.bind(listen)

    def start(self, listen: Listen) -> tuple[str, int]:
        self.bind(listen)
        return self._listener.start(listen)

    def alive(self) -> bool:
        return self._listener.alive()

    def prepare(self) -> None:
        """A worker process: load the TLS pair, serve what ``adopt`` gives."""
        if self._handler is None:
            self._handler = self._handler_class()

    def adopt(self, client: socket.socket, slot: Slot) -> None:
        self._listener.adopt(client, slot)

    def reload_tls(self) -> str:
        """Read the certificate and key again; new connections use them, open ones keep theirs.

        Returns the new certificate's fingerprint; ``StartupError`` (old pair kept) if the
        new files do not load or do not match.
        """
        material = self._tls_material()
        if self._handler is None:
            raise StartupError("ftps: reload before start")
        self._handler.tls = material
        self._handler.contexts.use(material)
        return material.fingerprint

    def _run(self, client: socket.socket, slot: Slot) -> None:
        if self._handler is None:  # start() sets it before the listener accepts
            client.close()
            return
        stopping = self._listener.stopping
        ioloop = IOLoop()
        handler: ControlChannel | None = None
        try:
            handler = self._handler(client, _ServerView(client), ioloop=ioloop)
            handler.accepted = slot.accepted
            handler.slot = slot
            if handler.connected:
                handler.handle()
            wait = POLL_SECONDS
            # A failed login takes the control channel out of the loop for a few seconds
            # (pyftpdlib's delay before its 530): keep running the timers meanwhile.
            while (ioloop.socket_map or not handler._closed) and not stopping.is_set():
                if handler.kick is not None and not handler._closed:
                    handler.end_reason = handler.kick
                    handler.close()
                    continue
                if ioloop.socket_map:
                    ioloop.poll(wait)
                else:
                    time.sleep(wait)
                soonest = ioloop.sched.poll()
                wait = POLL_SECONDS if soonest is None else max(0.0, min(POLL_SECONDS, soonest))
        finally:
            if handler is not None and stopping.is_set():
                handler.end_reason = "server shutting down"
            ioloop.close()
            if handler is not None:
                handler.finish()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, end every session (open uploads become interrupted), wait."""
        self._listener.stop_accepting()
        self._listener.join(timeout)
