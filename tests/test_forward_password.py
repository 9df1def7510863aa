"""Forwarding with the login and password the vendor issued: a REAL OpenSSH ``sshd`` on
loopback, a temporary system user with a password (created with ``useradd`` and
``chpasswd``, removed at the end), password authentication, keyboard-interactive through
PAM, and key + password together. The host key stays pinned in every case.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TestInstance
from tests.test_forward import deposit, entry, sweep
from tests.vendor_sshd import Vendor, keygen, new_vendor, usable

pytestmark = pytest.mark.skipif(
    not usable() or not shutil.which("useradd"),
    reason="needs root, OpenSSH sshd and useradd",
)
StartVendor = Callable[[str], Vendor]  # the fixture below: auth lines -> a started sshd
PASSWORD_ONLY = (
    "UsePAM no\nPubkeyAuthentication no\nPasswordAuthentication yes\n"
    "KbdInteractiveAuthentication no\n"
)


@dataclass
class VendorUser:
    name: str
    password: str


@pytest.fixture(scope="module")
def vendor_user() -> Iterator[VendorUser]:
    """A system user with a password, as the vendor's server would have."""
    user = VendorUser(f"intakev{os.getpid() % 100000}", secrets.token_urlsafe(18))
    subprocess.run(
        ["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", user.name],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["chpasswd"], input=f"{user.name}:{user.password}\n", text=True, check=True)
        yield user
    finally:
        subprocess.run(["userdel", user.name], check=False, capture_output=True)


@pytest.fixture
def start_vendor(vendor_user: VendorUser) -> Iterator[StartVendor]:
    """Starts an sshd whose authentication lines are ``auth``; ``/upload`` belongs to the
    vendor user. Every one started is stopped and removed after the test."""
    started: list[Vendor] = []

    def start(auth: str) -> Vendor:
        vendor = new_vendor(
            f"AllowUsers {vendor_user.name}\n" + auth, "intake-vendorpw-", vendor_user.name
        )
        started.append(vendor)
        vendor.start()
        return vendor

    yield start
    for vendor in started:
        vendor.remove()


def configure(instance: TestInstance, vendor: Vendor, user: VendorUser, key: bool = False) -> Path:
    """``[vendor]`` with the password in a 0600 file (and the key when ``key``)."""
    secret = instance.root / "vendor-password"
    secret.write_text(user.password + "\n")
    secret.chmod(0o600)
    (instance.root / "vendor_known_hosts").write_text(vendor.known_hosts_line())
    with instance.config_file.open("a") as conf:
        conf.write(vendor.config_section(user.name, key, password_file="vendor-password"))
    instance.add_account("tech", role="technician")
    return secret


def forwards_one(instance: TestInstance, vendor: Vendor, user: VendorUser, how: str) -> None:
    """An outbox file reaches the vendor, which says it logged the user in ``how``."""
    data = os.urandom(200_000)
    entry_id = deposit(instance, "contrat.zip", data)
    proc = sweep(instance)
    assert 0 == proc.returncode, proc.stdout + proc.stderr
    assert {"contrat.zip": data} == vendor.files()
    assert entry(instance, entry_id)["forwarded_at"]
    assert user.password not in proc.stdout + proc.stderr
    assert user.password not in "".join(
        p.read_text() for p in (instance.root / "log").glob("*.jsonl")
    )
    assert f"Accepted {how} for {user.name}" in (vendor.base / "sshd.log").read_text()


