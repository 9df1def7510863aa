"""A forger without the private key, and the real log it works on.

``RealLog`` is an audit log written by a real instance: members upload over SFTP to the
real server, fail logins, the DPO keeps a head (``intake audit head --json``), the audit
key is rotated (``intake keys rotate-audit``), more uploads follow. Checkpoints every 6
records, so the log holds a dozen of them signed by two keys.

The forger's tools (shared by tests/test_audit_trust.py and tests/test_audit_property.py)
are what anyone who can write ``log/`` can do: edit, drop, reorder lines, recompute every
``seq`` and ``prev``, sign checkpoints and ``audit-head.json`` with a key of their own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest

from intake.adapters.audit import chain, signing
from intake.core.clock import SystemClock
from intake.frontends.cli import main as cli
from intake.services.instance import init_instance
from tests.clients import SftpClient
from tests.conftest import PASSWORD, TestInstance, running, write_test_config

Line = tuple[str, bytes]  # (file name, the line's exact bytes)


def read(log_dir: Path) -> list[Line]:
    return [
        (path.name, raw)
        for path in chain.log_files(log_dir)
        for raw in path.read_bytes().splitlines(keepends=True)
    ]


def write(log_dir: Path, lines: list[Line]) -> None:
    """Replace the log files by ``lines`` (``audit-head.json`` is left as it is)."""
    for path in chain.log_files(log_dir):
        path.unlink()
    files: dict[str, list[bytes]] = {}
    for name, raw in lines:
        files.setdefault(name, []).append(raw)
    for name, raws in files.items():
        (log_dir / name).write_bytes(b"".join(raws))


def set_head_file(log_dir: Path, document: dict[str, Any] | None) -> None:
    path = log_dir / chain.HEAD_NAME
    if document is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(json.dumps(document, indent=2) + "\n")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def rechain(
    lines: list[Line],
    signer: signing.Signer | None = None,
    *,
    start: int = 0,
    next_key: bytes | None = None,
    drop_checkpoints: bool = False,
    chained: bool = True,
) -> list[Line]:
    """``lines`` made consistent again from index ``start`` on: every ``seq`` and ``prev``
    recomputed (``chained=False``: removed, as lines from before the chain), every
    checkpoint after ``start`` re-signed by ``signer`` over its new head (or dropped;
    kept as it was without a signer), the last one naming ``next_key`` if given."""
    records = [json.loads(raw) for _, raw in lines]
    last_cp = max(
        (i for i, r in enumerate(records) if r.get("event") == "checkpoint" and i >= start),
        default=-1,
    )
    out = list(lines[:start])
    prev = hashlib.sha256(out[-1][1]).hexdigest() if out else chain.GENESIS
    for index in range(start, len(lines)):
        name, record = lines[index][0], records[index]
        body = {k: v for k, v in record.items() if k not in ("seq", "prev")}
        if record.get("event") == "checkpoint":
            if drop_checkpoints:
                continue
            if signer is not None:
                doc = {k: v for k, v in record["checkpoint"].items() if k != "signature"}
                doc.pop("next_public_key", None)
                doc.update(seq=len(out), head=prev, public_key=b64(signer.verifier.raw))
                if index == last_cp and next_key is not None:
                    doc["next_public_key"] = b64(next_key)
                body["checkpoint"] = signing.sign_document(doc, signer)
        text = json.dumps(body, ensure_ascii=True)
        if chained:
            text = text[:-1] + chain.chain_fields(len(out) + 1, prev)
        else:
            text += "\n"
        raw = text.encode("ascii")
        out.append((name, raw))
        prev = hashlib.sha256(raw).hexdigest()
    return out


def last_document(lines: list[Line]) -> dict[str, Any] | None:
    """The last checkpoint document in ``lines`` (what ``audit-head.json`` would hold)."""
    for _, raw in reversed(lines):
        record = json.loads(raw)
        if record.get("event") == "checkpoint":
            document: dict[str, Any] = record["checkpoint"]
            return document
    return None


@dataclass
class RealLog:
    """A real instance's log (see the module docstring), kept pristine: tests work on copies."""

    instance: TestInstance
    first_key: Path  # the audit public key before the rotation (PEM)
    current_key: Path  # after it
    kept_head: Path  # the DPO's head, kept mid-log, signed by the first key
    lines: list[Line]
    head_file: dict[str, Any]

    @property
    def log_dir(self) -> Path:
        return self.instance.root / "log"

    def copy(self, target: Path) -> Path:
        """A copy of ``log/`` as an auditor gets it."""
        shutil.copytree(self.log_dir, target)
        return target

    def copy_instance(self, target: Path) -> TestInstance:
        """A copy of the whole instance (its keys included), for checks without a key file."""
        shutil.copytree(self.instance.root, target, ignore=shutil.ignore_patterns("*.lock"))
        conf = target / "intake.toml"
        return TestInstance(target, conf)


def build_real_log(root: Path) -> RealLog:
    root.mkdir(parents=True, exist_ok=True)
    home = root / "inst"
    home.mkdir()
    conf = write_test_config(home, "[audit]\ncheckpoint_every = 6\n")
    init_instance(home, SystemClock())
    instance = TestInstance(home, conf)
    instance.add_account("mairie-a")
    instance.add_account("mairie-b")
    first_key, current_key = root / "audit-first.pub", root / "audit.pub"
    instance.cli("keys", "export-audit-public", str(first_key), check=True)

    def activity(round_: int) -> None:
        with running(instance) as server:
            for member in ("mairie-a", "mairie-b"):
                client = SftpClient(*server.sftp, member, PASSWORD)
                try:
                    for n in range(3):
                        client.upload(f"/base-{round_}-{n}.zip", b"backup %d %d\n" % (round_, n))
                    client.listdir("/")
                finally:
                    client.close()
            with pytest.raises(paramiko.AuthenticationException):
                SftpClient(*server.sftp, "mairie-a", "not the password")

    activity(1)
    kept_head = root / "dpo-head.json"
    kept_head.write_text(instance.cli("audit", "head", "--json", check=True).stdout)
    activity(2)
    instance.cli("keys", "rotate-audit", check=True)
    instance.cli("keys", "export-audit-public", str(current_key), check=True)
    activity(3)
    log_dir = home / "log"
    head_file = json.loads((log_dir / chain.HEAD_NAME).read_text())
    return RealLog(instance, first_key, current_key, kept_head, read(log_dir), head_file)


def verify(
    capsys: pytest.CaptureFixture[str], log_dir: Path, *extra: str
) -> tuple[int, str, dict[str, Any]]:
    """``intake audit verify`` on a copy, as an auditor runs it: text, then ``--json``."""
    argv = ["audit", "verify", "--log-dir", str(log_dir), *extra]
    code = cli.main(argv)
    text = capsys.readouterr()
    cli.main([*argv, "--json"])
    report = json.loads(capsys.readouterr().out)
    return code, text.out + text.err, report
