"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signed content is ``f"{webhook_id}.{timestamp}."`` followed by the body bytes; the
signature is ``v1,`` + base64 of HMAC-SHA256 over it, keyed with the secret's bytes (the
base64 text after ``whsec_``). With several secrets (rotation) one ``v1,`` signature per
secret is sent, space-separated, in the configured order: a receiver that knows either
secret verifies. Pure: the caller gives the timestamp (taken per attempt, just before
sending) and the body (stored in the outbox, so every attempt signs the same bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

__all__ = ["SECRET_PREFIX", "decode_secret", "sign", "webhook_headers"]

SECRET_PREFIX: Final = "whsec_"
#: The spec asks for secrets of 24 to 64 random bytes.
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ``ValueError`` (no secret text) when bad."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a signing secret must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the part after {SECRET_PREFIX!r} is not valid base64") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a signing secret must decode to {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def sign(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` per key, space-separated."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )


def webhook_headers(secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt, signed with every secret."""
    keys = [decode_secret(secret) for secret in secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, webhook_id, timestamp, body),
    }
