"""Trust flows only from the keys the verifier holds (issue 15, findings 1-4).

Each forgery is made as the hostile review made it, without the private key: on a copy of
a real instance's log (``tests/forging.py``), by rewriting records, recomputing the chain,
signing checkpoints and ``audit-head.json`` with a key of the forger's own.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from intake.adapters.audit import chain as audit_chain
from intake.adapters.audit import signing
from intake.adapters.audit.writer import AuditLog
from intake.core.clock import FixedClock
from intake.frontends.cli import main as cli
from tests import forging
from tests.forging import Line, RealLog, verify


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealLog:
    return forging.build_real_log(tmp_path_factory.mktemp("real"))


def message(report: dict[str, Any]) -> str:
    assert isinstance(report["problem"], dict), report
    return str(report["problem"]["message"])


def rewritten(lines: list[Line]) -> list[Line]:
    """mairie-a's uploads attributed to mairie-b, the failed logins gone (not yet re-chained)."""
    out: list[Line] = []
    for name, raw in lines:
        record = json.loads(raw)
        if record["event"] == "login.failed":
            continue
        if record["event"] == "upload.complete" and record["account"] == "mairie-a":
            record["account"] = "mairie-b"
        out.append((name, (json.dumps(record) + "\n").encode()))
    return out


def head_of(lines: list[Line], signer: signing.Signer) -> dict[str, Any]:
    """A head document for the end of ``lines``, signed by ``signer``."""
    body = {
        "kind": "audit-checkpoint",
        "seq": len(lines),
        "head": audit_chain.line_hash(lines[-1][1]),
        "ts": json.loads(lines[-1][1])["ts"],
        "public_key": forging.b64(signer.verifier.raw),
    }
    return signing.sign_document(body, signer)


def real_raw(pem: Path) -> bytes:
    return signing.load_verifier(pem).raw


