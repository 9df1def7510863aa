"""Forwarding files to the vendor's SFTP server: the one client-side seam to paramiko.

Rules:
- The vendor's host key is pinned by an OpenSSH ``known_hosts`` file (``[vendor]
  known_hosts``), looked up as ``host`` on port 22 and ``[host]:port`` otherwise, hashed
  entries included. No pinned key: no connection at all. The transport offers only the
  pinned key types, and a key that differs from the pinned one ends the connection
  before authentication: nothing is sent (``HostKeyError``).
- A file is uploaded under a temporary name in its target folder
  (``.<name>.<tag>.intake-part``), checked, then renamed to its name with the plain SFTP
  rename, which never replaces an existing file. A temporary file left by a cut forward
  is removed before the upload starts again, so the vendor never sees a partial file
  under the real name.
- Checks before the rename: the bytes read locally hash to the catalogued SHA-256 (an
  altered file is never sent: ``AlteredError``), the remote size equals the local size,
  and with ``verify = "sha256"`` the remote file is read back and hashed.
- A file already at the target name counts as delivered only when its SHA-256, read back
  from the vendor, equals the catalogued one (whatever ``verify`` says; a same size proves
  nothing): it is the one a cut run renamed before it could record it, reported as already
  there. A different file there is never overwritten, and never taken for ours: the file
  goes under the entry's own name instead, ``<stem>.<tag><suffixes>`` (``x.zip`` ->
  ``x.e42.zip``), checked the same way. So two technicians' ``/outbox/x.zip`` (or one
  technician's weekly ``x.zip``) never collide at the vendor; ``ForwardError`` only if the
  entry's own name also holds other content.
- Authentication: the key (``[vendor] key``) when there is one; the password
  (``[vendor] password_file``) when there is no key, or when the vendor asks for it
  after the key (``AuthenticationMethods publickey,password``). A vendor that takes no
  ``password`` method but ``keyboard-interactive`` gets the same password as the answer
  to its hidden prompts (PAM's "Password:"). Each method is tried once; the password is
  never in argv, a log line or an error message (``Secret``).
- Every failure is a ``ForwardError`` whose message says what happened, without secrets.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import posixpath
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paramiko

from intake.adapters.secrets import Secret
from intake.core.errors import IntakeError

CHUNK = 256 * 1024
TEMP_SUFFIX = ".intake-part"
VERIFY_MODES = ("size", "sha256")
_KEY_TYPES = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}


class ForwardError(IntakeError):
    """Forwarding a file failed; the file stays and is tried again at a later sweep."""


class HostKeyError(ForwardError):
    """The vendor's host key is not the pinned one (or none is pinned): nothing was sent."""


class AlteredError(ForwardError):
    """The local file no longer matches its catalogued SHA-256: it was not sent."""

    def __init__(self, actual_sha256: str) -> None:
        super().__init__("the file no longer matches its SHA-256: not sent")
        self.actual_sha256 = actual_sha256


