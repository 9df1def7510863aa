"""A real RFC 3161 time-stamping authority on loopback: ``openssl ts`` behind ``http.server``.

``make_pki(folder)`` creates, with the ``openssl`` command, a CA and a TSA certificate it
signed (extendedKeyUsage critical timeStamping) and an ``openssl.cnf`` with its ``[tsa]``
section. ``Authority`` serves RFC 3161 over HTTP on 127.0.0.1 (port 0 unless told): each
POST body (a ``TimeStampReq``, bounded) is answered by ``openssl ts -reply``. It counts
the requests it answered, can refuse (HTTP 503) or be stopped and started again on the
same port (the authority that was down). ``other_ca(folder)`` is a CA that signed nothing
the authority uses.
"""

from __future__ import annotations

import http.server
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

MAX_QUERY = 8192

_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder

[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ tsa_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(folder: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-config", "openssl.cnf", "-extensions", "ca_ext",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "3", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip


def make_pki(folder: Path) -> Path:
    """A CA, a TSA certificate signed by it and the ``openssl.cnf`` that uses them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "openssl.cnf").write_text(_CNF.format(dir=folder))
    (folder / "tsaserial").write_text("01\n")
    _ca(folder, "intake test TSA CA")
    _openssl(
        "req", "-new", "-config", "openssl.cnf", "-newkey", "ec",
        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key",
        "-out", "tsa.csr", "-subj", "/CN=intake test TSA",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "openssl.cnf", "-extensions", "tsa_ext",
        "-out", "tsa.crt",
        cwd=folder,
    )  # fmt: skip
    return folder


def other_ca(folder: Path) -> Path:
    """A CA certificate (PEM) that never signed the authority's certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "openssl.cnf").write_text(_CNF.format(dir=folder))
    _ca(folder, "another CA")
    return folder / "ca.crt"


@dataclass
class Authority:
    """See the module docstring."""

    pki: Path
    port: int = 0
    refuse: bool = False  # answer 503, as an overloaded authority does
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tsa"

    def reply(self, query: bytes) -> bytes:
        """``openssl ts -reply`` for one DER ``TimeStampReq``."""
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "q.tsq").write_bytes(query)
            subprocess.run(
                ["openssl", "ts", "-reply", "-config", str(self.pki / "openssl.cnf"),
                 "-queryfile", "q.tsq", "-out", "r.tsr"],
                cwd=tmp, check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            return (Path(tmp) / "r.tsr").read_bytes()

    def start(self) -> Authority:
        authority = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if authority.refuse or not 0 < length <= MAX_QUERY:
                    self.send_error(503 if authority.refuse else 400)
                    return
                try:
                    body = authority.reply(self.rfile.read(length))
                except subprocess.CalledProcessError:
                    self.send_error(400)
                    return
                with authority.lock:
                    authority.answered += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tsa-test", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def count(self) -> int:
        with self.lock:
            return self.answered
