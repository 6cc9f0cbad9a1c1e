"""The "Verify signature" Code node (n8n/src/verify_signature.js) against our own signer
(apps.events.signing): the bytes Switchboard signs are the bytes n8n checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import pytest

from apps.events import signing
from tests.n8n.support import call, run_code, source

SECRET = signing.secret_generate()
OTHER_SECRET = signing.secret_generate()
EVENT_ID = "01939f4e-7a10-7c2b-9d51-2f0c9c8e4a11"


def envelope(**data) -> dict:
    return {
        "id": EVENT_ID,
        "type": "lead.created",
        "version": 1,
        "timestamp": "2026-11-27T10:15:02.120Z",
        "organization": {"id": "0193a5b2-0000-7000-8000-000000000001", "slug": "pulse"},
        "sequence": 1234,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "data": {"lead_id": "x", "contact_id": "y", "status": "new", **data},
    }


def delivery(body: bytes, *, secrets=(SECRET,), timestamp=None, msg_id=EVENT_ID, store=False):
    """The item n8n's Webhook node (option Raw Body) hands to the next node."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    keys = [signing.secret_key(s) for s in secrets]
    headers = {
        "host": "127.0.0.1:5678",
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(keys, msg_id, timestamp, body),
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    encoded = base64.b64encode(body).decode()
    binary = (
        {"data": {"id": "filesystem-v2:abc", "mimeType": "application/json"}}
        if store
        else {"data": {"data": encoded, "mimeType": "application/json"}}
    )
    item = {"json": {"headers": headers, "body": json.loads(body)}, "binary": binary}
    return item, ({"filesystem-v2:abc": encoded} if store else {})


def verify(item, *, secret=SECRET, binary_store=None):
    [out] = run_code(
        source("verify_signature.js"),
        input=[item],
        env={"SWITCHBOARD_WEBHOOK_SECRET": secret},
        binary_store=binary_store,
    )
    return out["json"]


def wire(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()  # as apps.events.delivery


def test_a_signed_delivery_is_accepted_and_parsed_from_the_raw_bytes():
    # Non-ASCII text is escaped on the wire: re-serializing the parsed body would not match.
    body = wire(envelope(name="Zoë 😀", note="line\nbreak", score=1.0))
    item, _ = delivery(body)
    result = verify(item)
    assert result["valid"] is True, result
    assert result["event"]["data"]["name"] == "Zoë 😀"
    assert result["traceparent"].startswith("00-4bf92f35")


def test_binary_data_kept_out_of_memory_is_read_through_the_helper():
    item, store = delivery(wire(envelope()), store=True)
    assert verify(item, binary_store=store)["valid"] is True


def test_either_signature_matches_during_a_secret_rotation():
    body = wire(envelope())
    for secrets in [(OTHER_SECRET, SECRET), (SECRET, OTHER_SECRET)]:
        item, _ = delivery(body, secrets=secrets)
        assert verify(item)["valid"] is True


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong secret", "no webhook-signature matches"),
        ("altered body", "no webhook-signature matches"),
        ("altered id", "no webhook-signature matches"),
        ("stale", "more than 5 minutes"),
        ("future", "more than 5 minutes"),
        ("no signature", "missing"),
        ("id differs from the body", "differs from webhook-id"),
        ("not json", "not JSON"),
        ("no raw body", "Raw Body"),
        ("bad secret setting", "not a whsec_ secret"),
        ("malformed timestamp", "malformed"),
        ("unknown scheme", "no webhook-signature matches"),
    ],
)
def test_bad_deliveries_are_rejected_with_a_reason(case, reason):
    body = wire(envelope())
    secret = SECRET
    item, _ = delivery(body)
    headers = item["json"]["headers"]
    if case == "wrong secret":
        item, _ = delivery(body, secrets=(OTHER_SECRET,))
    elif case == "altered body":
        item["binary"]["data"]["data"] = base64.b64encode(body.replace(b'"new"', b'"won"')).decode()
    elif case == "altered id":
        headers["webhook-id"] = EVENT_ID[:-1] + "2"
    elif case == "stale":
        # Well past the 300 s tolerance: the Code node runs in a separate process a moment
        # later, and a one-second margin flaked when the clock ticked in between.
        item, _ = delivery(body, timestamp=int(time.time()) - 400)
    elif case == "future":
        item, _ = delivery(body, timestamp=int(time.time()) + 400)
    elif case == "no signature":
        del headers["webhook-signature"]
    elif case == "id differs from the body":
        item, _ = delivery(wire({**envelope(), "id": "another"}))
    elif case == "not json":
        item, _ = delivery(b"[]")
        raw = b"not json"
        timestamp = int(headers["webhook-timestamp"])
        item["json"]["headers"]["webhook-signature"] = signing.sign(
            signing.secret_key(SECRET), EVENT_ID, timestamp, raw
        )
        item["binary"]["data"]["data"] = base64.b64encode(raw).decode()
    elif case == "no raw body":
        del item["binary"]
    elif case == "bad secret setting":
        secret = "plain-secret"
    elif case == "malformed timestamp":
        headers["webhook-timestamp"] = "12.5"
    elif case == "unknown scheme":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    result = verify(item, secret=secret)
    assert result["valid"] is False
    assert reason in result["reason"]
    assert "event" not in result


def test_sha256_and_hmac_match_python_for_every_padding_boundary():
    lengths = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 70_000]
    messages = [os.urandom(n) for n in lengths]
    keys = [os.urandom(n) for n in (24, 32, 64, 65, 100)]
    encoded = json.dumps(
        {
            "messages": [base64.b64encode(m).decode() for m in messages],
            "keys": [base64.b64encode(k).decode() for k in keys],
        }
    )
    expression = f"""(() => {{
        const spec = {encoded};
        const b = (s) => new Uint8Array(Buffer.from(s, 'base64'));
        const hex = (u) => Buffer.from(u).toString('hex');
        return {{
          sha: spec.messages.map((m) => hex(sha256(b(m)))),
          mac: spec.keys.map((k, i) => hex(hmacSha256(b(k), b(spec.messages[i + 7])))),
        }};
    }})()"""
    result = call("verify_signature.js", expression)
    assert result["sha"] == [hashlib.sha256(m).hexdigest() for m in messages]
    assert result["mac"] == [
        hmac.new(k, messages[i + 7], hashlib.sha256).hexdigest() for i, k in enumerate(keys)
    ]
