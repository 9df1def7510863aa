"""Trusted time (issue 15, items 2 and 3): RFC 3161 time-stamps of the signed head from a
real authority (``openssl ts`` behind HTTP, ``tests/tsa.py``), checked by ``audit verify
--tsa-ca-file``; and the signed head mailed to the DPO through a real SMTP server.

The forgeries are made as whoever holds the audit PRIVATE key could make them (root on
the server): rewrite records, re-chain, re-sign every checkpoint. Time-stamp tokens are
what they cannot make.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intake.adapters.audit import chain, signing
from intake.core.clock import SystemClock
from intake.core.config import load
from intake.core.errors import ConfigError
from intake.services.anchors import Anchors
from intake.services.instance import init_instance
from tests import forging
from tests.clients import SftpClient
from tests.conftest import (
    PASSWORD,
    ServeProcess,
    TestInstance,
    running,
    wait_for,
    write_test_config,
)
from tests.forging import Line, verify
from tests.smtp_server import MailServer, TestPki, alerts_section
from tests.tsa import Authority, make_pki, other_ca

INTERVAL = 2  # seconds between time-stamps in these tests


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    """One time-stamping authority (its CA and TSA keys made once) for the module."""
    served = Authority(make_pki(tmp_path_factory.mktemp("tsa"))).start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return other_ca(tmp_path_factory.mktemp("other-ca"))


def tsa_config(authority: Authority, url: str | None = None, interval: int = INTERVAL) -> str:
    return (
        "[audit]\n"
        f'tsa_url = "{url or authority.url}"\n'
        f'tsa_ca_file = "{authority.ca}"\n'
        f'timestamp_interval = "{interval} seconds"\n'
    )


def stamps_in(log_dir: Path) -> list[dict[str, Any]]:
    records = [json.loads(raw) for _, raw in forging.read(log_dir)]
    return [r for r in records if r["event"] == "timestamp"]


def timestamp_records(instance: TestInstance) -> list[dict[str, object]]:
    return instance.audit("timestamp")


@dataclass
class StampedLog:
    """A real instance's log written by ``intake serve`` with time-stamps every 2 s: an
    upload after the first token, then at least four more tokens."""

    instance: TestInstance
    public_key: Path
    signer: signing.Signer
    lines: list[Line]

    @property
    def log_dir(self) -> Path:
        return self.instance.root / "log"

    def copy(self, target: Path) -> Path:
        shutil.copytree(self.log_dir, target)
        return target


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory, authority: Authority) -> StampedLog:
    root = tmp_path_factory.mktemp("stamped")
    home = root / "inst"
    home.mkdir()
    conf = write_test_config(home, tsa_config(authority))
    init_instance(home, SystemClock())
    instance = TestInstance(home, conf)
    # audited (account.changed): the first token has a record to stamp
    add = ("account", "add", "mairie-a", "--role", "member", "--password-stdin")
    instance.cli(*add, stdin=PASSWORD + "\n", check=True)
    serve = ServeProcess(instance)
    try:
        wait_for(lambda: timestamp_records(instance))
        client = SftpClient(*serve.addresses["sftp"], "mairie-a", PASSWORD)
        try:
            client.upload("/base.zip", b"backup\n")
        finally:
            client.close()
        upload_seq = instance.audit("upload.complete")[0]["seq"]
        assert isinstance(upload_seq, int)
        wait_for(
            lambda: (
                len([r for r in timestamp_records(instance) if int(str(r["stamps"])) > upload_seq])
                >= 4
            ),
            60,
        )
    finally:
        assert 0 == serve.signal(15), serve.log()
    public = root / "audit.pub"
    instance.cli("keys", "export-audit-public", str(public), check=True)
    signer = signing.load_signer(home / "keys" / signing.AUDIT_KEY_FILE)
    return StampedLog(instance, public, signer, forging.read(home / "log"))


def resign(
    lines: list[Line], signer: signing.Signer, edit: dict[int, dict[str, Any]]
) -> list[Line]:
    """What the holder of the private key can do: ``edit`` (index -> new record body)
    applied, then every seq, prev, checkpoint signature AND the heads named by timestamp
    records recomputed, so that everything but the tokens themselves is consistent."""
    out: list[Line] = []
    hashes: dict[int, str] = {}
    prev = chain.GENESIS
    for index, (name, raw) in enumerate(lines):
        record = edit.get(index) or json.loads(raw)
        body = {k: v for k, v in record.items() if k not in ("seq", "prev")}
        seq = index + 1
        if body["event"] == "checkpoint":
            doc = {k: v for k, v in body["checkpoint"].items() if k != "signature"}
            doc.update(seq=seq - 1, head=prev, public_key=forging.b64(signer.verifier.raw))
            body["checkpoint"] = signing.sign_document(doc, signer)
        elif body["event"] == "timestamp":
            body["head"] = hashes[body["stamps"]]
        text = json.dumps(body, ensure_ascii=True)[:-1] + chain.chain_fields(seq, prev)
        data = text.encode("ascii")
        out.append((name, data))
        prev = hashes[seq] = chain.line_hash(data)
    return out


def forged_copy(stamped: StampedLog, target: Path, lines: list[Line]) -> Path:
    copy = stamped.copy(target)
    forging.write(copy, lines)
    forging.set_head_file(copy, forging.last_document(lines))
    return copy


def index_of(lines: list[Line], event: str, nth: int = 0) -> int:
    found = [i for i, (_, raw) in enumerate(lines) if json.loads(raw)["event"] == event]
    return found[nth]


class TestServeStamps:
    def test_serve_keeps_a_token_for_a_signed_head(self, stamped: StampedLog) -> None:
        """``serve`` wrote timestamp records, each for the head a checkpoint before it
        signed, each carrying the authority's token (base64 DER) and the interval."""
        records = stamps_in(stamped.log_dir)
        assert len(records) >= 5
        heads = {
            r["checkpoint"]["seq"]: r["checkpoint"]["head"]
            for r in (json.loads(raw) for _, raw in stamped.lines)
            if r["event"] == "checkpoint"
        }
        for record in records:
            assert heads[record["stamps"]] == record["head"]
            assert INTERVAL == record["interval"]
            assert "intake test TSA" in record["tsa"]
            assert base64.b64decode(record["response"])[:1] == b"\x30"  # DER SEQUENCE