class TestGenuine:
    @pytest.mark.parametrize("key", ["first", "current"])
    def test_real_log_verifies_with_either_public_key(
        self, real: RealLog, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The untouched copy verifies with the key before the rotation (trust flows forward
        through it) and with the current one (its checkpoint vouches for all before it)."""
        copy = real.copy(tmp_path / "copy")
        pem = real.first_key if key == "first" else real.current_key
        code, text, report = verify(capsys, copy, "--public-key", str(pem))
        assert 0 == code, text
        assert report["signed_seq"] == len(real.lines) - 1
        assert 0 == report["unsigned"]
        assert "verified" in text
        kept = ("--since-head", str(real.kept_head))
        code, text, _ = verify(capsys, copy, "--public-key", str(pem), *kept)
        # the DPO's head was signed before the rotation: trust never flows back to its key
        assert (0 if key == "first" else 1) == code, text
        both = ("--public-key", str(real.first_key), "--public-key", str(real.current_key))
        code, text, _ = verify(capsys, copy, *both, *kept)
        assert 0 == code, text


class TestFinding1ForeignKeys:
    @pytest.mark.parametrize("key", ["first", "current"])
    def test_log_resigned_by_a_key_that_names_the_real_one(
        self, real: RealLog, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every record rewritten, checkpoints signed by a fresh key A, the last naming the
        real key as next_public_key, audit-head.json signed by A: not verified."""
        pem = real.first_key if key == "first" else real.current_key
        forger = signing.generate_signer()
        copy = real.copy(tmp_path / "copy")
        forged = forging.rechain(rewritten(real.lines), forger, next_key=real_raw(pem))
        forging.write(copy, forged)
        forging.set_head_file(copy, forging.last_document(forged))
        code, text, report = verify(capsys, copy, "--public-key", str(pem))
        assert 1 == code, text
        assert "verified" not in text
        assert "trusted" in message(report)
        assert 0 == report["signed_seq"]

    def test_instance_keys_after_a_real_rotation(
        self, real: RealLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The same forgery checked with the instance's own keys (current and retired)."""
        copy = real.copy_instance(tmp_path / "inst")
        forger = signing.generate_signer()
        forged = forging.rechain(rewritten(real.lines), forger, next_key=real_raw(real.current_key))
        forging.write(copy.root / "log", forged)
        forging.set_head_file(copy.root / "log", forging.last_document(forged))
        proc = copy.cli("audit", "verify")
        assert 1 == proc.returncode, proc.stdout
        assert "verified" not in proc.stdout
        assert "trusted" in proc.stderr


class TestFinding2NothingSigned:
    def test_no_checkpoint_at_all(
        self, real: RealLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every record rewritten, checkpoints and audit-head.json removed: not verified."""
        copy = real.copy(tmp_path / "copy")
        forging.write(copy, forging.rechain(rewritten(real.lines), drop_checkpoints=True))
        forging.set_head_file(copy, None)
        code, text, report = verify(capsys, copy, "--public-key", str(real.current_key))
        assert 1 == code, text
        assert "no record is signed by a trusted key" in message(report)

    def test_every_line_without_seq(
        self, real: RealLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Lines written without seq read as lines from before the chain: not verified."""
        copy = real.copy(tmp_path / "copy")
        forged = forging.rechain(rewritten(real.lines), drop_checkpoints=True, chained=False)
        forging.write(copy, forged)
        forging.set_head_file(copy, None)
        code, text, report = verify(capsys, copy, "--public-key", str(real.first_key))
        assert 1 == code, text
        assert "no record is signed by a trusted key" in message(report)


class TestFinding3Heads:
    def test_head_file_signed_by_a_random_key(
        self, real: RealLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The log kept up to the DPO's head, a later signed record altered, the later
        checkpoints dropped, re-chained, audit-head.json signed by a random key: the
        altered records are not passed off as "not yet signed"."""
        kept = json.loads(real.kept_head.read_text())["seq"]
        lines = list(real.lines)
        later = next(
            i for i, (_, raw) in enumerate(lines)
            if i >= kept and json.loads(raw)["event"] == "upload.complete"
        )  # fmt: skip
        lines[later] = (lines[later][0], lines[later][1].replace(b"mairie-", b"mairie-x"))
        forged = forging.rechain(lines, start=kept, drop_checkpoints=True)
        copy = real.copy(tmp_path / "copy")
        forging.write(copy, forged)
        forging.set_head_file(copy, head_of(forged, signing.generate_signer()))
        code, text, report = verify(
            capsys, copy, "--public-key", str(real.first_key), "--since-head", str(real.kept_head)
        )
        assert 1 == code, text
        assert "not yet signed" not in text
        assert audit_chain.HEAD_NAME == report["problem"]["file"]
        assert "trusted" in message(report)

    def test_kept_head_signed_by_an_untrusted_key(
        self, real: RealLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A head that matches the log but was signed by a key nobody trusts proves nothing."""
        copy = real.copy(tmp_path / "copy")
        fake = tmp_path / "head.json"
        fake.write_text(json.dumps(head_of(real.lines[:10], signing.generate_signer())))
        code, text, report = verify(
            capsys, copy, "--public-key", str(real.first_key), "--since-head", str(fake)
        )
        assert 1 == code, text
        assert "trusted" in message(report)

    def test_records_left_unsigned_past_the_interval(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A log whose last checkpoints were dropped (and audit-head.json with them) holds
        records that waited hours for a checkpoint the writer signs within 5 minutes: not
        'not yet signed' but a failure, named at the first of them."""
        keys = tmp_path / "keys"
        keys.mkdir()
        signing.ensure_audit_key(keys)
        pem = tmp_path / "audit.pub"
        pem.write_bytes(signing.load_signer(keys / signing.AUDIT_KEY_FILE).verifier.pem())
        clock = FixedClock(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC))
        log_dir = tmp_path / "log"
        audit = AuditLog(log_dir, clock, keys / signing.AUDIT_KEY_FILE, 1000, 300)
        for i in range(12):
            audit.record("login.ok", account=f"member{i}", ip="192.0.2.1", protocol="sftp")
            clock.advance(dt.timedelta(hours=1))
        audit.close()
        code, text, _ = verify(capsys, log_dir, "--public-key", str(pem))
        assert 0 == code, text
        lines = forging.read(log_dir)
        cut = next(i for i, (_, raw) in enumerate(lines) if b"member6" in raw)
        forging.write(log_dir, forging.rechain(lines, start=cut, drop_checkpoints=True))
        forging.set_head_file(log_dir, None)
        code, text, report = verify(capsys, log_dir, "--public-key", str(pem))
        assert 1 == code, text
        assert cut + 1 == report["problem"]["line"]
        assert "unsigned" in message(report)

    def test_newest_records_may_wait(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Records after the last checkpoint within the interval are 'not yet signed'."""
        keys = tmp_path / "keys"
        keys.mkdir()
        signing.ensure_audit_key(keys)
        pem = tmp_path / "audit.pub"
        pem.write_bytes(signing.load_signer(keys / signing.AUDIT_KEY_FILE).verifier.pem())
        clock = FixedClock(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC))
        audit = AuditLog(tmp_path / "log", clock, keys / signing.AUDIT_KEY_FILE, 1000, 300)
        audit.record("login.ok", account="member1", ip="192.0.2.1", protocol="sftp")
        audit.close()
        crashed = AuditLog(tmp_path / "log", clock, keys / signing.AUDIT_KEY_FILE, 1000, 300)
        for _ in range(3):
            clock.advance(dt.timedelta(seconds=60))
            crashed.record("list", account="member1", path="/", protocol="sftp")
        crashed.chain._unsigned = False  # a crash: no checkpoint at stop
        crashed.close()
        code, text, report = verify(capsys, tmp_path / "log", "--public-key", str(pem))
        assert 0 == code, text
        assert 3 == report["unsigned"]
        assert "not yet signed: 3" in text


class TestFinding4StrictDocuments:
    @pytest.mark.parametrize(
        "change",
        [
            (b'"kind": "audit-checkpoint", ', b'"kind": "audit-checkpoint", "seq": 1, '),
            (b'"signature": {', b'"signature": {"note": "x", '),
            (b'"signature": {', b'"signature": {}, "signature": {'),
            (b'"kind": "audit-checkpoint", ', b'"kind": "audit-checkpoint", "extra": 1, '),
        ],
        ids=["duplicate-member", "member-inside-signature", "second-signature", "unknown"],
    )
    def test_last_checkpoint_line(
        self,
        real: RealLog,
        change: tuple[bytes, bytes],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The last line (a checkpoint no later line chains) edited so that Python still
        reads the same document: refused."""
        copy = real.copy(tmp_path / "copy")
        lines = list(real.lines)
        name, raw = lines[-1]
        assert change[0] in raw
        lines[-1] = (name, raw.replace(change[0], change[1], 1))
        forging.write(copy, lines)
        code, text, report = verify(capsys, copy, "--public-key", str(real.current_key))
        assert 1 == code, text
        assert len(lines) == report["problem"]["line"]

    def test_head_file_with_a_duplicate_member(
        self, real: RealLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """audit-head.json holding a member twice is not a signed head."""
        copy = real.copy(tmp_path / "copy")
        path = copy / audit_chain.HEAD_NAME
        text = path.read_text()
        path.write_text(text.replace('"kind"', '"seq": 1,\n  "kind"', 1))
        code, out, report = verify(capsys, copy, "--public-key", str(real.current_key))
        assert 1 == code, out
        assert "duplicate" in message(report)

    def test_kept_head_with_a_duplicate_member(
        self, real: RealLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A kept head holding a member twice is bad input: exit 2, one line."""
        copy = real.copy(tmp_path / "copy")
        kept = tmp_path / "head.json"
        kept.write_text(real.kept_head.read_text().replace('"kind"', '"seq": 1,\n  "kind"', 1))
        argv = ["audit", "verify", "--log-dir", str(copy), "--public-key", str(real.first_key)]
        assert 2 == cli.main([*argv, "--since-head", str(kept)])
        assert "duplicate" in capsys.readouterr().err


class TestHonestSummary:
    def test_tampered_copy_does_not_claim_an_empty_log(
        self, real: RealLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Issue 16 item 9: the summary of a tampered copy says where reading stopped,
        never '0 record(s) ... head at record 0'."""
        copy = real.copy(tmp_path / "copy")
        lines = list(real.lines)
        lines[4] = (lines[4][0], lines[4][1].replace(b"mairie-", b"mairie-z", 1))
        forging.write(copy, lines)
        code, text, report = verify(capsys, copy, "--public-key", str(real.current_key))
        assert 1 == code
        first = text.splitlines()[0]
        assert "0 record(s)" not in first and "head at record 0" not in first
        assert "record 5" in first
        assert 5 == report["problem"]["seq"]
        assert report["complete"] is False
