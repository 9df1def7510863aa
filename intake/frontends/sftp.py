"""The SFTP front-end (paramiko, its one seam on the server side).

Thin: each SFTP request becomes one ``FileSession`` call, each exception one status code
with a generic text; the detail goes to the audit log (``intake.services.files``).

Rules (see ../shared/PITFALLS.md for why each exists):
- Only the ``sftp`` subsystem on ``session`` channels; shell, exec, pty, x11, agent and
  port forwarding (both directions) are refused and audited as ``denied``.
- CBC ciphers and SHA-1/MD5 MACs disabled; AES-GCM offered first; ed25519 host key first.
- Login deadline counted from ``accept`` (``[sftp] login_timeout``), a cap on the bytes a
  client may send before it is authenticated (``max_prelogin_bytes``), an idle timeout
  after login; a banned or over-limit address is refused before paramiko sees a byte.
- ``login.ok`` is written once the transport is authenticated (a key probe is no login).
- An upload is committed on the client's CLOSE and the CLOSE reply tells the truth (an
  upload refused at commit gets a failure status); handles left open when the session
  ends are ``upload.interrupted`` (``session_ended`` runs before paramiko closes them).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import (
    CMD_CLOSE,
    SFTP_BAD_MESSAGE,
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_PERMISSION_DENIED,
)

from intake.adapters.keys import HOST_KEY_FILES
from intake.adapters.storage import EntryStat
from intake.core.authz import Op
from intake.core.config import Listen, SftpSection
from intake.core.errors import Denied, IntakeError, NotFound, StartupError
from intake.core.model import Account
from intake.core.paths import normalize, to_text
from intake.services.files import Download, FileSession, Upload
from intake.services.instance import Instance

log = logging.getLogger("intake.sftp")
PROTOCOL = "sftp"
DISABLED_ALGORITHMS = {
    "ciphers": ["aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"],
    "macs": ["hmac-sha1", "hmac-md5", "hmac-sha1-96", "hmac-md5-96"],
    "keys": ["ssh-rsa", "ssh-dss"],
    "pubkeys": ["ssh-rsa", "ssh-dss"],
}
PREFERRED_CIPHERS = (
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
MAX_CHANNELS = 4
WINDOW_SIZE = 8 * 1024 * 1024  # paramiko's 2 MiB stalls OpenSSH's 64 outstanding writes
R = TypeVar("R")


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


def _attributes(entry: EntryStat) -> paramiko.SFTPAttributes:
    attr = paramiko.SFTPAttributes()
    attr.filename = entry.name
    attr.st_size = entry.size
    attr.st_mode = entry.mode
    attr.st_atime = attr.st_mtime = int(entry.mtime)
    return attr


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, Denied):
        return SFTP_PERMISSION_DENIED
    if isinstance(exc, NotFound):
        return SFTP_NO_SUCH_FILE
    return SFTP_FAILURE


def _answer(method: Callable[..., R]) -> Callable[..., R | int]:
    """Turn intake errors into SFTP status codes; log anything unexpected (paramiko hides it)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> R | int:
        try:
            return method(*args, **kwargs)
        except IntakeError as exc:
            return _status_of(exc)
        except OSError as exc:
            log.warning("sftp %s failed: %s", method.__name__, exc)
            return SFTP_FAILURE
        except Exception:
            log.exception("sftp %s crashed", method.__name__)
            return SFTP_FAILURE

    return wrapper


def _authenticated(transport: paramiko.Transport) -> bool:
    """Authenticated, even if the client already left (``is_authenticated`` says False then)."""
    handler = transport.auth_handler
    return transport.is_authenticated() or bool(handler and handler.authenticated)


