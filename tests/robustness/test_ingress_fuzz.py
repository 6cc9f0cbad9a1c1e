"""Deterministic fuzzing of every ingress: mutated, (mostly) validly signed provider payloads.

For each webhook (Twilio inbound and status, WhatsApp Cloud API, ManyChat, Mailgun inbound
and events) and for `POST /api/v1/messages/inbound/`, a seeded `random.Random` mutates a real
sample: fields dropped, duplicated or retyped, huge strings, NUL bytes, lone surrogates and
invalid UTF-8, truncated or empty bodies, wrong content types, and missing or wrong
signatures. Every answer must keep the ingress contract (docs/robustness.md):

- never a 5xx;
- a bad or missing signature is 403 and stores nothing;
- otherwise 200 (accepted) or a clear 4xx with the JSON error shape, and a 4xx stores nothing;
- what a 200 stores is whole: every new contact has its lead, its conversation and a message,
  every new message its `message.received` event, and a message's conversation belongs to
  the message's contact.

A failing case names its seed, target and mutations, so it can be replayed alone.
"""

from __future__ import annotations

import copy
import json
import random
import secrets
import sys
import time
import traceback
from urllib.parse import parse_qsl, urlencode

import pytest
from django.core.signals import got_request_exception
from django.db import connection
from django.http import QueryDict
from django.test import Client
from twilio.request_validator import RequestValidator

from tests.factories import api_key_for
from tests.providers import factories as f

pytestmark = pytest.mark.django_db

SEED = 20261207
CASES_PER_TARGET = 60

ATOMS = [
    None,
    True,
    False,
    0,
    -1,
    2**70,
    1e308,
    "",
    " ",
    [],
    {},
    [1, "a", None],
    {"nested": {"deeper": [None]}},
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\ufeff\u202e\u0301",
    "😀" * 50,
    "12345",
    "+14155550100",
    "whatsapp:+14155550100",
    "whatsapp:",
    "not@an@email",
    "<>",
    "9" * 400,
    "2026-05-04T10:54:33",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    253402300800,
]
FORM_ATOMS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ufeff\u202e",
    "😀",
    "-1",
    "99999999999999999999999",
    "NaN",
    "whatsapp:",
    "whatsapp:abc",
    "+1",
    "x" * 300,
]
BAD_BYTES = [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"%FF%FE", b"%00", b"%", b"\x00"]
BODY_DAMAGE = {"truncated", "empty", "bad-bytes", "not-an-object", "content-type"}
WRONG_TYPES = [
    "text/plain",
    "application/octet-stream",
    "multipart/form-data; boundary=zz",
    "multipart/form-data",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded; charset=utf-16",
]

# --- invariants ---------------------------------------------------------------------------------

COUNTED = {
    "contacts": "SELECT count(*) FROM crm_contact",
    "leads": "SELECT count(*) FROM crm_lead",
    "conversations": "SELECT count(*) FROM conversations_conversation",
    "messages": "SELECT count(*) FROM conversations_message",
    "attachments": "SELECT count(*) FROM conversations_attachment",
    "events": "SELECT count(*) FROM events_event",
}
# Each query counts rows that break "nothing half-written".
BROKEN = {
    "message in another contact's conversation": """
        SELECT count(*) FROM conversations_message m
        JOIN conversations_conversation c ON c.id = m.conversation_id
        WHERE m.contact_id <> c.contact_id""",
    "contact without a lead": """
        SELECT count(*) FROM crm_contact c
        WHERE NOT EXISTS (SELECT 1 FROM crm_lead l WHERE l.contact_id = c.id)""",
    "contact without a message": """
        SELECT count(*) FROM crm_contact c
        WHERE NOT EXISTS (SELECT 1 FROM conversations_message m WHERE m.contact_id = c.id)""",
    "conversation without a message": """
        SELECT count(*) FROM conversations_conversation c
        WHERE NOT EXISTS (SELECT 1 FROM conversations_message m WHERE m.conversation_id = c.id)""",
    "inbound message without its message.received event": """
        SELECT count(*) FROM conversations_message m
        WHERE m.direction = 'in' AND NOT EXISTS (
            SELECT 1 FROM events_event e
            WHERE e.type = 'message.received' AND e.subject_id = m.id::text)""",
}


def _counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        out = {}
        for name, sql in COUNTED.items():
            cursor.execute(sql)
            out[name] = cursor.fetchone()[0]
        return out


def _broken() -> dict[str, int]:
    with connection.cursor() as cursor:
        out = {}
        for name, sql in BROKEN.items():
            cursor.execute(sql)
            count = cursor.fetchone()[0]
            if count:
                out[name] = count
        return out


# --- mutations ----------------------------------------------------------------------------------


