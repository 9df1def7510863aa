"""The vendor's SFTP server for forwarding: a REAL OpenSSH ``sshd`` on loopback.

Shared by the forwarding tests (tests/test_forward.py, tests/test_forward_password.py) and
the chaos run (bench/chaos.py). Each vendor is ``/usr/sbin/sshd -D`` with its own config in
a root-owned folder under ``/run`` (OpenSSH refuses a chroot below the world-writable
``/tmp``): a generated host key, a client key in ``authorized_keys``, ``ChrootDirectory``
+ ``ForceCommand internal-sftp``; how it authenticates is the caller's ``auth`` lines.
Needs root and sshd (``usable()``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"

# root logging in with the client key, and with nothing else
KEY_ONLY = (
    "UsePAM no\n"
    "PermitRootLogin prohibit-password\n"
    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
)


def usable() -> bool:
    """Whether a vendor can be started here: root, and OpenSSH's sshd installed."""
    return os.geteuid() == 0 and os.path.exists(SSHD)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@dataclass
class Vendor:
    """The vendor's SFTP server: ``upload`` is its ``/upload`` folder."""

    base: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def upload(self) -> Path:
        return self.root / "upload"

    @property
    def client_key(self) -> Path:
        return self.base / "client"

    def known_hosts_line(self) -> str:
        kind, blob = (self.base / "hostkey.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def config_section(
        self, user: str = "root", key: bool = True, password_file: str | None = None
    ) -> str:
        """intake's ``[vendor]`` section for this server (its host key pinned in the
        instance's ``vendor_known_hosts``)."""
        return (
            "[vendor]\n"
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            f'user = "{user}"\n'
            + (f'key = "{self.client_key}"\n' if key else "")
            + (f'password_file = "{password_file}"\n' if password_file else "")
            + 'known_hosts = "vendor_known_hosts"\n'
            'remote_dir = "/upload"\n'
        )

    def start(self) -> None:
        for _attempt in range(5):
            self.port = self.port or free_port()
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.base / "sshd_config"), "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=open(self.base / "sshd.log", "ab"),  # noqa: SIM115 - the child keeps it
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
            self.port = 0  # taken meanwhile: try another
        raise AssertionError(f"sshd did not start: {(self.base / 'sshd.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        """Stopped, and its folder (keys, config, log, files) gone."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def files(self) -> dict[str, bytes]:
        """Every file in the vendor's folder, by path relative to it."""
        return {
            str(p.relative_to(self.upload)): p.read_bytes()
            for p in sorted(self.upload.rglob("*"))
            if p.is_file()
        }

    def clear(self) -> None:
        shutil.rmtree(self.upload)
        self.upload.mkdir()


def new_vendor(auth: str, prefix: str = "intake-vendor-", owner: str | None = None) -> Vendor:
    """A vendor set up but not started: its folder under ``/run``, host and client keys,
    and an ``sshd_config`` ending with the ``auth`` lines; ``/upload`` belongs to ``owner``
    (root when None)."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    vendor = Vendor(Path(tempfile.mkdtemp(prefix=prefix, dir="/run")))
    base = vendor.base
    try:
        base.chmod(0o755)
        vendor.upload.mkdir(parents=True)
        vendor.root.chmod(0o755)
        if owner is not None:
            shutil.chown(vendor.upload, owner)
        keygen(base / "hostkey")
        keygen(vendor.client_key)
        shutil.copy(base / "client.pub", base / "authorized_keys")
        (base / "sshd_config").write_text(
            f"HostKey {base}/hostkey\n"
            f"PidFile {base}/sshd.pid\n"
            f"AuthorizedKeysFile {base}/authorized_keys\n"
            "ListenAddress 127.0.0.1\n"
            "StrictModes no\n"
            "AllowTcpForwarding no\nX11Forwarding no\n"
            "Subsystem sftp internal-sftp\n"
            f"ChrootDirectory {vendor.root}\n"
            "ForceCommand internal-sftp\n"
            "LogLevel VERBOSE\n" + auth
        )
    except BaseException:
        vendor.remove()
        raise
    return vendor


@contextlib.contextmanager
def running_vendor(auth: str = KEY_ONLY, prefix: str = "intake-vendor-") -> Iterator[Vendor]:
    """A started vendor, stopped and removed on the way out."""
    vendor = new_vendor(auth, prefix)
    try:
        vendor.start()
        yield vendor
    finally:
        vendor.remove()