class TestVerifyWithTokens:
    def test_genuine_log_verifies_and_says_when_it_existed(
        self, stamped: StampedLog, authority: Authority, tmp_path: Path, capsys: Any
    ) -> None:
        """``verify --tsa-ca-file`` on the genuine copy: exit 0, every token checked, and
        the proven time of the last stamped record reported."""
        copy = stamped.copy(tmp_path / "copy")
        key = ("--public-key", str(stamped.public_key))
        code, text, report = verify(capsys, copy, *key, "--tsa-ca-file", str(authority.ca))
        assert 0 == code, text
        last = stamps_in(copy)[-1]
        proven = report["timestamps"]
        assert proven["checked"]
        assert len(stamps_in(copy)) == proven["tokens"]
        assert last["stamps"] == proven["stamped_seq"]
        assert last["gen_time"] == proven["stamped_at"]
        assert f"time-stamped: records 1-{last['stamps']} existed at {last['gen_time']}" in text
        assert "verified" in text

    def test_without_the_ca_tokens_are_reported_not_required(
        self, stamped: StampedLog, tmp_path: Path, capsys: Any
    ) -> None:
        """Without ``--tsa-ca-file``, the tokens are counted and reported as not checked;
        a log whose tokens were all removed still verifies (nothing required)."""
        copy = stamped.copy(tmp_path / "copy")
        key = ("--public-key", str(stamped.public_key))
        code, text, report = verify(capsys, copy, *key)
        assert 0 == code, text
        assert "not checked (no --tsa-ca-file)" in text
        assert not report["timestamps"]["checked"]
        keep = [line for line in stamped.lines if b'"event": "timestamp"' not in line[1]]
        bare = forged_copy(stamped, tmp_path / "bare", resign(keep, stamped.signer, {}))
        code, text, _ = verify(capsys, bare, *key)
        assert 0 == code, text

    def test_records_left_without_a_token_fail(
        self, stamped: StampedLog, authority: Authority, tmp_path: Path, capsys: Any
    ) -> None:
        """The key holder removes every token after the first and re-signs the log: the
        upload after it is covered by no token while the log goes on more than twice the
        interval: exit 1 at that record."""
        first = index_of(stamped.lines, "timestamp")
        keep = [
            line
            for i, line in enumerate(stamped.lines)
            if i <= first or b'"event": "timestamp"' not in line[1]
        ]
        copy = forged_copy(stamped, tmp_path / "copy", resign(keep, stamped.signer, {}))
        key = ("--public-key", str(stamped.public_key))
        code, text, report = verify(capsys, copy, *key, "--tsa-ca-file", str(authority.ca))
        assert 1 == code, text
        assert "covered by no time-stamp token" in report["problem"]["message"]
        assert report["problem"]["seq"] > json.loads(stamped.lines[first][1])["stamps"]
        assert "verified" not in text

    def test_a_token_for_another_head_fails(
        self, stamped: StampedLog, authority: Authority, tmp_path: Path, capsys: Any
    ) -> None:
        """The last token replaced by an earlier genuine one (another head), the log
        re-signed: its message imprint does not match the head it claims: exit 1."""
        first, last = index_of(stamped.lines, "timestamp"), index_of(stamped.lines, "timestamp", -1)
        record = json.loads(stamped.lines[last][1])
        record["response"] = json.loads(stamped.lines[first][1])["response"]
        lines = resign(stamped.lines, stamped.signer, {last: record})
        copy = forged_copy(stamped, tmp_path / "copy", lines)
        key = ("--public-key", str(stamped.public_key))
        code, text, report = verify(capsys, copy, *key, "--tsa-ca-file", str(authority.ca))
        assert 1 == code, text
        assert "message imprint is not this head" in report["problem"]["message"]
        assert last + 1 == report["problem"]["seq"]

    def test_the_key_holder_cannot_rewrite_a_stamped_record(
        self, stamped: StampedLog, authority: Authority, tmp_path: Path, capsys: Any
    ) -> None:
        """The upload attributed to another member, every checkpoint re-signed with the
        REAL key and every timestamp record pointed at the new heads: the public key alone
        says verified, the tokens do not."""
        upload = index_of(stamped.lines, "upload.complete")
        record = json.loads(stamped.lines[upload][1])
        record["account"] = "mairie-b"
        copy = forged_copy(
            stamped, tmp_path / "copy", resign(stamped.lines, stamped.signer, {upload: record})
        )
        key = ("--public-key", str(stamped.public_key))
        code, text, _ = verify(capsys, copy, *key)
        assert 0 == code, text  # what a public key alone cannot see
        code, text, report = verify(capsys, copy, *key, "--tsa-ca-file", str(authority.ca))
        assert 1 == code, text
        assert "message imprint is not this head" in report["problem"]["message"]

    def test_another_ca_fails(
        self, stamped: StampedLog, foreign_ca: Path, tmp_path: Path, capsys: Any
    ) -> None:
        """Tokens checked against a CA that did not sign the authority: exit 1."""
        copy = stamped.copy(tmp_path / "copy")
        key = ("--public-key", str(stamped.public_key))
        code, text, report = verify(capsys, copy, *key, "--tsa-ca-file", str(foreign_ca))
        assert 1 == code, text
        assert "does not chain to the TSA CA given" in report["problem"]["message"]

    def test_a_token_checks_with_openssl_alone(
        self, stamped: StampedLog, authority: Authority, tmp_path: Path
    ) -> None:
        """What the README tells an auditor without intake: ``openssl ts -verify`` of a
        token over the head's 32 bytes says OK."""
        record = stamps_in(stamped.log_dir)[-1]
        (tmp_path / "token.tsr").write_bytes(base64.b64decode(record["response"]))
        (tmp_path / "head.bin").write_bytes(bytes.fromhex(record["head"]))
        proc = subprocess.run(
            ["openssl", "ts", "-verify", "-data", "head.bin", "-in", "token.tsr",
             "-CAfile", str(authority.ca)],
            cwd=tmp_path, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert 0 == proc.returncode, proc.stderr
        assert "Verification: OK" in proc.stdout


# -- the authority down, the head by mail -----------------------------------------------


def mail_config(instance: TestInstance, pki: TestPki, mail: MailServer) -> str:
    return alerts_section(instance.root, pki, mail.port, ("astreinte@agence.test",))


class TestAuthorityDown:
    def test_retried_alerted_and_uploads_go_on(
        self,
        instance: TestInstance,
        authority: Authority,
        pki: TestPki,
        mail: MailServer,
        tmp_path: Path,
        capsys: Any,
    ) -> None:
        """The authority unreachable after a first token: an upload is received all the
        same, the request is tried again, one ``timestamp.failing`` alert is mailed; once
        the authority answers again (same address) a token is kept, and ``verify
        --tsa-ca-file`` names the upload, time-stamped more than twice the interval late."""
        tsa = Authority(authority.pki).start()  # its own server, the module's CA
        write_test_config(
            instance.root, tsa_config(tsa, interval=1) + mail_config(instance, pki, mail)
        )
        add = ("account", "add", "mairie-a", "--role", "member", "--password-stdin")
        instance.cli(*add, stdin=PASSWORD + "\n", check=True)
        try:
            with running(instance) as server:
                wait_for(lambda: timestamp_records(instance))
                tsa.stop()  # the port now refuses connections
                before = len(timestamp_records(instance))
                client = SftpClient(*server.sftp, "mairie-a", PASSWORD)
                try:
                    client.upload("/base.zip", b"received while the authority is down\n")
                finally:
                    client.close()
                [upload] = instance.audit("upload.complete")
                alert = wait_for(
                    lambda: [m for m in mail.received() if "time-stamping failing" in m.subject]
                )[0]
                assert "L'autorité d'horodatage" in alert.body
                assert before == len(timestamp_records(instance))
                tsa.start()  # back on the same port
                wait_for(
                    lambda: [
                        r
                        for r in timestamp_records(instance)
                        if int(str(r["stamps"])) > int(str(upload["seq"]))
                    ]
                )
        finally:
            tsa.stop()
        raised = [r for r in instance.audit("alert") if r.get("kind") == "timestamp.failing"]
        assert 1 == len([r for r in raised if r["status"] == "raised"])
        public = tmp_path / "audit.pub"
        instance.cli("keys", "export-audit-public", str(public), check=True)
        args = ("--public-key", str(public), "--tsa-ca-file", str(authority.ca))
        code, text, report = verify(capsys, instance.root / "log", *args)
        assert 1 == code, text
        assert "more than twice the time-stamp interval" in report["problem"]["message"]
        named = re.search(r"record (\d+) \(", report["problem"]["message"])
        assert named is not None
        assert int(str(upload["seq"])) - 3 <= int(named[1]) <= int(str(upload["seq"]))


class TestHeadByMail:
    def test_audit_head_send_mails_a_head_verify_accepts(
        self,
        instance: TestInstance,
        authority: Authority,
        pki: TestPki,
        mail: MailServer,
        tmp_path: Path,
        capsys: Any,
    ) -> None:
        """``intake audit head --send``: one mail to head_recipients with the signed head
        as a JSON attachment that ``verify --since-head`` accepts, and its fresh token,
        which the authority's CA proves; audited ``head.sent``."""
        write_test_config(
            instance.root,
            tsa_config(authority)
            + 'head_recipients = ["dpo@agence.test"]\n'
            + mail_config(instance, pki, mail),
        )
        add = ("account", "add", "mairie-a", "--role", "member", "--password-stdin")
        instance.cli(*add, stdin=PASSWORD + "\n", check=True)  # a record to stamp
        proc = instance.cli("audit", "head", "--send")
        assert 0 == proc.returncode, proc.stderr
        [got] = wait_for(lambda: mail.received())
        assert ["dpo@agence.test"] == got.rcpt_tos
        parts = {p.get_filename(): p.get_content() for p in got.message.iter_attachments()}
        [head_name] = [n for n in parts if n.startswith("audit-head-")]
        [stamp_name] = [n for n in parts if n.startswith("audit-timestamp-")]
        head_doc = json.loads(parts[head_name])
        assert "audit-checkpoint" == head_doc["kind"]
        stamp = json.loads(parts[stamp_name])
        assert (head_doc["seq"], head_doc["head"]) == (stamp["stamps"], stamp["head"])
        kept = tmp_path / "dpo-head.json"
        kept.write_bytes(parts[head_name])
        public = tmp_path / "audit.pub"
        instance.cli("keys", "export-audit-public", str(public), check=True)
        args = ("--public-key", str(public), "--since-head", str(kept))
        code, text, report = verify(
            capsys, instance.root / "log", *args, "--tsa-ca-file", str(authority.ca)
        )
        assert 0 == code, text
        assert report["since_head"] == head_doc["seq"]
        assert report["timestamps"]["stamped_seq"] >= head_doc["seq"]
        [sent] = instance.audit("head.sent")
        assert (head_doc["seq"], "cli") == (sent["signs"], sent["protocol"])

    def test_serve_mails_the_head_once_a_month(
        self, instance: TestInstance, pki: TestPki, mail: MailServer
    ) -> None:
        """``serve`` with head_recipients and no authority: the head goes out by itself
        (JSON attachment, no token), and not again within the same month."""
        write_test_config(
            instance.root,
            '[audit]\nhead_recipients = ["dpo@agence.test"]\n' + mail_config(instance, pki, mail),
        )
        with running(instance):
            [got] = wait_for(lambda: [m for m in mail.received() if "audit head" in m.subject])
            wait_for(lambda: instance.audit("head.sent"))
        names = [p.get_filename() for p in got.message.iter_attachments()]
        assert 1 == len(names) and str(names[0]).startswith("audit-head-")
        inst = instance.open()
        try:
            assert Anchors(inst).send_monthly() is None
        finally:
            inst.close()
        assert 1 == len(instance.audit("head.sent"))


class TestConfig:
    @pytest.mark.parametrize(
        ("extra", "key"),
        [
            ('[audit]\ntsa_url = "file:///etc/passwd"\n', "audit.tsa_url"),
            ('[audit]\ntimestamp_interval = "soon"\n', "audit.timestamp_interval"),
            ('[audit]\nhead_recipients = ["not an address"]\n', "audit.head_recipients"),
            ('[audit]\nhead_recipients = ["dpo@agence.test"]\n', "audit.head_recipients"),
        ],
    )
    def test_a_wrong_value_names_its_key(self, tmp_path: Path, extra: str, key: str) -> None:
        """Each new key's mistakes are one ConfigError naming it (head_recipients needs
        an SMTP server)."""
        conf = write_test_config(tmp_path, extra)
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load(conf)
