"""The SFTP front-end: connections, logins, channels (paramiko; with ``files``, its seam).

Thin: each SFTP request becomes one ``FileSession`` call, each exception one status code
with a generic text; the detail goes to the audit log (``intake.services.files``).

Rules (docs/pitfalls.md says why each exists):
- Only the ``sftp`` subsystem on ``session`` channels; shell, exec, pty, x11, agent and
  port forwarding (both directions) are refused and audited as ``denied``.
- Offered: AES-GCM first, then AES-CTR with encrypt-then-MAC SHA-2 MACs only; key
  exchange ML-KEM-768+X25519 (post-quantum hybrid), Curve25519, DH group 16: no NIST
  curves, no group exchange (it needs a moduli file paramiko's server does not have);
  ed25519 host key first, RSA with SHA-2 only. ``tests/test_outside_audits.py`` runs
  ssh-audit against this.
- Bounded after login as before it: an SSH packet longer than ``MAX_PACKET`` (OpenSSH's
  256 KiB) ends the connection before its body is read (``CappedPacketizer``), a client
  that sends channel data beyond the window it was given is cut, and extended data
  (stderr) from a client is dropped (paramiko would buffer both without bound).
- Login deadline counted from ``accept`` (``[sftp] login_timeout``), a cap on the bytes a
  client may send before it is authenticated (``max_prelogin_bytes``), an idle timeout
  after login; a banned or over-limit address is refused before paramiko sees a byte.
- A connection that ends without a login is a ``login.failed``: one failure for a user
  name tried (a timeout, no accepted credentials), a tenth of one for nothing tried (a
  bare banner, a failed negotiation, a host key the client refused: audited per network
  and minute by the guard), nothing for an eviction by the guard.
- Before authentication paramiko's log lines go to the listener's noise summary (one
  line per address and interval, never a traceback).
- ``login.ok`` is written once the transport is authenticated (a key probe is no login);
  the session is then registered with the instance's ``Sessions``, so a reload ends it
  when its account is disabled or its credential changes.
- File requests are translated in ``intake.frontends.sftp.files``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    MSG_CHANNEL_DATA,
    MSG_CHANNEL_EXTENDED_DATA,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.packet import Packetizer

from intake.adapters.audit.writer import display
from intake.adapters.keys import HOST_KEY_FILES
from intake.adapters.logs import oplog
from intake.adapters.logs.noise import TransportLog
from intake.core.config import Listen, SftpSection
from intake.core.errors import AuditUnavailable, StartupError
from intake.core.model import Account
from intake.frontends.listener import Handler, ThreadedListener
from intake.frontends.sftp.files import (
    PROTOCOL,
    IntakeSFTPInterface,
    IntakeSFTPServer,
    SftpConnection,
)
from intake.frontends.sftp.pipe import take_over
from intake.services.access.guard import Slot
from intake.services.access.sessions import Credential, LiveSession
from intake.services.files import FileSession
from intake.services.instance import Instance

log = logging.getLogger("intake.sftp")
DISABLED_ALGORITHMS = {
    "ciphers": ["aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"],
    "macs": ["hmac-sha1", "hmac-md5", "hmac-sha1-96", "hmac-md5-96"],
    "keys": ["ssh-rsa", "ssh-dss"],
    "pubkeys": ["ssh-rsa", "ssh-dss"],
}
PREFERRED_KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
)
PREFERRED_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")
MAX_PACKET = 256 * 1024  # OpenSSH's PACKET_MAX_SIZE
_PACKET_MARGIN = 256  # padding length, MAC and the first block read with the length
PREFERRED_CIPHERS = (
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
MAX_CHANNELS = 4
WINDOW_SIZE = 8 * 1024 * 1024  # paramiko's 2 MiB stalls OpenSSH's 64 outstanding writes
MAX_COMMAND = 200  # bytes of a refused exec command kept in its audit record


def load_host_keys(keys_dir: Path) -> list[paramiko.PKey]:
    """The instance's host keys, ed25519 first; ``StartupError`` if one cannot be read."""
    loaders: dict[str, Callable[[str], paramiko.PKey]] = {
        "ssh-ed25519": paramiko.Ed25519Key.from_private_key_file,
        "ssh-rsa": paramiko.RSAKey.from_private_key_file,
    }
    found = []
    for kind, filename in HOST_KEY_FILES.items():
        path = keys_dir / filename
        if not path.exists():
            continue
        try:
            found.append(loaders[kind](str(path)))
        except (OSError, paramiko.SSHException) as exc:
            raise StartupError(f"cannot read host key {path}: {exc}") from None
    if not found:
        raise StartupError(f"no SSH host key in {keys_dir}; run intake init")
    return found