class CappedSocket:
    """The client socket, closed once a client sends too much before authenticating."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self._sock = sock
        self._limit = limit
        self._received = 0
        self.transport: paramiko.Transport | None = None

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if self._limit:
            self._received += len(data)
            if self._received > self._limit:
                if self.transport is not None and self.transport.is_authenticated():
                    self._limit = 0
                else:
                    log.warning("closing a client that sent %d bytes before login", self._received)
                    self._sock.close()
                    return b""
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class IntakeSFTPHandle(paramiko.SFTPHandle):
    """An open file: an ``Upload`` or a ``Download`` of the session."""

    def __init__(self, interface: IntakeSFTPInterface, target: Upload | Download) -> None:
        super().__init__()
        self._interface = interface
        self._target = target

    @_answer
    def read(self, offset: int, length: int) -> bytes | int:
        if not isinstance(self._target, Download):
            return SFTP_PERMISSION_DENIED
        return self._target.read(offset, length)

    @_answer
    def write(self, offset: int, data: bytes) -> int:
        if not isinstance(self._target, Upload):
            return SFTP_PERMISSION_DENIED
        self._target.write(offset, data)
        return SFTP_OK

    @_answer
    def close_status(self) -> int:
        self._target.close()
        return SFTP_OK

    def close(self) -> None:
        self.close_status()

    @_answer
    def stat(self) -> paramiko.SFTPAttributes | int:
        if isinstance(self._target, Download):
            return _attributes(self._target.stat())
        attr = paramiko.SFTPAttributes()
        attr.st_size = self._target.size
        attr.st_mode = 0o100600
        return attr

    @_answer
    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        raise self._interface.files.refuse(Op.SETATTR, self._target.path)


class IntakeSFTPInterface(paramiko.SFTPServerInterface):
    """One SFTP subsystem of one logged-in connection."""

    def __init__(self, server: IntakeServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.connection = server
        assert server.account is not None
        self.files = FileSession(
            server.account,
            server.ip,
            PROTOCOL,
            server.instance.storage,
            server.instance.audit,
            server.instance.listeners,
        )
        server.file_sessions.append(self.files)

    def session_ended(self) -> None:
        self.files.end(self.connection.end_reason)

    @_answer
    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        return [_attributes(e) for e in self.files.list_dir(path)]

    @_answer
    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return _attributes(self.files.stat(path))

    lstat = stat

    @_answer
    def open(
        self, path: str, flags: int, attr: paramiko.SFTPAttributes
    ) -> paramiko.SFTPHandle | int:
        # The client's requested mode (attr) is ignored: received files are 0440.
        if flags & (os.O_WRONLY | os.O_RDWR):
            return IntakeSFTPHandle(self, self.files.open_upload(path))
        return IntakeSFTPHandle(self, self.files.open_download(path))

    @_answer
    def remove(self, path: str) -> int:
        raise self.files.refuse(Op.DELETE, path)

    @_answer
    def rmdir(self, path: str) -> int:
        raise self.files.refuse(Op.RMDIR, path)

    @_answer
    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        raise self.files.refuse(Op.SETATTR, path)

    @_answer
    def symlink(self, target_path: str, path: str) -> int:
        raise self.files.refuse(Op.SYMLINK, path)

    @_answer
    def readlink(self, path: str) -> str | int:
        raise self.files.refuse(Op.READLINK, path)

    @_answer
    def rename(self, oldpath: str, newpath: str) -> int:
        self.files.rename(oldpath, newpath)
        return SFTP_OK

    posix_rename = rename

    @_answer
    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        self.files.mkdir(path)
        return SFTP_OK

    def canonicalize(self, path: str) -> str:
        try:
            return to_text(normalize(path))
        except IntakeError:
            return "/"


class IntakeSFTPServer(paramiko.SFTPServer):
    """paramiko's SFTP server, with a truthful CLOSE reply and activity tracking."""

    server: IntakeSFTPInterface

    def _process(self, t: int, request_number: int, msg: paramiko.Message) -> None:  # type: ignore[misc]
        self.server.connection.last_activity = time.monotonic()
        if t != CMD_CLOSE:
            super()._process(t, request_number, msg)  # type: ignore[misc]
            return
        # paramiko ignores what close() says and always answers OK: answer the truth.
        handle = msg.get_binary()
        reply: Callable[..., None] = self._send_status  # type: ignore[attr-defined]
        if handle in self.folder_table:
            del self.folder_table[handle]
            reply(request_number, SFTP_OK)
        elif handle in self.file_table:
            opened: IntakeSFTPHandle = self.file_table.pop(handle)  # type: ignore[assignment]
            reply(request_number, opened.close_status())
        else:
            reply(request_number, SFTP_BAD_MESSAGE, "Invalid handle")


