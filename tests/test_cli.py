"""The intake command as an operator types it: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import INTAKE, PASSWORD, TestInstance, make_user_key, write_test_config


def run(
    *args: str, cwd: Path | None = None, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INTAKE, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error output is exactly one line, and no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert 1 == len(lines), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


class TestInit:
    def test_init_prints_fingerprints_that_match_openssh_and_openssl(self, tmp_path: Path) -> None:
        """The fingerprints init prints are the ones ssh-keygen and openssl compute."""
        proc = run("init", str(tmp_path / "inst"))
        assert 0 == proc.returncode, proc.stderr
        keys = tmp_path / "inst" / "keys"
        for name in ("ssh_host_ed25519_key.pub", "ssh_host_rsa_key.pub"):
            ssh = subprocess.run(
                ["ssh-keygen", "-lf", str(keys / name)], capture_output=True, text=True, check=True
            ).stdout.split()[1]
            assert ssh in proc.stdout
        openssl = (
            subprocess.run(
                [
                    "openssl",
                    "x509",
                    "-in",
                    str(keys / "tls.crt"),
                    "-noout",
                    "-fingerprint",
                    "-sha256",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split("=", 1)[1]
        )
        assert openssl in proc.stdout

    def test_keys_are_private_and_never_overwritten(self, tmp_path: Path) -> None:
        """Key files are 0600; a second init changes nothing."""
        root = tmp_path / "inst"
        assert 0 == run("init", str(root)).returncode
        keys = sorted((root / "keys").iterdir())
        before = {p: p.read_bytes() for p in keys}
        assert all(0o600 == p.stat().st_mode & 0o777 for p in keys)
        (root / "intake.toml").write_text((root / "intake.toml").read_text() + "\n# mine\n")
        assert 0 == run("init", str(root)).returncode
        assert before == {p: p.read_bytes() for p in sorted((root / "keys").iterdir())}
        assert (root / "intake.toml").read_text().endswith("# mine\n")
        assert {"member-backups.toml", "outbox.toml"} <= {
            p.name for p in (root / "policies").iterdir()
        }

    def test_keys_show_json(self, instance: TestInstance) -> None:
        proc = instance.cli("keys", "show", "--json", check=True)
        doc = json.loads(proc.stdout)
        assert ["ssh-ed25519", "ssh-rsa"] == [k["type"] for k in doc["ssh"]]
        assert all(k["fingerprint"].startswith("SHA256:") for k in doc["ssh"])
        assert 32 == len(doc["tls"]["sha256"].split(":"))


class TestConfigResolution:
    def test_default_instance_is_created_in_var(self, tmp_path: Path) -> None:
        """With no --config, no $INTAKE_CONFIG and no ./intake.toml: ./var/ is used."""
        env = {k: v for k, v in os.environ.items() if k != "INTAKE_CONFIG"}
        proc = subprocess.run(
            [*INTAKE, "keys", "show"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert 0 == proc.returncode, proc.stderr
        assert (tmp_path / "var" / "intake.toml").exists()

    def test_environment_then_local_file(self, tmp_path: Path) -> None:
        """$INTAKE_CONFIG wins over ./intake.toml."""
        a, b = tmp_path / "a", tmp_path / "b"
        assert 0 == run("init", str(a)).returncode
        assert 0 == run("init", str(b)).returncode
        assert 0 == run("account", "add", "only-in-b", "--role", "auditor", cwd=b).returncode
        listed = run(
            "account", "list", "--json", cwd=b, env={"INTAKE_CONFIG": str(a / "intake.toml")}
        )
        assert [] == json.loads(listed.stdout)
        listed = run("account", "list", "--json", cwd=b)
        assert ["only-in-b"] == [e["name"] for e in json.loads(listed.stdout)]


class TestAccounts:
    def test_add_list_disable_enable(self, instance: TestInstance) -> None:
        """The account life cycle, each change audited without a secret."""
        add = instance.cli(
            "account",
            "add",
            "mairie-cerilly",
            "--role",
            "member",
            "--password-stdin",
            stdin="s3cret-Pw!\n",
        )
        assert 0 == add.returncode, add.stderr
        instance.cli("account", "disable", "mairie-cerilly", check=True)
        [entry] = json.loads(instance.cli("account", "list", "--json", check=True).stdout)
        assert {
            "name": "mairie-cerilly",
            "role": "member",
            "enabled": False,
        }.items() <= entry.items()
        instance.cli("account", "enable", "mairie-cerilly", check=True)
        [entry] = json.loads(instance.cli("account", "list", "--json", check=True).stdout)
        assert entry["enabled"] is True
        changes = instance.audit("account.changed")
        assert ["add", "disable", "enable"] == [c["action"] for c in changes]
        log_text = "".join(p.read_text() for p in (instance.root / "log").rglob("*") if p.is_file())
        assert "s3cret-Pw!" not in log_text
        assert "scrypt" not in instance.cli("account", "list", "--json").stdout

    def test_key_add(self, instance: TestInstance, tmp_path: Path) -> None:
        key = make_user_key(tmp_path / "k")
        instance.cli("account", "add", "tech", "--role", "technician", check=True)
        instance.cli("account", "key-add", "tech", str(key.with_suffix(".pub")), check=True)
        [entry] = json.loads(instance.cli("account", "list", "--json", check=True).stdout)
        assert 1 == len(entry["keys"])

    def test_passwd_reads_stdin_only(self, instance: TestInstance) -> None:
        """There is no way to pass a password in argv."""
        instance.cli("account", "add", "a1", "--role", "member", check=True)
        proc = instance.cli("account", "passwd", "a1", "hunter2")
        assert 2 == proc.returncode
        one_line_error(proc)
        assert (
            0
            == instance.cli(
                "account", "passwd", "a1", "--password-stdin", stdin="new-pass\n"
            ).returncode
        )

    @pytest.mark.parametrize("name", ["Mairie", "-x", "a b", "x" * 65, "outbox", "é"])
    def test_bad_names_exit_2(self, instance: TestInstance, name: str) -> None:
        proc = instance.cli("account", "add", name, "--role", "member")
        assert 2 == proc.returncode
        assert one_line_error(proc).startswith("intake: error:")

    def test_mistakes_give_one_line_and_the_documented_code(
        self, instance: TestInstance, tmp_path: Path
    ) -> None:
        instance.cli("account", "add", "a1", "--role", "member", check=True)
        cases = [
            (("account", "add", "a1", "--role", "member"), 1),  # exists
            (("account", "disable", "nobody"), 1),
            (("account", "add", "a2", "--role", "admin"), 2),
            (("account", "add", "a3", "--role", "member", "--password-stdin"), 2),  # empty stdin
            (("account", "key-add", "a1", str(tmp_path / "missing.pub")), 2),
            (("audit", "show", "--since", "yesterday"), 2),
            (("frobnicate",), 2),
        ]
        for args, code in cases:
            proc = instance.cli(*args, stdin="")
            assert code == proc.returncode, (args, proc.stderr)
            one_line_error(proc)

    def test_bad_config_is_one_line_exit_2(self, tmp_path: Path) -> None:
        conf = tmp_path / "intake.toml"
        conf.write_text("[sftp]\nlisten = 22\n")
        proc = run("--config", str(conf), "account", "list")
        assert 2 == proc.returncode
        assert "sftp.listen" in one_line_error(proc)


class TestAudit:
    def test_show_filters_and_json(self, instance: TestInstance) -> None:
        instance.cli("account", "add", "a1", "--role", "member", check=True)
        instance.cli("account", "add", "b1", "--role", "member", check=True)
        out = instance.cli("audit", "show", "--account", "b1", "--json", check=True).stdout
        records = [json.loads(line) for line in out.splitlines()]
        assert ["b1"] == [r["account"] for r in records]
        assert all({"ts", "event"} <= r.keys() for r in records)
        none = instance.cli("audit", "show", "--until", "2000-01-01T00:00:00Z", "--json").stdout
        assert "" == none
        human = instance.cli("audit", "show", "--event", "account.changed", check=True).stdout
        assert 2 == len(human.splitlines())


class TestServeStartup:
    def test_port_taken_is_one_line_exit_1(self, tmp_path: Path) -> None:
        """A busy port: one clear line on stderr, exit 1, no traceback."""
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        root = tmp_path / "inst"
        root.mkdir()
        write_test_config(root)
        conf = root / "intake.toml"
        conf.write_text(
            conf.read_text().replace(
                '"127.0.0.1:0"\nlogin', f'"127.0.0.1:{busy.getsockname()[1]}"\nlogin', 1
            )
        )
        assert 0 == run("init", str(root)).returncode
        try:
            proc = run("--config", str(conf), "serve")
        finally:
            busy.close()
        assert 1 == proc.returncode
        assert "cannot listen" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_unreadable_host_key_is_one_line_exit_1(self, instance: TestInstance) -> None:
        (instance.root / "keys" / "ssh_host_ed25519_key").write_text("garbage\n")
        proc = instance.cli("serve")
        assert 1 == proc.returncode
        assert "cannot read host key" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_password_is_never_in_argv_help() -> None:
    """The documented way to give a password is stdin; --password takes no value."""
    assert "--password-stdin" in run("account", "add", "--help").stdout
    assert PASSWORD  # the fixture's password exists only in test code