def _authenticated(transport: paramiko.Transport) -> bool:
    """Authenticated, even if the client already left (``is_authenticated`` says False then)."""
    handler = transport.auth_handler
    return transport.is_authenticated() or bool(handler and handler.authenticated)


class CappedSocket:
    """The client socket, closed once a client sends too much before authenticating."""

    def __init__(
        self, sock: socket.socket, limit: int, cut: Callable[[str], None] | None = None
    ) -> None:
        self._sock = sock
        self._limit = limit
        self._received = 0
        self._cut = cut  # where the cut is told (the noise summary), else the log
        self.transport: paramiko.Transport | None = None

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if self._limit:
            self._received += len(data)
            if self._received > self._limit:
                if self.transport is not None and self.transport.is_authenticated():
                    self._limit = 0
                else:
                    why = f"closed after {self._received} bytes sent before login"
                    if self._cut is not None:
                        self._cut(why)
                    else:
                        log.warning("%s", why)
                    self._sock.close()
                    return b""
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class CappedPacketizer(Packetizer):
    """paramiko's packet reader, refusing a packet longer than ``MAX_PACKET``.

    paramiko reads whatever length a packet header announces (up to 4 GiB) into memory
    before checking anything; every body read goes through ``read_all``, so the length
    is checked there, before a byte of the body is read.

    paramiko's handshake timer is not started: it is a thread per connection, never
    cancelled when the negotiation fails (a flood of bad KEXINITs left one thread per
    connection alive for 15 s). The login deadline (``login_timeout`` from the accept)
    bounds the handshake instead.
    """

    def start_handshake(self, timeout: float) -> None:
        return None

    def read_all(self, n: int, check_rekey: bool = False) -> bytes:
        if n > MAX_PACKET + _PACKET_MARGIN:
            raise paramiko.SSHException(f"packet of {n} bytes refused (limit {MAX_PACKET})")
        data: bytes = super().read_all(n, check_rekey)
        return data


def _feed_within_window(channel: paramiko.Channel, msg: paramiko.Message) -> None:
    """Channel data, unless the client sent more than the window it was granted."""
    data = msg.get_binary()
    if len(channel.in_buffer) + len(data) > WINDOW_SIZE:
        log.warning("closing a client that ignored its channel window")
        channel.get_transport().close()
        return
    channel.in_buffer.feed(data)


def _drop_extended(channel: paramiko.Channel, msg: paramiko.Message) -> None:
    """A client's stderr stream: nothing on the server reads it, so nothing keeps it."""


def _bounded_channels(transport: paramiko.Transport) -> None:
    table = dict(transport._channel_handler_table)  # type: ignore[attr-defined]
    table[MSG_CHANNEL_DATA] = _feed_within_window
    table[MSG_CHANNEL_EXTENDED_DATA] = _drop_extended
    transport._channel_handler_table = table  # type: ignore[attr-defined]


def _choose(offered: Sequence[str], preferred: tuple[str, ...]) -> tuple[str, ...]:
    """``preferred`` in its order, keeping only what this paramiko supports."""
    chosen = tuple(name for name in preferred if name in offered)
    if not chosen:
        raise StartupError(f"sftp: none of {', '.join(preferred)} is available in paramiko")
    return chosen