class TestVendorPassword:
    def test_password_authentication(
        self, instance: TestInstance, vendor_user: VendorUser, start_vendor: StartVendor
    ) -> None:
        """A vendor that issued a login and password (no key): the outbox file arrives,
        byte for byte; the password is in no output and no audit record."""
        vendor = start_vendor(PASSWORD_ONLY)
        configure(instance, vendor, vendor_user)
        forwards_one(instance, vendor, vendor_user, "password")

    def test_keyboard_interactive_through_pam(
        self, instance: TestInstance, vendor_user: VendorUser, start_vendor: StartVendor
    ) -> None:
        """A vendor that asks through keyboard-interactive (PAM's "Password:" prompt) gets
        the same password as the answer."""
        vendor = start_vendor(
            "UsePAM yes\nPubkeyAuthentication no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication yes\n",
        )
        configure(instance, vendor, vendor_user)
        forwards_one(instance, vendor, vendor_user, "keyboard-interactive/pam")

    def test_key_then_password_when_the_vendor_requires_both(
        self, instance: TestInstance, vendor_user: VendorUser, start_vendor: StartVendor
    ) -> None:
        """``AuthenticationMethods publickey,password``: the key, then the password."""
        vendor = start_vendor(
            "UsePAM no\nPubkeyAuthentication yes\nPasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\nAuthenticationMethods publickey,password\n",
        )
        configure(instance, vendor, vendor_user, key=True)
        forwards_one(instance, vendor, vendor_user, "password")
        assert "Partial publickey" in (vendor.base / "sshd.log").read_text()

    def test_a_wrong_password_fails_without_saying_it(
        self, instance: TestInstance, vendor_user: VendorUser, start_vendor: StartVendor
    ) -> None:
        """A refused password: nothing sent, forward.failed names the user, never a password."""
        vendor = start_vendor(PASSWORD_ONLY)
        secret = configure(instance, vendor, vendor_user)
        secret.write_text("not-the-password-123\n")
        deposit(instance, "contrat.zip", b"data")
        proc = sweep(instance)
        assert 1 == proc.returncode
        assert {} == vendor.files()
        [failed] = instance.audit("forward.failed")
        assert f"refused the login of '{vendor_user.name}'" in str(failed["reason"])
        everything = proc.stdout + proc.stderr + str(instance.audit())
        assert "not-the-password-123" not in everything

    def test_a_password_file_others_can_read_is_not_used(
        self, instance: TestInstance, vendor_user: VendorUser, start_vendor: StartVendor
    ) -> None:
        """A group-readable password file: ``intake forward`` refuses with one clear line
        (exit 2) and the vendor sees no connection attempt with it."""
        vendor = start_vendor(PASSWORD_ONLY)
        secret = configure(instance, vendor, vendor_user)
        secret.chmod(0o640)
        entry_id = deposit(instance, "contrat.zip", b"data")
        proc = instance.cli("forward", str(entry_id))
        assert 2 == proc.returncode
        assert "vendor.password_file" in proc.stderr
        assert "chmod 600" in proc.stderr
        assert 1 == len(proc.stderr.strip().splitlines())
        assert {} == vendor.files()

    def test_the_host_key_is_still_pinned(
        self, instance: TestInstance, vendor_user: VendorUser, start_vendor: StartVendor
    ) -> None:
        """Another host key than the pinned one: the password is never sent, nothing is."""
        vendor = start_vendor(PASSWORD_ONLY)
        configure(instance, vendor, vendor_user)
        other = keygen(instance.root / "other-hostkey")
        kind, blob = other.with_suffix(".pub").read_text().split()[:2]
        (instance.root / "vendor_known_hosts").write_text(
            f"[127.0.0.1]:{vendor.port} {kind} {blob}\n"
        )
        deposit(instance, "contrat.zip", b"data")
        proc = sweep(instance)
        assert 1 == proc.returncode
        [failed] = instance.audit("forward.failed")
        assert "host key changed" in str(failed["reason"])
        assert "Accepted password" not in (vendor.base / "sshd.log").read_text()
        assert "Failed password" not in (vendor.base / "sshd.log").read_text()

    def test_a_systemd_credential(
        self,
        instance: TestInstance,
        vendor_user: VendorUser,
        start_vendor: StartVendor,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """``password_file = "${CREDENTIALS_DIRECTORY}/vendor-password"``: read from the
        folder systemd hands the service (``LoadCredential=``); without that variable, one
        line says what is missing."""
        vendor = start_vendor(PASSWORD_ONLY)
        configure(instance, vendor, vendor_user)
        text = instance.config_file.read_text().replace(
            'password_file = "vendor-password"',
            'password_file = "${CREDENTIALS_DIRECTORY}/vendor-password"',
        )
        instance.config_file.write_text(text)
        entry_id = deposit(instance, "contrat.zip", b"data")
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
        proc = instance.cli("forward", str(entry_id))
        assert 2 == proc.returncode
        assert "CREDENTIALS_DIRECTORY is not set" in proc.stderr
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "vendor-password").write_text(vendor_user.password)
        (credentials / "vendor-password").chmod(0o440)  # as systemd lays them out
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
        proc = instance.cli("forward", str(entry_id))
        assert 0 == proc.returncode, proc.stderr
        assert {"contrat.zip": b"data"} == vendor.files()
