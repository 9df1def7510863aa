"""Outside auditors against a running instance, so a library upgrade cannot quietly widen
what is offered: ssh-audit against the SFTP port, testssl.sh against the FTPS port.

What counts as a failure (and why):
- ssh-audit (Debian's 2.5): any ``[fail]``; any ``[warn]`` except "unknown algorithm" for
  the names this ssh-audit predates (``UNKNOWN_TO_SSH_AUDIT``: the ML-KEM hybrid key
  exchange and OpenSSH's strict-kex marker, both newer than the tool); any ``[warn]`` on a
  MAC at all. Besides, every key exchange offered must complete a login (nothing offered
  that fails, like group exchange without a moduli file), and those refused must fail.
- testssl.sh with ``-t ftp`` (STARTTLS), limited to what a library upgrade could widen
  and the OpenSSL-level flaws that matter for a TLS 1.2-only server: protocols (``-p``),
  cipher categories (``-s``: NULL, export, RC4, 3DES, CBC...), Heartbleed, CCS injection
  and renegotiation (``-H -I -R``). The full ``-f -U`` adds minutes on a loaded machine
  for checks these already answer (no CBC, no RC4, no TLS < 1.2). Any finding of severity
  HIGH or CRITICAL fails. MEDIUM and LOW are not failures here (the certificate is
  self-signed by design and members pin its fingerprint; testssl rates that, not a weak
  protocol), but no protocol below TLS 1.2 may be offered whatever its rating.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from tests.conftest import PASSWORD, RunningServer
from tests.test_sftp_openssh import sftp_batch

UNKNOWN_TO_SSH_AUDIT = {"mlkem768x25519-sha256", "kex-strict-s-v00@openssh.com"}
OFFERED_KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
)
FAILING_SEVERITIES = {"HIGH", "CRITICAL"}


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed (Debian package; .ci/run installs it)"
    return path


class TestSshAudit:
    def test_no_fail_and_no_warning_but_unknown_new_algorithms(self, server: RunningServer) -> None:
        """ssh-audit shows no [fail], no MAC warning, only 'unknown' for newer algorithms."""
        host, port = server.sftp
        proc = subprocess.run(
            [tool("ssh-audit"), "-n", "-l", "warn", "-p", str(port), host],
            capture_output=True,
            text=True,
            timeout=60,
        )
        findings = re.findall(r"^\((\w+)\) (\S+)\s+-- \[(warn|fail)\] (.*)$", proc.stdout, re.M)
        assert "(kex) kex-strict-s-v00@openssh.com" in proc.stdout, proc.stdout  # it ran
        fails = [f for f in findings if f[2] == "fail"]
        mac_warnings = [f for f in findings if f[0] == "mac"]
        other_warnings = [
            f
            for f in findings
            if f[2] == "warn"
            and not (f[3].startswith("unknown algorithm") and f[1] in UNKNOWN_TO_SSH_AUDIT)
        ]
        assert [] == fails, proc.stdout
        assert [] == mac_warnings, proc.stdout
        assert [] == other_warnings, proc.stdout

    @pytest.mark.parametrize("kex", OFFERED_KEX)
    def test_every_key_exchange_offered_works(self, server: RunningServer, kex: str) -> None:
        """A client that offers only ``kex`` logs in and lists its folder (paramiko)."""
        server.instance.add_account("mairie-a")
        transport = paramiko.Transport(server.sftp)
        try:
            transport.get_security_options().kex = (kex,)
            transport.connect()
            transport.auth_password("mairie-a", PASSWORD)
            sftp = paramiko.SFTPClient.from_transport(transport)
            assert sftp is not None
            assert [] == sftp.listdir("/")
        finally:
            transport.close()

    @pytest.mark.parametrize(
        ("kex", "works"),
        [
            ("curve25519-sha256@libssh.org", True),
            ("diffie-hellman-group16-sha512", True),
            ("diffie-hellman-group-exchange-sha256", False),
            ("ecdh-sha2-nistp256", False),
            ("diffie-hellman-group14-sha256", False),
        ],
    )
    def test_openssh_agrees(
        self, server: RunningServer, tmp_path: Path, kex: str, works: bool
    ) -> None:
        """OpenSSH's sftp with one key exchange and one ETM MAC: offered ones log in."""
        server.instance.add_account("mairie-cerilly", key=True)
        options = ["-o", f"KexAlgorithms={kex}", "-o", "Ciphers=aes128-ctr"]
        options += ["-o", "MACs=hmac-sha2-256-etm@openssh.com"]
        proc = sftp_batch(server, "mairie-cerilly", "ls /\n", tmp_path, options=options)
        assert works == (proc.returncode == 0), proc.stderr

    def test_encrypt_and_mac_hmacs_are_refused(self, server: RunningServer, tmp_path: Path) -> None:
        """A client offering only hmac-sha2-256 (encrypt-and-MAC) finds no common MAC."""
        server.instance.add_account("mairie-cerilly", key=True)
        options = ["-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256,hmac-sha2-512"]
        proc = sftp_batch(server, "mairie-cerilly", "ls /\n", tmp_path, options=options)
        assert 0 != proc.returncode
        assert "no matching MAC" in proc.stderr


class TestTestssl:
    @pytest.mark.timeout(300)  # about 90 s; testssl.sh is a shell script, slow when loaded
    def test_no_high_or_critical_finding_on_ftps(
        self, server: RunningServer, tmp_path: Path
    ) -> None:
        """testssl.sh (STARTTLS ftp): protocols, ciphers, PFS, vulnerabilities: no HIGH."""
        assert server.ftps is not None
        host, port = server.ftps
        report = tmp_path / "testssl.json"
        proc = subprocess.run(
            [
                tool("testssl"),
                "--quiet",
                "--color",
                "0",
                "--warnings",
                "off",
                "-t",
                "ftp",
                "-p",
                "-s",
                "-H",
                "-I",
                "-R",
                "--jsonfile",
                str(report),
                f"{host}:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        findings = json.loads(report.read_text())
        by_id = {f["id"]: f for f in findings}
        assert "TLS1_2" in by_id, proc.stdout[-3000:]  # it reached the TLS layer
        assert by_id["TLS1_2"]["finding"].startswith("offered")
        for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            assert by_id[old]["finding"].startswith("not offered"), by_id[old]
        bad = [
            (f["id"], f["severity"], f["finding"])
            for f in findings
            if f["severity"] in FAILING_SEVERITIES
        ]
        assert [] == bad