class IntakeServer(SftpConnection):
    """One SSH connection: authentication and channel policy."""

    def __init__(self, instance: Instance, slot: Slot) -> None:
        self.instance = instance
        self.slot = slot
        self.ip = slot.ip
        self.account: Account | None = None
        self.method = ""
        self.key_blob: bytes | None = None
        self.live: LiveSession | None = None
        self.end_session: Callable[[str], None] = lambda reason: None
        self.tried: str | None = None  # the last user name offered
        self.password_failures = 0
        self.file_sessions: list[FileSession] = []
        self.subsystems: list[threading.Thread] = []
        self.last_activity = time.monotonic()
        self.end_reason = "connection closed before the file was closed"
        self._channels = 0
        self._logged_in = False
        self._login_lock = threading.Lock()
        self.log_session = oplog.current()  # made on the connection's thread

    def mark_logged_in(self) -> bool:
        """Write ``login.ok`` once; True if the connection is authenticated."""
        with self._login_lock:
            if self.account is None:
                return False
            if not self._logged_in:
                try:
                    self.instance.auth.succeeded(self.account, self.ip, PROTOCOL, self.method)
                except AuditUnavailable as exc:  # fail closed: no record, no session
                    log.error("sftp login of %s refused: %s", display(self.account.name), exc)
                    self.account = None
                    return False
                self._logged_in = True
                self.slot.logged_in()
                if self.log_session is not None:
                    self.log_session.bind(account=self.account.name)
                name = self.account.name
                token = self.instance.accounts.credential_token(name, self.method, self.key_blob)
                self.live = LiveSession(
                    Credential(name, self.method, token), self.ip, PROTOCOL, self.end_session
                )
                self.instance.sessions.register(self.live)
            return True

    def _refuse(self, what: str, **extra: str) -> None:
        self.instance.audit.record(
            "denied",
            account=self.account.name if self.account else self.tried,
            ip=self.ip,
            protocol=PROTOCOL,
            operation=what,
            reason=f"{what} refused: only the sftp subsystem is served",
            **extra,
        )

    # -- authentication ------------------------------------------------------------

    def get_banner(self) -> tuple[str | None, str | None]:
        """The pre-login banner (``[server] banner``), shown by PuTTY, WinSCP, FileZilla."""
        text = self.instance.config.server.banner.strip()
        if not text:
            return None, None
        return "\r\n".join(text.splitlines()) + "\r\n", "fr"

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_none(self, username: str) -> int:
        self.tried = username
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        self.tried = username
        account = self.instance.auth.password(username, password, self.ip, PROTOCOL)
        if account is None:
            self.password_failures += 1
            return AUTH_FAILED
        self.account, self.method = account, "password"
        return AUTH_SUCCESSFUL

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.tried = username
        if self.instance.auth.gate.banned(self.ip):
            return AUTH_FAILED
        blob = key.asbytes()
        account = self.instance.accounts.authenticate_key(username, blob)
        if account is None:
            return AUTH_FAILED
        self.account, self.method, self.key_blob = account, "publickey", blob
        return AUTH_SUCCESSFUL

    def check_auth_interactive(self, username: str, submethods: str) -> int:
        return AUTH_FAILED

    # -- channels --------------------------------------------------------------------

    def check_channel_request(self, kind: str, chanid: int) -> int:
        # paramiko asks only once the client is authenticated
        if not self.mark_logged_in():
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if kind != "session" or self._channels >= MAX_CHANNELS:
            self._refuse(f"channel {kind}")
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        self._channels += 1
        return OPEN_SUCCEEDED

    def check_channel_direct_tcpip_request(self, chanid: int, origin: Any, destination: Any) -> int:
        self.mark_logged_in()
        self._refuse("port forwarding (direct-tcpip)")
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_port_forward_request(self, address: str, port: int) -> bool:
        self.mark_logged_in()
        self._refuse("remote port forwarding")
        return False

    def check_global_request(self, kind: str, msg: paramiko.Message) -> bool:
        self.mark_logged_in()
        return False

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if name != "sftp" or self.account is None:
            self._refuse(f"subsystem {name}")
            return False
        take_over(channel)  # before the subsystem reads: see intake.frontends.sftp.pipe
        handler = IntakeSFTPServer(channel, name, self, sftp_si=IntakeSFTPInterface)
        self.subsystems.append(handler)
        handler.start()
        if self.log_session is not None:
            self.log_session.adopt(handler.ident)
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        # The command is kept (cut) so the report can tell rclone's hash probes
        # (``md5sum``, ``sha1sum``) from a real attempt to run something.
        self._refuse("exec", command=command[:MAX_COMMAND].decode("utf-8", "replace"))
        return False

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self._refuse("shell")
        return False

    def check_channel_pty_request(self, *args: Any) -> bool:
        return False

    def check_channel_x11_request(self, *args: Any) -> bool:
        self._refuse("x11 forwarding")
        return False

    def check_channel_forward_agent_request(self, channel: paramiko.Channel) -> bool:
        self._refuse("agent forwarding")
        return False

    def check_channel_env_request(
        self, channel: paramiko.Channel, name: bytes, value: bytes
    ) -> bool:
        return False


