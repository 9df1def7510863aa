"""Alerts, checked the way the on-call person sees them: mails received by a REAL SMTP
server on loopback (aiosmtpd: STARTTLS, implicit TLS, AUTH), a command hook's input,
the queue that outlives a mail server that is down and a restart of ``serve``.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import signal
import sys
from pathlib import Path

import pytest

from intake.adapters.audit.writer import AuditLog
from intake.core.alerts import Alert
from intake.core.clock import FixedClock
from intake.core.config import load, parse
from intake.core.errors import ConfigError
from intake.services.alerts.alerter import Alerts, queue_status
from intake.services.alerts.loop import AlertsLoop
from tests.clients import SftpClient
from tests.conftest import PASSWORD, ServeProcess, TestInstance, running, wait_for
from tests.smtp_server import (
    MAIL_PASSWORD,
    MAIL_USER,
    MailServer,
    Received,
    TestPki,
    alerts_section,
)

ONCALL = ("astreinte@agence.test", "dpo@agence.test")
T0 = _dt.datetime(2026, 12, 2, 8, 5, tzinfo=_dt.UTC)


def configure(
    instance: TestInstance,
    pki: TestPki,
    port: int,
    tls: str = "starttls",
    extra: str = "",
    ca: bool = True,
) -> None:
    """Point the instance's ``[alerts]`` at the test mail server."""
    section = alerts_section(instance.root, pki, port, ONCALL, tls, ca)
    with instance.config_file.open("a") as conf:
        conf.write(section + extra)


def one_mail(mail: MailServer, timeout: float = 30) -> Received:
    [received] = wait_for(lambda: mail.received(), timeout)
    return received


def alerts_at(instance: TestInstance, clock: FixedClock) -> tuple[Alerts, AuditLog]:
    """The instance's alerts on a clock the test moves, with a real audit log."""
    cfg = load(instance.config_file)
    audit = AuditLog(cfg.log_dir, clock)
    alerts = Alerts(cfg, audit, clock)
    audit.observe(alerts.observe)
    return alerts, audit


