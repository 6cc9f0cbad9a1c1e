"""Standard Webhooks signing (https://www.standardwebhooks.com/).

`webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` where the key
is the base64-decoded part of a `whsec_` secret. While a rotated-out secret is still valid,
both signatures are sent, space separated; receivers accept either. Verifiable with
`standardwebhooks.Webhook(secret).verify(body, headers)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets

PREFIX = "whsec_"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


class InvalidSecret(ValueError):
    pass


def secret_generate() -> str:
    """A new `whsec_` secret with a 32-byte random key."""
    return PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; raises InvalidSecret when it is not one."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise InvalidSecret("must start with whsec_")
    encoded = secret[len(PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("the part after whsec_ must be base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidSecret(
            f"the decoded key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not {len(key)}"
        )
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signature_header(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,` signature per key, space separated."""
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)