class SftpService:
    """Runs each SSH connection in its own thread until it ends or the service stops."""

    def __init__(
        self, instance: Instance, settings: SftpSection, hand_off: Handler | None = None
    ) -> None:
        """``hand_off``: the supervisor's (admitted connections go to worker processes)."""
        self._instance = instance
        self._settings = settings
        self._host_keys = load_host_keys(instance.config.keys_dir)
        self._listener = ThreadedListener(
            "sftp",
            instance.guard,
            self._run_transport,
            metrics=instance.metrics if hand_off is None else None,
            client_errors=(paramiko.SSHException, EOFError, OSError),
            hand_off=hand_off,
        )
        self._connections: set[tuple[paramiko.Transport, IntakeServer]] = set()
        self._lock = threading.Lock()

    def bind(self, listen: Listen) -> tuple[str, int]:
        return self._listener.bind(listen)

    def start(self, listen: Listen) -> tuple[str, int]:
        return self._listener.start(listen)

    def alive(self) -> bool:
        return self._listener.alive()

    def adopt(self, client: socket.socket, slot: Slot) -> None:
        """A worker process: serve a connection the supervisor admitted."""
        self._listener.adopt(client, slot)

    def _run_transport(self, client: socket.socket, slot: Slot) -> None:
        noise = self._listener.noise
        capped = CappedSocket(
            client,
            self._settings.max_prelogin_bytes,
            lambda why: noise.note("sftp: before login", slot.ip, why),
        )
        transport = paramiko.Transport(
            capped,  # type: ignore[arg-type]
            disabled_algorithms=DISABLED_ALGORITHMS,
            default_window_size=WINDOW_SIZE,
            packetizer_class=CappedPacketizer,
        )
        capped.transport = transport
        quiet = TransportLog(
            noise,
            "sftp: before login",
            slot.ip,
            transport.logger,
            lambda: _authenticated(transport),
        )
        transport.logger = quiet  # type: ignore[assignment]
        transport.packetizer.set_log(quiet)  # type: ignore[arg-type]
        _bounded_channels(transport)
        options = transport.get_security_options()
        options.ciphers = PREFERRED_CIPHERS
        options.kex = _choose(options.kex, PREFERRED_KEX)
        options.digests = _choose(options.digests, PREFERRED_MACS)
        for key in self._host_keys:
            transport.add_server_key(key)
        server = IntakeServer(self._instance, slot)

        def end_session(reason: str) -> None:
            server.end_reason = reason
            transport.close()

        server.end_session = end_session
        with self._lock:
            self._connections.add((transport, server))
        try:
            transport.start_server(event=threading.Event(), server=server)
            if server.log_session is not None:
                server.log_session.adopt(transport.ident)
            if self._await_login(transport, server, slot.accepted):
                self._serve_until_idle(transport, server)
        finally:
            transport.close()
            if transport.ident is not None and transport is not threading.current_thread():
                transport.join(5)  # its last log lines still belong to this session
            for handler in server.subsystems:
                handler.join(10)
            if server.live is not None:
                self._instance.sessions.unregister(server.live)
            with self._lock:
                self._connections.discard((transport, server))

    def _await_login(
        self, transport: paramiko.Transport, server: IntakeServer, accepted: float
    ) -> bool:
        """Wait for the login, at most ``login_timeout`` from the accept; audit a failure."""
        deadline = accepted + self._settings.login_timeout
        while transport.is_active() and not _authenticated(transport):
            if time.monotonic() > deadline:
                self._instance.auth.failed_session(
                    server.tried, server.ip, PROTOCOL, "login timeout"
                )
                return False
            time.sleep(0.05)
        if _authenticated(transport) and server.mark_logged_in():
            return True
        if server.password_failures:
            return False  # each already counted
        if server.tried is not None:
            self._instance.auth.failed_session(
                server.tried, server.ip, PROTOCOL, "no accepted credentials"
            )
        elif server.slot.evicted:
            self._instance.auth.no_login(
                server.ip, PROTOCOL, "evicted: too many unauthenticated connections", evicted=True
            )
        else:
            reached = "after the SSH handshake" if transport.session_id else "before key exchange"
            self._instance.auth.no_login(
                server.ip, PROTOCOL, f"closed without trying to log in ({reached})"
            )
        return False

    def _serve_until_idle(self, transport: paramiko.Transport, server: IntakeServer) -> None:
        server.last_activity = time.monotonic()
        while transport.is_active():
            transport.join(1.0)
            if time.monotonic() - server.last_activity > self._settings.idle_timeout:
                server.end_reason = "idle timeout"
                transport.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, end every session (open uploads become interrupted), wait."""
        self._listener.stop_accepting()
        with self._lock:
            connections = list(self._connections)
        for transport, server in connections:
            server.end_reason = "server shutting down"
            transport.close()
        self._listener.join(timeout)