class IntakeServer(paramiko.ServerInterface):
    """One SSH connection: authentication and channel policy."""

    def __init__(self, instance: Instance, ip: str) -> None:
        self.instance = instance
        self.ip = ip
        self.account: Account | None = None
        self.method = ""
        self.tried: str | None = None  # the last user name offered
        self.password_failures = 0
        self.file_sessions: list[FileSession] = []
        self.subsystems: list[threading.Thread] = []
        self.last_activity = time.monotonic()
        self.end_reason = "connection closed before the file was closed"
        self._channels = 0
        self._logged_in = False
        self._login_lock = threading.Lock()

    def mark_logged_in(self) -> bool:
        """Write ``login.ok`` once; True if the connection is authenticated."""
        with self._login_lock:
            if self.account is None:
                return False
            if not self._logged_in:
                self._logged_in = True
                self.instance.auth.succeeded(self.account, self.ip, PROTOCOL, self.method)
            return True

    def _refuse(self, what: str) -> None:
        self.instance.audit.record(
            "denied",
            account=self.account.name if self.account else self.tried,
            ip=self.ip,
            protocol=PROTOCOL,
            operation=what,
            reason=f"{what} refused: only the sftp subsystem is served",
        )

    # -- authentication ------------------------------------------------------------

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
        if self.instance.guard.banned(self.ip):
            return AUTH_FAILED
        account = self.instance.accounts.authenticate_key(username, key.asbytes())
        if account is None:
            return AUTH_FAILED
        self.account, self.method = account, "publickey"
        return AUTH_SUCCESSFUL

    def check_auth_interactive(self, username: str, submethods: str) -> int:
        return AUTH_FAILED

    # -- channels --------------------------------------------------------------------

    def check_channel_request(self, kind: str, chanid: int) -> int:
        self.mark_logged_in()  # paramiko asks only once the client is authenticated
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
        handler = IntakeSFTPServer(channel, name, self, sftp_si=IntakeSFTPInterface)
        self.subsystems.append(handler)
        handler.start()
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self._refuse("exec")
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
    """Listens, and runs each connection in its own thread until it ends or we stop."""

    def __init__(self, instance: Instance, settings: SftpSection) -> None:
        self._instance = instance
        self._settings = settings
        self._host_keys = load_host_keys(instance.config.keys_dir)
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._connections: set[tuple[paramiko.Transport, IntakeServer]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.address: tuple[str, int] | None = None

    def start(self, listen: Listen) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listen.host, listen.port))
        except OSError as exc:
            sock.close()
            raise StartupError(f"sftp: cannot listen on {listen}: {exc.strerror}") from None
        sock.listen(64)
        self._listener = sock
        self.address = sock.getsockname()[:2]
        thread = threading.Thread(target=self._accept_loop, name="sftp-accept", daemon=True)
        thread.start()
        return self.address

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, addr = self._listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            thread = threading.Thread(
                target=self._serve, args=(client, addr[0]), name=f"sftp-{addr[0]}", daemon=True
            )
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket, ip: str) -> None:
        accepted = time.monotonic()
        refusal = self._instance.guard.admit(ip)
        if refusal is not None:
            log.info("refused a connection from %s: %s", ip, refusal)
            client.close()
            return
        try:
            self._run_transport(client, ip, accepted)
        except Exception:
            log.exception("sftp connection from %s failed", ip)
        finally:
            self._instance.guard.release(ip)

    def _run_transport(self, client: socket.socket, ip: str, accepted: float) -> None:
        capped = CappedSocket(client, self._settings.max_prelogin_bytes)
        transport = paramiko.Transport(
            capped,  # type: ignore[arg-type]
            disabled_algorithms=DISABLED_ALGORITHMS,
            default_window_size=WINDOW_SIZE,
        )
        capped.transport = transport
        transport.get_security_options().ciphers = PREFERRED_CIPHERS
        for key in self._host_keys:
            transport.add_server_key(key)
        server = IntakeServer(self._instance, ip)
        with self._lock:
            self._connections.add((transport, server))
        try:
            transport.start_server(event=threading.Event(), server=server)
            deadline = accepted + self._settings.login_timeout
            while transport.is_active() and not _authenticated(transport):
                if time.monotonic() > deadline:
                    self._instance.auth.failed_session(server.tried, ip, PROTOCOL, "login timeout")
                    transport.close()
                    return
                time.sleep(0.05)
            if not _authenticated(transport) or not server.mark_logged_in():
                if server.tried is not None and not server.password_failures:
                    self._instance.auth.failed_session(
                        server.tried, ip, PROTOCOL, "no accepted credentials"
                    )
                return
            server.last_activity = time.monotonic()
            while transport.is_active():
                transport.join(1.0)
                if time.monotonic() - server.last_activity > self._settings.idle_timeout:
                    server.end_reason = "idle timeout"
                    transport.close()
        finally:
            transport.close()
            for handler in server.subsystems:
                handler.join(10)
            with self._lock:
                self._connections.discard((transport, server))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, end every session (open uploads become interrupted), wait."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for transport, server in connections:
            server.end_reason = "server shutting down"
            transport.close()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