def _paths(value, prefix=()):
    """Every (path) into a JSON value, containers included."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*prefix, index))


def _parent(root, path):
    node = root
    for step in path[:-1]:
        node = node[step]
    return node


def mutate_json(rng: random.Random, payload, protected=()) -> tuple[object, list[str]]:
    """One to three structural mutations of a JSON value (outside `protected` top-level keys)."""
    payload = copy.deepcopy(payload)
    notes = []
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(payload) if p and p[0] not in protected]
        if not paths:
            break
        path = rng.choice(paths)
        parent = _parent(payload, path)
        key = path[-1]
        kind = rng.choice(["drop", "duplicate", "retype", "retype", "huge", "unicode"])
        if kind == "drop":
            del parent[key]
        elif kind == "duplicate":
            if isinstance(parent, list):
                parent.insert(key, copy.deepcopy(parent[key]))
            else:
                parent[key] = [parent[key], copy.deepcopy(parent[key])]
        elif kind == "retype":
            parent[key] = copy.deepcopy(rng.choice(ATOMS))
        elif kind == "huge":
            parent[key] = rng.choice(["é", "x", "\x00", "😀"]) * rng.randint(5_000, 200_000)
        else:
            parent[key] = rng.choice(["\ud800", "a\x00b", "\udfff\ud800", "\ufffe\uffff"]) + str(
                parent[key]
            )
        notes.append(f"{kind}:{'/'.join(map(str, path))}")
    return payload, notes


def _damaged(
    rng: random.Random, body: bytes, notes: list[str], roll: float, *, truncated, empty, bad_bytes
) -> bytes | None:
    """`body` cut short, emptied or with bad bytes inserted, by `roll` against the cumulative
    thresholds; None to leave it whole."""
    if roll < truncated:
        notes.append("truncated")
        return body[: rng.randint(0, max(len(body) - 1, 0))]
    if roll < empty:
        notes.append("empty")
        return b""
    if roll < bad_bytes:
        notes.append("bad-bytes")
        at = rng.randint(0, len(body))
        return body[:at] + rng.choice(BAD_BYTES) + body[at:]
    return None


def encode_json(rng: random.Random, payload, notes: list[str]) -> bytes:
    """JSON bytes, sometimes damaged after encoding."""
    body = json.dumps(payload).encode()
    roll = rng.random()
    damaged = _damaged(rng, body, notes, roll, truncated=0.08, empty=0.12, bad_bytes=0.2)
    if damaged is not None:
        return damaged
    if roll < 0.25:
        notes.append("not-an-object")
        return json.dumps(rng.choice([[payload], "text", 1, None])).encode()
    return body


def mutate_form(
    rng: random.Random, pairs: list[tuple[str, str]], protected=()
) -> tuple[list[tuple[str, str]], list[str]]:
    pairs = list(pairs)
    notes = []
    for _ in range(rng.randint(1, 3)):
        indexes = [i for i, (k, _) in enumerate(pairs) if k not in protected]
        if not indexes:
            break
        i = rng.choice(indexes)
        name, value = pairs[i]
        kind = rng.choice(["drop", "duplicate", "retype", "retype", "huge", "cut"])
        if kind == "drop":
            del pairs[i]
        elif kind == "duplicate":
            pairs.insert(i, (name, rng.choice([value, rng.choice(FORM_ATOMS)])))
        elif kind == "retype":
            pairs[i] = (name, rng.choice(FORM_ATOMS))
        elif kind == "huge":
            pairs[i] = (name, rng.choice(["é", "x", "\x00"]) * rng.randint(5_000, 200_000))
        else:
            pairs[i] = (name, value[: rng.randint(0, len(value))])
        notes.append(f"{kind}:{name}")
    return pairs, notes


def encode_form(rng: random.Random, pairs, notes: list[str]) -> bytes:
    body = urlencode(pairs).encode()
    roll = rng.random()
    damaged = _damaged(rng, body, notes, roll, truncated=0.06, empty=0.1, bad_bytes=0.2)
    return body if damaged is None else damaged


def content_type_for(rng: random.Random, right: str, notes: list[str]) -> str:
    if rng.random() < 0.1:
        wrong = rng.choice(WRONG_TYPES)
        notes.append(f"content-type:{wrong}")
        return wrong
    return right


def signature_mode(rng: random.Random) -> str:
    roll = rng.random()
    return "missing" if roll < 0.07 else "wrong" if roll < 0.14 else "valid"


def _flip(text: str) -> str:
    return (text[:-2] + ("A" if text[-2] != "A" else "B") + text[-1:]) if len(text) > 2 else "x"


# --- targets ------------------------------------------------------------------------------------
# Each builds one request: (path, body, content_type, headers, signature mode, notes).


def _twilio(rng, channel, sample_name, status=False):
    path = f.twilio_path(channel, status)
    pairs = parse_qsl(f.sample(sample_name).decode(), keep_blank_values=True)
    pairs, notes = mutate_form(rng, pairs)
    body = encode_form(rng, pairs, notes)
    content_type = content_type_for(rng, "application/x-www-form-urlencoded", notes)
    # Sign what Django will parse (a form only for the form content type), as Twilio signs
    # the parameters it sent.
    params = (
        QueryDict(body, encoding="utf-8") if content_type.endswith("urlencoded") else QueryDict()
    )
    signature = RequestValidator(f.TWILIO_TOKEN).compute_signature(f.PUBLIC + path, params)
    mode = signature_mode(rng)
    headers = {} if mode == "missing" else {"HTTP_X_TWILIO_SIGNATURE": signature}
    if mode == "wrong":
        headers["HTTP_X_TWILIO_SIGNATURE"] = _flip(signature)
    return path, body, content_type, headers, mode, notes


def twilio_inbound(rng, channels):
    name = rng.choice(
        [
            "twilio_inbound.form",
            "twilio_inbound_mms.form",
            "twilio_whatsapp_inbound.form",
            "twilio_whatsapp_inbound_bsuid.form",
        ]
    )
    return _twilio(rng, channels["twilio"], name)


def twilio_status(rng, channels):
    name = rng.choice(
        [
            "twilio_status_delivered.form",
            "twilio_status_failed_21610.form",
            "twilio_status_undelivered_30003.form",
        ]
    )
    return _twilio(rng, channels["twilio"], name, status=True)


def whatsapp(rng, channels):
    name = rng.choice(
        [
            "whatsapp_inbound_text.json",
            "whatsapp_inbound_image.json",
            "whatsapp_inbound_reply_with_context.json",
            "whatsapp_inbound_text_bsuid_only.json",
            "whatsapp_status_failed.json",
            "whatsapp_status_read.json",
        ]
    )
    payload, notes = mutate_json(rng, f.sample_json(name))
    body = encode_json(rng, payload, notes)
    content_type = content_type_for(rng, "application/json", notes)
    mode = signature_mode(rng)
    signature = f.whatsapp_signature(body)
    headers = {} if mode == "missing" else {"HTTP_X_HUB_SIGNATURE_256": signature}
    if mode == "wrong":
        headers["HTTP_X_HUB_SIGNATURE_256"] = _flip(signature)
    return f"/hooks/whatsapp/{channels['whatsapp'].id}/", body, content_type, headers, mode, notes


def manychat(rng, channels):
    payload, notes = mutate_json(rng, f.sample_json("manychat_external_request.json"))
    body = encode_json(rng, payload, notes)
    content_type = content_type_for(rng, "application/json", notes)
    mode = signature_mode(rng)
    headers = {} if mode == "missing" else {"HTTP_X_SWITCHBOARD_TOKEN": f.MANYCHAT_TOKEN}
    if mode == "wrong":
        headers["HTTP_X_SWITCHBOARD_TOKEN"] = _flip(f.MANYCHAT_TOKEN)
    return f"/hooks/manychat/{channels['manychat'].id}/", body, content_type, headers, mode, notes


MAILGUN_SIGNED = ("timestamp", "token", "signature")


def _mailgun_signed(mode: str) -> dict[str, str]:
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = f.mailgun_sign(f.MAILGUN_KEY, timestamp, token)
    if mode == "wrong":
        signature = _flip(signature)
    return {"timestamp": timestamp, "token": token, "signature": signature}


def mailgun_inbound(rng, channels):
    name = rng.choice(
        ["mailgun_inbound.form", "mailgun_inbound_mime.form", "mailgun_inbound_reply.form"]
    )
    pairs = parse_qsl(f.sample(name).decode(), keep_blank_values=True)
    pairs, notes = mutate_form(rng, pairs, protected=MAILGUN_SIGNED)
    mode = signature_mode(rng)
    signed = _mailgun_signed(mode)
    pairs = [(k, signed.get(k, v)) for k, v in pairs]
    if mode == "missing":
        pairs = [(k, v) for k, v in pairs if k != "signature"]
    body = encode_form(rng, pairs, notes)
    content_type = content_type_for(rng, "application/x-www-form-urlencoded", notes)
    return f"/hooks/mailgun/{channels['mailgun'].id}/", body, content_type, {}, mode, notes


def mailgun_events(rng, channels):
    payload, notes = mutate_json(
        rng, f.sample_json("mailgun_event_delivered.json"), protected=("signature",)
    )
    mode = signature_mode(rng)
    if isinstance(payload, dict):
        signed = _mailgun_signed(mode)
        signed["signature"] = (
            f.mailgun_sign(f.MAILGUN_KEY, signed["timestamp"], signed["token"])
            if mode == "valid"
            else signed["signature"]
        )
        payload["signature"] = {} if mode == "missing" else signed
    body = encode_json(rng, payload, notes)
    content_type = content_type_for(rng, "application/json", notes)
    path = f"/hooks/mailgun/{channels['mailgun'].id}/events/"
    return path, body, content_type, {}, mode, notes


API_SAMPLE = {
    "message_id": "widget-8812",
    "channel": "api",
    "from": {"external_id": "visitor-77", "email": "ana@example.com", "name": "Ana"},
    "text": "Do you have classes on Saturday?",
    "subject": "Saturday",
    "sent_at": "2026-11-27T10:15:00Z",
    "attachments": [{"url": "https://cdn.example.com/a.png", "content_type": "image/png"}],
}


def api_inbound(rng, channels):
    sample = copy.deepcopy(API_SAMPLE)
    sample["message_id"] = f"widget-{rng.randint(0, 10**9)}"
    payload, notes = mutate_json(rng, sample)
    body = encode_json(rng, payload, notes)
    content_type = content_type_for(rng, "application/json", notes)
    mode = signature_mode(rng)
    key = channels["api_key"]
    headers = {} if mode == "missing" else {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    if mode == "wrong":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {_flip(key)}"
    return "/api/v1/messages/inbound/", body, content_type, headers, mode, notes


TARGETS = {
    "twilio-inbound": twilio_inbound,
    "twilio-status": twilio_status,
    "whatsapp": whatsapp,
    "manychat": manychat,
    "mailgun-inbound": mailgun_inbound,
    "mailgun-events": mailgun_events,
    "api-inbound": api_inbound,
}


@pytest.fixture
def channels(organization, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 0
    return {
        "twilio": f.twilio_channel(organization),
        "whatsapp": f.whatsapp_channel(organization),
        "manychat": f.manychat_channel(organization),
        "mailgun": f.mailgun_channel(organization, signing_key=f.MAILGUN_KEY),
        "api_key": api_key_for(organization),
    }


def _error_shape_ok(response) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and isinstance(error.get("code"), str) and error.get("message")


@pytest.mark.parametrize("target", list(TARGETS))
def test_ingress_fuzz(target, channels, caplog):
    client = Client(raise_request_exception=False)
    problems: list[str] = []
    errors: list[str] = []

    def record_exception(sender, request=None, **kwargs):
        kind, exc, tb = sys.exc_info()
        where = traceback.extract_tb(tb)[-1] if tb else None
        place = f" at {where.filename.split('site-packages/')[-1]}:{where.lineno}" if where else ""
        errors.append(f"{kind.__name__}: {str(exc)[:200]}{place}" if kind else "?")

    got_request_exception.connect(record_exception, weak=False)
    try:
        _fuzz(target, channels, client, problems, errors, caplog)
    finally:
        got_request_exception.disconnect(record_exception)
    assert not problems, "\n".join(problems[:20])


def _fuzz(target, channels, client, problems, errors, caplog):
    rng = random.Random(f"{SEED}:{target}")
    outcomes: dict[int, int] = {}
    for case in range(CASES_PER_TARGET):
        path, body, content_type, headers, mode, notes = TARGETS[target](rng, channels)
        label = f"{target}#{case} sig={mode} {notes}"
        before, broken_before = _counts(), _broken()
        errors.clear()
        caplog.clear()
        response = client.generic("POST", path, data=body, content_type=content_type, **headers)
        status = response.status_code
        outcomes[status] = outcomes.get(status, 0) + 1
        after = _counts()
        if status >= 500:
            for record in caplog.records:  # the API's handler logs what it turned into a 500
                if record.exc_info:
                    errors.append(f"{record.exc_info[0].__name__}: {record.exc_info[1]}"[:300])
            problems.append(f"{label}: HTTP {status} {errors[-1:]}")
            continue
        changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        if mode != "valid":
            # A body that cannot be parsed may be refused (400/413) before its signature is
            # looked at; one that parses must be refused for its signature.
            damaged = any(n.split(":")[0] in BODY_DAMAGE for n in notes)
            allowed = (400, 401, 403, 413) if damaged else (401, 403)
            if status not in allowed or changed:
                problems.append(f"{label}: unsigned request answered {status}, stored {changed}")
            continue
        if status >= 400:
            if not _error_shape_ok(response):
                problems.append(f"{label}: {status} without the error shape: {response.content!r}")
            if changed:
                problems.append(f"{label}: {status} but stored {changed}")
        elif status != 200:
            problems.append(f"{label}: unexpected HTTP {status}")
        broken = {k: v for k, v in _broken().items() if v != broken_before.get(k)}
        if broken:
            problems.append(f"{label}: half-written rows {broken}")
    assert outcomes.get(200, 0) > 0, outcomes  # the fuzzer still reaches the happy path
