"""RFC 3161 time-stamp tokens: ask an authority for one, check one. The one seam to
``rfc3161_client`` (and ``urllib`` for the authority's HTTP).

What is stamped is a chain head H (the SHA-256 hex of record S's line, as a checkpoint
signs it): the request's data is H's 32 raw bytes, so the token's message imprint is
SHA-256 of those bytes. Anyone checks a token with ``openssl`` alone::

    printf %s HEAD | xxd -r -p > head.bin
    openssl ts -verify -data head.bin -in token.tsr -CAfile tsa-ca.pem

Rules:
- A request carries a nonce and asks for the authority's certificate. It goes by HTTP(S)
  POST (``application/timestamp-query``) to the configured URL only (no redirect is
  followed), with ``timeout`` for the connection and each read, and a reply larger than
  ``MAX_REPLY`` bytes is refused. Every failure is one ``TsaError`` saying what.
- A reply counts only when granted, for this imprint, with this nonce; with CA
  certificates given, also when its signature chains to one of them through a
  certificate with the critical timeStamping extended key usage, valid at the token's
  time (``rfc3161_client``'s verifier).
- ``check`` never raises on a hostile token: it answers (time, "") or (None, why not).
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from intake.core.errors import IntakeError, UsageError

MAX_REPLY = 64 * 1024  # bytes: a token with its certificate chain is a few KiB
CONTENT_TYPE = "application/timestamp-query"


class TsaError(IntakeError):
    """The authority gave no valid token (unreachable, refused, a bad reply)."""


@dataclass(frozen=True)
class Token:
    """A granted reply (DER ``TimeStampResp``) and the time it states."""

    response: bytes
    gen_time: datetime
    authority: str  # the TSA's name in the token, or its certificate's subject


def load_roots(path: Path) -> list[x509.Certificate]:
    """The CA certificates (PEM, one or more) a token must chain to; ``UsageError``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the TSA CA file {path}: {exc.strerror}") from None
    try:
        roots = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(f"{path}: no PEM certificate in it") from None
    return roots


def _digest(head: str) -> bytes:
    return hashlib.sha256(bytes.fromhex(head)).digest()


def _authority(response: TimeStampResponse) -> str:
    name: Any = None
    try:
        name = response.tst_info.name
    except ValueError:
        name = None
    value = getattr(name, "value", None)
    if isinstance(value, x509.Name):
        return value.rfc4514_string()
    try:
        for der in response.signed_data.certificates:
            return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        pass
    return "?"


def _gen_time(response: TimeStampResponse) -> datetime:
    moment = response.tst_info.gen_time
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def request(
    url: str, head: str, timeout: float, roots: list[x509.Certificate] | None = None
) -> Token:
    """Ask the authority at ``url`` to stamp ``head``; see the rules."""
    query = (
        TimestampRequestBuilder()
        .data(bytes.fromhex(head))
        .hash_algorithm(HashAlgorithm.SHA256)
        .cert_request(cert_request=True)
        .build()
    )
    if not url.startswith(("http://", "https://")):  # never file: or another scheme
        raise TsaError("the time-stamping authority's URL is not http:// or https://")
    http = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        url, data=query.as_bytes(), method="POST", headers={"Content-Type": CONTENT_TYPE}
    )
    try:
        with _OPENER.open(http, timeout=timeout) as reply:
            body = reply.read(MAX_REPLY + 1)
    except urllib.error.HTTPError as exc:
        raise TsaError(f"the time-stamping authority answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise TsaError(f"cannot reach the time-stamping authority: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise TsaError(f"the time-stamping authority failed: {exc}") from None
    if len(body) > MAX_REPLY:
        raise TsaError(f"the time-stamping authority's reply is over {MAX_REPLY} bytes")
    try:
        response = decode_timestamp_response(body)
    except ValueError:
        raise TsaError("the time-stamping authority's reply is not an RFC 3161 reply") from None
    if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        text = "; ".join(response.status_string)[:200]
        raise TsaError(f"the time-stamping authority refused (status {response.status}) {text}")
    try:
        nonce_ok = response.tst_info.nonce == query.nonce
        imprint_ok = response.tst_info.message_imprint.message == _digest(head)
    except ValueError:
        nonce_ok = imprint_ok = False
    if not (nonce_ok and imprint_ok):
        raise TsaError("the time-stamping authority's token is not for this request")
    if roots:
        moment, problem = check(body, head, roots)
        if moment is None:
            raise TsaError(f"the time-stamping authority's token does not verify: {problem}")
    return Token(body, _gen_time(response), _authority(response))


def check(response: bytes, head: str, roots: list[x509.Certificate]) -> tuple[datetime | None, str]:
    """Is ``response`` a token, chaining to ``roots``, that stamps ``head``? (time, "") or
    (None, why not); never raises."""
    try:
        decoded = decode_timestamp_response(response)
    except ValueError:
        return None, "not an RFC 3161 reply"
    try:
        verifier = VerifierBuilder(roots=list(roots)).build()
        verifier.verify_message(decoded, bytes.fromhex(head))
    except VerificationError as exc:
        reason = str(exc)
        if "Mismatch between messages" in reason:
            reason = "its message imprint is not this head"
        elif "verifying certificates" in reason:
            reason = "its signature does not chain to the TSA CA given"
        return None, reason[:300]
    except ValueError as exc:
        return None, f"unreadable token ({str(exc)[:200]})"
    return _gen_time(decoded), ""


def gen_time(response: bytes) -> datetime | None:
    """The time a token states, unverified (for a report without a CA); None if unreadable."""
    try:
        return _gen_time(decode_timestamp_response(response))
    except ValueError:
        return None
