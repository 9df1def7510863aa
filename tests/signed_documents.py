"""The README's recipe for checking a signed document (a destruction certificate, an
upload receipt) with nothing of intake: canonical JSON body, Ed25519, base64.

Shared by tests/test_certificates.py and tests/test_receipts.py, so that both kinds of
document are held to the one recipe an auditor is told to use.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def plain_verify(document: dict[str, Any], pem: bytes) -> None:
    """Raises ``InvalidSignature`` unless ``document`` was signed by the key in ``pem``."""
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ed25519.Ed25519PublicKey)
    body = {k: v for k, v in document.items() if k != "signature"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key.verify(base64.b64decode(document["signature"]["value"]), message.encode())