@dataclass(frozen=True)
class VendorTarget:
    """Where and how to reach the vendor (``[vendor]`` with paths resolved)."""

    host: str
    port: int
    user: str
    key_file: Path | None
    known_hosts: Path
    remote_dir: str = "/"
    verify: str = "size"
    timeout: float = 30.0
    password: Secret | None = None

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class Sent:
    remote_path: str
    already_there: bool  # a previous, cut run had renamed it into place


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:<base64>`` as ``ssh-keygen -lf`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def remote_path_for(remote_dir: str, area: str, account: str, path: str) -> str:
    """An outbox file goes to ``remote_dir/<path in the outbox>``; a member's backup
    (``intake forward ID``) to ``remote_dir/<member>/<path>``."""
    inside = path
    if area == "outbox" and path.startswith("/outbox/"):
        inside = path[len("/outbox") :]
    elif area != "outbox":
        inside = f"/{account}{path}"
    parts = [p for p in inside.split("/") if p not in ("", ".", "..")]
    return posixpath.join(remote_dir or "/", *parts)


def tagged_name(remote_path: str, tag: str) -> str:
    """The entry's own name at the vendor: ``dir/x.tar.gz`` -> ``dir/x.<tag>.tar.gz``."""
    folder, name = posixpath.split(remote_path)
    lead = len(name) - len(name.lstrip("."))  # a dotfile's leading dots belong to its stem
    stem, dot, suffixes = name[lead:].partition(".")
    return posixpath.join(folder, f"{name[:lead]}{stem}.{tag}{dot}{suffixes}")


def _pinned_keys(target: VendorTarget) -> dict[str, paramiko.PKey]:
    try:
        host_keys = paramiko.HostKeys(str(target.known_hosts))
    except OSError as exc:
        raise HostKeyError(
            f"cannot read known_hosts {target.known_hosts}: {exc.strerror}"
        ) from None
    found = host_keys.lookup(target.known_hosts_name)
    if not found:
        raise HostKeyError(
            f"no host key pinned for {target.known_hosts_name} in {target.known_hosts}: "
            "not connecting"
        )
    return {name: found[name] for name in found}


class VendorSession:
    """One authenticated SFTP connection to the vendor, for one or more files."""

    def __init__(self, target: VendorTarget) -> None:
        self.target = target
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection ------------------------------------------------------------------

    def __enter__(self) -> VendorSession:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        target = self.target
        pinned = _pinned_keys(target)
        where = f"{target.host}:{target.port}"
        try:
            sock = socket.create_connection((target.host, target.port), timeout=target.timeout)
        except OSError as exc:
            raise ForwardError(
                f"cannot reach the vendor at {where}: {exc.strerror or exc}"
            ) from None
        transport = paramiko.Transport(sock)
        self._transport = transport
        try:
            options = transport.get_security_options()
            wanted = [t for name in pinned for t in _KEY_TYPES.get(name, (name,))]
            offered = [t for t in options.key_types if t in wanted]
            if not offered:
                raise HostKeyError(f"the pinned key types ({', '.join(pinned)}) are not supported")
            options.key_types = offered
            transport.banner_timeout = target.timeout
            transport.auth_timeout = target.timeout
            try:
                transport.start_client(timeout=target.timeout)
            except paramiko.SSHException as exc:
                if "host key" in str(exc).lower():
                    raise HostKeyError(
                        f"the vendor at {where} offers no host key of the pinned type "
                        f"({', '.join(pinned)}): not sending"
                    ) from None
                raise ForwardError(f"SSH negotiation with {where} failed: {exc}") from None
            server_key = transport.get_remote_server_key()
            expected = pinned.get(server_key.get_name())
            if expected is None or expected != server_key:
                pinned_text = ", ".join(fingerprint(k) for k in pinned.values())
                raise HostKeyError(
                    f"the vendor's host key changed: {where} presented {fingerprint(server_key)}, "
                    f"pinned {pinned_text}: not sending"
                )
            self._authenticate(transport)
            self._sftp = paramiko.SFTPClient.from_transport(transport)
            if self._sftp is None:
                raise ForwardError(f"{where}: the SFTP subsystem was refused")
            self._sftp.get_channel().settimeout(target.timeout)  # type: ignore[union-attr]
        except BaseException:
            self.close()
            raise

    def _authenticate(self, transport: paramiko.Transport) -> None:
        target = self.target
        allowed: list[str] = []
        if target.key_file is not None:
            try:
                key = paramiko.PKey.from_path(target.key_file)
            except (OSError, paramiko.SSHException, ValueError) as exc:
                raise ForwardError(f"cannot load the vendor key {target.key_file}: {exc}") from None
            try:
                allowed = transport.auth_publickey(target.user, key)
            except paramiko.BadAuthenticationType as exc:
                if target.password is None:
                    raise self._refused("key", exc) from None
                allowed = list(exc.allowed_types)
            except paramiko.SSHException as exc:
                raise self._refused("key", exc) from None
            if transport.is_authenticated():
                return
            if target.password is None:
                raise ForwardError(
                    f"the vendor wants more than the key for {target.user!r} "
                    f"({', '.join(allowed) or 'nothing offered'}): set [vendor] password_file"
                )
        if target.password is None:
            raise ForwardError("no vendor key and no vendor password_file: cannot log in")
        self._auth_password(transport, target.password, allowed)

    def _refused(self, what: str, exc: Exception) -> ForwardError:
        return ForwardError(
            f"the vendor refused the login of {self.target.user!r} with the {what}: "
            f"{type(exc).__name__}"
        )

    def _auth_password(
        self, transport: paramiko.Transport, password: Secret, allowed: list[str]
    ) -> None:
        user = self.target.user
        if not allowed or "password" in allowed:
            try:
                transport.auth_password(user, password.reveal(), fallback=False)
                return
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
            except paramiko.SSHException as exc:
                raise self._refused("password", exc) from None
        if "keyboard-interactive" not in allowed:
            raise ForwardError(
                f"the vendor takes neither a password nor keyboard-interactive for {user!r} "
                f"(it offers: {', '.join(allowed) or 'nothing'})"
            )

        def answer(_title: str, _instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
            return ["" if echo else password.reveal() for _text, echo in prompts]

        try:
            transport.auth_interactive(user, answer)
        except paramiko.SSHException as exc:
            raise self._refused("password (keyboard-interactive)", exc) from None

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def alive(self) -> bool:
        """False once the connection to the vendor is gone (the remaining files wait)."""
        return self._transport is not None and self._transport.is_active()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            raise ForwardError("not connected to the vendor")
        return self._sftp

    # -- remote helpers --------------------------------------------------------------

    def _stat(self, path: str) -> paramiko.SFTPAttributes | None:
        try:
            return self.sftp.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def _remove_quietly(self, path: str) -> None:
        with contextlib.suppress(OSError):
            self.sftp.remove(path)

    def _makedirs(self, folder: str) -> None:
        missing = []
        while folder not in ("", "/") and self._stat(folder) is None:
            missing.append(folder)
            folder = posixpath.dirname(folder)
        for path in reversed(missing):
            try:
                self.sftp.mkdir(path)
            except OSError:
                if self._stat(path) is None:
                    raise

    def remote_sha256(self, path: str) -> str:
        """Read a remote file back and hash it (OpenSSH has no server-side hash)."""
        digest = hashlib.sha256()
        with self.sftp.open(path, "rb") as remote:
            remote.prefetch()
            while block := remote.read(CHUNK):
                digest.update(block)
        return digest.hexdigest()

    def _holds(self, path: str, attrs: paramiko.SFTPAttributes, size: int, sha256: str) -> bool:
        """True if the vendor's file at ``path`` is ours: same size and SHA-256 read back."""
        if attrs.st_mode is not None and not stat.S_ISREG(attrs.st_mode):
            return False
        if attrs.st_size != size:
            return False
        return self.remote_sha256(path) == sha256

    # -- sending ---------------------------------------------------------------------

    def send(self, local_path: str, remote_path: str, size: int, sha256: str, tag: str) -> Sent:
        """Send one file; see the module rules. ``tag`` (the entry's ``e<id>``) makes the
        temporary name unique, and the file's own name when its plain name is taken."""
        try:
            return self._send(local_path, remote_path, size, sha256, tag)
        except ForwardError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ForwardError(f"sending to the vendor failed: {detail}") from None

    def _send(self, local_path: str, remote_path: str, size: int, sha256: str, tag: str) -> Sent:
        folder = posixpath.dirname(remote_path)
        self._makedirs(folder)
        for candidate in (remote_path, tagged_name(remote_path, tag)):
            existing = self._stat(candidate)
            if existing is None:
                return self._send_as(local_path, candidate, size, sha256, tag)
            if self._holds(candidate, existing, size, sha256):
                self._remove_quietly(self._temp_name(candidate, tag))
                return Sent(candidate, already_there=True)
        raise ForwardError(
            f"{remote_path} and {tagged_name(remote_path, tag)} already exist on the vendor "
            "with other content: not overwritten"
        )

    @staticmethod
    def _temp_name(remote_path: str, tag: str) -> str:
        folder, name = posixpath.split(remote_path)
        return posixpath.join(folder, f".{name}.{tag}{TEMP_SUFFIX}")

    def _send_as(self, local_path: str, remote_path: str, size: int, sha256: str, tag: str) -> Sent:
        temp = self._temp_name(remote_path, tag)
        self._remove_quietly(temp)  # left by a forward that was cut
        try:
            self._upload(local_path, temp, sha256)
            uploaded = self.sftp.stat(temp).st_size
            if uploaded != size:
                raise ForwardError(f"the vendor holds {uploaded} bytes of {size}: not renamed")
            if self.target.verify == "sha256" and self.remote_sha256(temp) != sha256:
                raise ForwardError("the vendor's copy does not match the SHA-256: not renamed")
            try:
                self.sftp.rename(temp, remote_path)
            except OSError:
                landed = self._stat(remote_path)
                if landed is None or not self._holds(remote_path, landed, size, sha256):
                    raise ForwardError(
                        f"{remote_path} was taken on the vendor meanwhile: not overwritten"
                    ) from None
                self._remove_quietly(temp)
                return Sent(remote_path, already_there=True)
        except BaseException:
            transport = self._transport
            if self._sftp is not None and transport is not None and transport.is_active():
                self._remove_quietly(temp)
            raise
        return Sent(remote_path, already_there=False)

    def _upload(self, local_path: str, temp: str, sha256: str) -> None:
        digest = hashlib.sha256()
        fd = os.open(local_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with self.sftp.open(temp, "wb") as remote:
                remote.set_pipelined(True)
                while block := os.read(fd, CHUNK):
                    digest.update(block)
                    remote.write(block)
                actual = digest.hexdigest()
                if actual != sha256:
                    raise AlteredError(actual)
        finally:
            os.close(fd)
