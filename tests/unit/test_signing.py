"""Unit tests for cdc.signing: Standard Webhooks signatures, checked by independent code."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from cdc.signing import decode_secret, sign, webhook_headers

#: The published Standard Webhooks / Svix example: secret, id, timestamp, body → signature.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()


def _own_verify(secret: str, webhook_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """A clean verifier written from the spec, sharing no code with cdc.signing."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, webhook_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _, signature in (part.partition(",") for part in header.split(" "))
    )


class TestSign:
    """sign() gives the spec's v1 signature, one per secret."""

    def test_published_vector(self) -> None:
        """The spec's example signs to the published value."""
        assert sign([decode_secret(VECTOR_SECRET)], VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE

    def test_rotation_two_signatures_in_order(self) -> None:
        """Two secrets give two space-separated v1 signatures, first secret first."""
        header = sign([decode_secret(NEW), decode_secret(OLD)], "id", 1, b"body")
        first, second = header.split(" ")
        assert first == sign([decode_secret(NEW)], "id", 1, b"body")
        assert second == sign([decode_secret(OLD)], "id", 1, b"body")

    def test_empty_body(self) -> None:
        """A GET has no body: the signed content ends with the second dot."""
        assert _own_verify(OLD, "a:1:b", "10", b"", sign([decode_secret(OLD)], "a:1:b", 10, b""))


class TestWebhookHeaders:
    """webhook_headers() verifies with the standardwebhooks package and with our own verifier."""

    def test_verifies_with_package(self) -> None:
        """Headers for a UTF-8 JSON body verify with either secret during rotation."""
        body = '{"name":"José 日本"}'.encode()
        now = int(dt.datetime.now(dt.UTC).timestamp())
        headers = webhook_headers([NEW, OLD], "dialer1:7:crm", now, body)
        assert headers["webhook-id"] == "dialer1:7:crm"
        assert headers["webhook-timestamp"] == str(now)
        for secret in (NEW, OLD):
            Webhook(secret).verify(body, headers)
            assert _own_verify(secret, "dialer1:7:crm", str(now), body, headers["webhook-signature"])

    def test_altered_body_or_id_fails(self) -> None:
        """A changed byte of the body, another id or an unknown secret does not verify."""
        body = b"id=7&fn=Jos%C3%A9"
        now = int(dt.datetime.now(dt.UTC).timestamp())
        headers = webhook_headers([OLD], "s:7:form", now, body)
        with pytest.raises(WebhookVerificationError):
            Webhook(OLD).verify(b"id=8&fn=Jos%C3%A9", headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(OLD).verify(body, {**headers, "webhook-id": "s:7:other"})
        with pytest.raises(WebhookVerificationError):
            Webhook(NEW).verify(body, headers)


class TestDecodeSecret:
    """Secrets are whsec_ + base64 of 24..64 bytes; errors never echo the secret."""

    def test_decodes(self) -> None:
        """A whsec_ secret decodes to its key bytes."""
        assert decode_secret(OLD) == b"o" * 32

    @pytest.mark.parametrize(
        "secret",
        [
            base64.b64encode(b"x" * 32).decode(),  # no prefix
            "whsec_not*base64!",
            "whsec_" + base64.b64encode(b"x" * 16).decode(),  # too short
            "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long
        ],
    )
    def test_rejects(self, secret: str) -> None:
        """A secret without prefix, not base64, or of the wrong length is refused without echoing it."""
        with pytest.raises(ValueError) as info:
            decode_secret(secret)
        assert secret.removeprefix("whsec_") not in str(info.value)