class TestAlertTest:
    def test_starttls_with_auth_delivers_to_every_recipient(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """``intake alert test`` over STARTTLS with AUTH: exit 0, one mail to both on-call
        addresses, in French, from the configured sender; the password is nowhere in the output."""
        configure(instance, pki, mail.port)
        proc = instance.cli("alert", "test")
        assert 0 == proc.returncode, proc.stderr
        assert "alert test delivered" in proc.stdout
        got = one_mail(mail)
        assert sorted(ONCALL) == sorted(got.rcpt_tos)
        assert "intake@sauvegardes.test" == got.mail_from
        assert MAIL_USER == got.login
        assert got.tls
        assert "Alerte de test (test alert)" in got.subject
        assert "la configuration [alerts] fonctionne" in got.body
        assert MAIL_PASSWORD not in proc.stdout + proc.stderr
        [record] = instance.audit("alert")
        assert ("test", "sent") == (record["kind"], record["status"])

    def test_implicit_tls(self, instance: TestInstance, pki: TestPki) -> None:
        """``smtp_tls = "tls"`` (port 465 style): TLS from the first byte, delivered."""
        server = MailServer(pki, "tls", MAIL_USER, MAIL_PASSWORD).start()
        try:
            configure(instance, pki, server.port, tls="tls")
            proc = instance.cli("alert", "test")
            assert 0 == proc.returncode, proc.stderr
            assert one_mail(server).tls
        finally:
            server.stop()

    def test_an_untrusted_certificate_is_not_sent_to(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """Without the test CA the server's certificate is not trusted: exit 1, one clear
        line, nothing sent (no fallback to clear text)."""
        configure(instance, pki, mail.port, ca=False)
        proc = instance.cli("alert", "test")
        assert 1 == proc.returncode
        assert "certificate is not trusted" in proc.stderr
        assert 1 == len(proc.stderr.strip().splitlines())
        assert [] == mail.received()

    def test_a_wrong_password_is_reported_without_the_password(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """The server refuses the login: exit 1, the line names the user, never a password."""
        configure(instance, pki, mail.port)
        (instance.root / "smtp-password").write_text("not the password\n")
        proc = instance.cli("alert", "test")
        assert 1 == proc.returncode
        assert f"refused the login of '{MAIL_USER}'" in proc.stderr
        assert "not the password" not in proc.stderr
        assert 1 == mail.failed_logins

    def test_a_password_file_others_can_read_is_refused(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """A group/world-readable password file: not used, exit 1, the fix in one line."""
        configure(instance, pki, mail.port)
        (instance.root / "smtp-password").chmod(0o644)
        proc = instance.cli("alert", "test")
        assert 1 == proc.returncode
        assert "alerts.smtp_password_file" in proc.stderr
        assert "chmod 600" in proc.stderr
        assert [] == mail.received()

    def test_clear_text_only_towards_a_loopback_relay(self, instance: TestInstance) -> None:
        """``smtp_tls = "none"`` towards another host is a config error naming the key."""
        with instance.config_file.open("a") as conf:
            conf.write(
                '[alerts]\nsmtp_host = "mail.example.fr"\nsmtp_tls = "none"\n'
                'recipients = ["a@example.fr"]\n'
            )
        proc = instance.cli("alert", "test")
        assert 2 == proc.returncode
        assert "alerts.smtp_tls" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_clear_text_to_a_loopback_relay(self, instance: TestInstance, pki: TestPki) -> None:
        """``smtp_tls = "none"`` to 127.0.0.1 (a local relay such as Postfix): delivered."""
        server = MailServer(pki, "none").start()
        try:
            with instance.config_file.open("a") as conf:
                conf.write(
                    f'[alerts]\nsmtp_host = "127.0.0.1"\nsmtp_port = {server.port}\n'
                    'smtp_tls = "none"\nrecipients = ["astreinte@agence.test"]\n'
                )
            proc = instance.cli("alert", "test")
            assert 0 == proc.returncode, proc.stderr
            assert ["astreinte@agence.test"] == one_mail(server).rcpt_tos
        finally:
            server.stop()

    def test_alerts_off(self, instance: TestInstance) -> None:
        """No ``[alerts]``: exit 1 and the keys to set."""
        proc = instance.cli("alert", "test")
        assert 1 == proc.returncode
        assert "alerts are off" in proc.stderr


class TestIncidents:
    def test_a_vanished_backup_is_mailed_with_its_file(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """A received backup deleted behind the server's back: within seconds one mail says
        what happened, when, which file and what to check; the alert is audited."""
        configure(instance, pki, mail.port)
        instance.add_account("mairie-a")
        with running(instance) as server:
            client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
            client.upload("/compta-2026-12.bak", b"backup bytes")
            client.close()
            wait_for(lambda: instance.audit("catalogued") or instance.audit("upload.complete"))
            (instance.area("mairie-a") / "compta-2026-12.bak").unlink()
            got = one_mail(mail)
            wait_for(lambda: [r for r in instance.audit("alert") if r["status"] == "sent"])
        assert "Sauvegarde disparue (backup vanished)" in got.subject
        assert "mairie-a /compta-2026-12.bak" in got.body
        assert "Quand :" in got.body
        assert "À vérifier :" in got.body
        assert "intake catalog show" in got.body
        statuses = [(r["kind"], r["status"]) for r in instance.audit("alert")]
        assert ("vanished", "raised") in statuses
        assert ("vanished", "sent") in statuses

    def test_a_command_raises_and_sends_its_own_alerts(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """Without ``serve``, ``intake catalog scan`` that finds a backup altered sends the
        alert itself before it exits."""
        configure(instance, pki, mail.port)
        instance.add_account("mairie-a")
        area = instance.area("mairie-a")
        area.mkdir(parents=True, exist_ok=True)
        (area / "paie.bak").write_bytes(b"original")
        instance.cli("catalog", "scan", check=True)
        (area / "paie.bak").write_bytes(b"tampered")
        instance.cli("catalog", "scan")
        got = one_mail(mail, timeout=5)
        assert "Sauvegarde altérée (backup altered)" in got.subject
        assert "mairie-a /paie.bak" in got.body
        assert 0 == queue_status(instance.root / "state").count

    def test_a_ban_is_mailed(self, instance: TestInstance, pki: TestPki, mail: MailServer) -> None:
        """An address banned after failed logins: one mail naming the address."""
        configure(instance, pki, mail.port)
        text = instance.config_file.read_text().replace(
            "max_login_failures = 50", "max_login_failures = 2"
        )
        instance.config_file.write_text(text)
        instance.add_account("mairie-a")
        with running(instance) as server:
            for _ in range(2):
                with pytest.raises(Exception):
                    SftpClient(*server.sftp, "mairie-a", "wrong password")
            got = one_mail(mail)
        assert "Adresse bannie (address banned)" in got.subject
        assert "127.0.0.1" in got.body


class TestThrottle:
    def test_one_mail_per_kind_then_the_rest_counted_in_the_next(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """Three files vanish at once: one mail listing the three. Another soon after waits
        for the throttle window (15 minutes), while another kind goes out at once; then
        the held one goes out."""
        configure(instance, pki, mail.port)
        clock = FixedClock(T0)
        alerts, audit = alerts_at(instance, clock)
        for n in range(3):
            audit.record("vanished", account="mairie-a", path=f"/b{n}.bak", entry=n + 1)
        assert 1 == alerts.deliver(gather=0).sent
        [first] = mail.received()
        assert "3 événements" in " ".join(first.subject.split())
        assert all(f"mairie-a /b{n}.bak" in first.body for n in range(3))

        clock.advance(_dt.timedelta(minutes=1))
        audit.record("vanished", account="mairie-b", path="/late.bak", entry=9)
        audit.record("banned", ip="203.0.113.9", reason="10 failed logins")
        delivery = alerts.deliver(gather=0)
        assert (1, 1) == (delivery.sent, delivery.waiting)
        assert "Adresse bannie" in mail.received()[1].subject
        assert 1 == queue_status(instance.root / "state").count

        clock.advance(_dt.timedelta(minutes=15))
        assert 1 == alerts.deliver(gather=0).sent
        held = mail.received()[2]
        assert "Sauvegarde disparue" in held.subject
        assert "mairie-b /late.bak" in held.body
        assert 0 == queue_status(instance.root / "state").count


class TestQueue:
    def test_down_then_up_across_a_restart(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """The mail server is down when a backup vanishes: the alert waits on disk, survives
        a restart of serve, and is sent by serve's loop once the server answers."""
        port = mail.port
        mail.stop()
        configure(instance, pki, port)
        instance.add_account("mairie-a")
        process = ServeProcess(instance)
        try:
            client = SftpClient(*process.addresses["sftp"], "mairie-a", PASSWORD)
            client.upload("/rh.bak", b"payroll")
            client.close()
            wait_for(lambda: instance.audit("upload.complete"))
            (instance.area("mairie-a") / "rh.bak").unlink()
            wait_for(lambda: queue_status(instance.root / "state").count)
            wait_for(lambda: "delivery failed" in process.log(), timeout=30)
            assert 0 == process.signal(signal.SIGTERM)
        finally:
            process.kill()
        status = queue_status(instance.root / "state")
        assert 1 == status.count
        assert status.oldest is not None

        process = ServeProcess(instance)
        try:
            wait_for(lambda: process.log().count("delivery failed") >= 1, timeout=30)
            mail.port = port
            mail.start()
            got = one_mail(mail, timeout=60)
            assert "mairie-a /rh.bak" in got.body
            wait_for(lambda: not queue_status(instance.root / "state").count)
        finally:
            process.kill()

    def test_queued_alerts_are_written_before_any_sending(
        self, instance: TestInstance, pki: TestPki
    ) -> None:
        """What an alert says is on disk, in the queue, as soon as it is raised."""
        configure(instance, pki, 9)  # nothing listens on the discard port of loopback
        alerts, audit = alerts_at(instance, FixedClock(T0))
        audit.record("altered", account="mairie-a", path="/x.bak", entry=4, sha256="ab" * 32)
        [path] = (instance.root / "state" / "alerts" / "queue").glob("*.json")
        doc = json.loads(path.read_text())
        assert "altered" == doc["alert"]["kind"]
        assert "mairie-a /x.bak (entrée 4)" == doc["alert"]["files"][0]
        delivery = alerts.deliver(gather=0)
        assert delivery.error and 1 == delivery.waiting
        assert path.exists()


class TestTriggers:
    def test_a_forward_failing_past_the_threshold(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """A forward that fails is not an alert at once; still failing an hour later, it is
        (once); forwarded at last, the next streak starts afresh."""
        configure(instance, pki, mail.port, extra='forward_failing = "1 hour"\n')
        clock = FixedClock(T0)
        alerts, audit = alerts_at(instance, clock)
        fields = {"account": "tech", "path": "/outbox/a.zip", "entry": 7, "reason": "refused"}
        audit.record("forward.failed", **fields)
        assert 0 == queue_status(instance.root / "state").count
        clock.advance(_dt.timedelta(minutes=61))
        audit.record("forward.failed", **fields)
        audit.record("forward.failed", **fields)
        assert 1 == queue_status(instance.root / "state").count
        alerts.deliver(gather=0)
        got = one_mail(mail)
        assert "Transfert vers l'éditeur en échec" in got.subject
        assert "tech /outbox/a.zip (entrée 7)" in got.body
        audit.record("forwarded", account="tech", path="/outbox/a.zip", entry=7)
        assert {} == alerts.queue.read_state().forwards

    def test_the_audit_verification_seam(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """``audit_verification_failed`` (the seam of ``intake audit verify``) mails the
        first bad record."""
        configure(instance, pki, mail.port)
        alerts, _audit = alerts_at(instance, FixedClock(T0))
        alerts.audit_verification_failed("hash chain broken", first_bad="seq 1234")
        alerts.deliver(gather=0)
        got = one_mail(mail)
        assert "Journal d'audit : vérification échouée" in got.subject
        assert "seq 1234" in got.body

    def test_the_daily_digest(self, instance: TestInstance, pki: TestPki, mail: MailServer) -> None:
        """``digest = "08:00"``: after 08:00 one digest with the day's counts, once a day."""
        configure(instance, pki, mail.port, extra='digest = "08:00"\n')
        clock = FixedClock(T0)
        alerts, audit = alerts_at(instance, clock)
        for _ in range(2):
            audit.record("upload.complete", account="mairie-a", path="/x.bak", size=1)
        audit.record("denied", account="mairie-a", path="/x.bak", reason="overwrite refused")
        loop = AlertsLoop(alerts, None)
        loop.check_digest()
        loop.check_digest()
        alerts.deliver(gather=0)
        got = one_mail(mail)
        assert "Résumé quotidien (daily digest)" in got.subject
        assert "reçus : 2" in got.body
        assert "refusés : 1" in got.body


class TestCommandHook:
    def _hook(self, instance: TestInstance, body: str, timeout: int = 30) -> Path:
        out = instance.root / "hook-out.json"
        script = instance.root / "hook.py"
        script.write_text(f"import sys, pathlib\ndata = sys.stdin.read()\n{body}\n")
        with instance.config_file.open("a") as conf:
            conf.write(
                f'[alerts]\ncommand = "{sys.executable} {script} {out}"\n'
                f"command_timeout = {timeout}\n"
            )
        return out

    def test_the_alert_json_on_stdin(self, instance: TestInstance) -> None:
        """``command``: the program gets the alert as JSON on stdin; exit 0 is delivered."""
        out = self._hook(instance, "pathlib.Path(sys.argv[1]).write_text(data)")
        proc = instance.cli("alert", "test")
        assert 0 == proc.returncode, proc.stderr
        doc = json.loads(out.read_text())
        assert ("test", 1) == (doc["kind"], doc["count"])
        assert "Alerte de test" in doc["subject"]
        assert "la configuration [alerts] fonctionne" in doc["text"]

    def test_a_failing_command_keeps_the_alert(self, instance: TestInstance) -> None:
        """A command that exits 3: not delivered (exit 1, its stderr's last line shown);
        a raised alert stays queued."""
        self._hook(instance, "sys.stderr.write('webhook unreachable\\n'); sys.exit(3)")
        proc = instance.cli("alert", "test")
        assert 1 == proc.returncode
        assert "exited 3: webhook unreachable" in proc.stderr
        alerts, _audit = alerts_at(instance, FixedClock(T0))
        alerts.raise_alert(Alert("disk", T0, details={"free": "1", "reserve": "2"}))
        assert "exited 3" in alerts.deliver(gather=0).error
        assert 1 == queue_status(instance.root / "state").count

    def test_a_command_that_hangs_is_stopped(self, instance: TestInstance) -> None:
        """A command that outlives ``command_timeout``: not delivered, said in one line."""
        self._hook(instance, "import time; time.sleep(30)", timeout=1)
        proc = instance.cli("alert", "test")
        assert 1 == proc.returncode
        assert "did not finish within 1 s" in proc.stderr


class TestAuditVerify:
    def test_a_tampered_audit_log_is_mailed(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """``intake audit verify`` that finds a changed record: exit 1 and a mail naming the
        record; the alert is not written into the log that failed."""
        configure(instance, pki, mail.port)
        for name in ("mairie-a", "mairie-b", "mairie-c"):
            instance.cli("account", "add", name, "--role", "member", check=True)
        [log_file] = (instance.root / "log").glob("audit-*.jsonl")
        text = log_file.read_text()
        assert "mairie-b" in text
        log_file.write_text(text.replace("mairie-b", "mairie-x", 1))
        proc = instance.cli("audit", "verify")
        assert 1 == proc.returncode
        got = one_mail(mail)
        assert "Journal d'audit : vérification échouée" in got.subject
        assert log_file.name in got.body
        assert "mairie-x" in log_file.read_text()
        assert [] == [r for r in instance.audit("alert")]


class TestAlertsSettings:
    @pytest.mark.parametrize(
        ("body", "key"),
        [
            ('smtp_host = "mail.example.fr"\nrecipients = []', "alerts.recipients"),
            ('smtp_host = "mail.example.fr"\nrecipients = ["not an address"]', "alerts.recipients"),
            (
                'smtp_host = "10.1.2.3"\nsmtp_tls = "none"\nrecipients = ["a@b.fr"]',
                "alerts.smtp_tls",
            ),
            ('smtp_tls = "ssl"', "alerts.smtp_tls"),
            ('sender = "intake@x.fr\\r\\nBcc: evil@x.fr"', "alerts.sender"),
            ('digest = "8h"', "alerts.digest"),
            ('throttle = "soon"', "alerts.throttle"),
        ],
    )
    def test_mistakes_name_the_key(self, tmp_path: Path, body: str, key: str) -> None:
        """Each mistake is one ConfigError naming the file and the key."""
        with pytest.raises(ConfigError, match=re.escape(f"intake.toml: {key}")):
            parse(f"[alerts]\n{body}\n", tmp_path / "intake.toml")

    def test_defaults(self, tmp_path: Path) -> None:
        """Off by default; STARTTLS on 587; 15-minute throttle; no digest."""
        alerts = parse("", tmp_path / "intake.toml").alerts
        shown = (alerts.enabled, alerts.port, alerts.throttle, alerts.digest)
        assert (False, 587, 900, "") == shown


class TestAccountAttacked:
    def test_an_account_under_attack_is_mailed_by_name(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """``account.attacked``: one mail naming the account, throttled per account (another
        account under attack is mailed at once)."""
        configure(instance, pki, mail.port)
        clock = FixedClock(T0)
        alerts, audit = alerts_at(instance, clock)
        fields = {"ip": "203.0.113.7", "failures": 20, "addresses": 9, "reason": "20 wrong"}
        audit.record("account.attacked", account="mairie-a", **fields)
        alerts.deliver(gather=0)
        audit.record("account.attacked", account="mairie-a", **fields)
        audit.record("account.attacked", account="mairie-b", **fields)
        alerts.deliver(gather=0)
        first, second = mail.received()
        assert "Compte attaqué (account under attack) : mairie-a" in first.subject
        assert "adresses distinctes : 9" in first.body
        assert "mairie-b" in second.subject
        assert 1 == queue_status(instance.root / "state").count
