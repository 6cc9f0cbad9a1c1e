"""The "Read the event" Code node (n8n/src/read_event.js): the context every later node uses,
and the events a workflow leaves alone."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.n8n.support import run_code, source

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CONTACT = "0193a5b2-1111-7000-8000-000000000001"


def workflow(event_type, trigger=None, stop_when_booked=False):
    return {
        "name": "test",
        "event_type": event_type,
        "trigger": trigger or event_type,
        "stop_when_booked": stop_when_booked,
    }


def read(event, config, *, env=None, traceparent=""):
    code = f"const WORKFLOW = {json.dumps(config)};\n" + source("read_event.js")
    [out] = run_code(
        code,
        input=[{"json": {"valid": True, "event": event, "traceparent": traceparent}}],
        env=env or {},
    )
    return out["json"]


def event(type_, age=timedelta(seconds=2), **data):
    return {
        "id": "evt-1",
        "type": type_,
        "timestamp": (datetime.now(UTC) - age).isoformat().replace("+00:00", "Z"),
        "organization": {"slug": "pulse"},
        "sequence": 7,
        "trace_id": TRACE,
        "data": {"contact_id": CONTACT, **data},
    }


def test_context_continues_the_events_trace():
    result = read(event("deal.won", deal_id="d"), workflow("deal.won"))
    ctx = result["ctx"]
    assert result["skip"] == ""
    assert (ctx["event_id"], ctx["contact_id"], ctx["trace_id"]) == ("evt-1", CONTACT, TRACE)
    assert re.fullmatch(rf"00-{TRACE}-[0-9a-f]{{16}}-01", ctx["traceparent"])
    assert ctx["wait_scale"] == 1
    assert result["decision_request"] == {
        "contact_id": CONTACT,
        "trigger": "deal.won",
        "event_id": "evt-1",
    }


def test_trace_from_the_header_when_the_body_has_none():
    body = {**event("deal.won"), "trace_id": ""}
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ctx = read(body, workflow("deal.won"), traceparent=header)["ctx"]
    assert ctx["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    ("setting", "scale"), [(None, 1), ("", 1), ("0.001", 0.001), ("0", 0), ("-2", 1), ("x", 1)]
)
def test_wait_scale_setting(setting, scale):
    env = {} if setting is None else {"SWITCHBOARD_WAIT_SCALE": setting}
    assert read(event("deal.won"), workflow("deal.won"), env=env)["ctx"]["wait_scale"] == scale


def test_the_message_is_the_one_of_this_event():
    text = "Hi\x00 there " + "x" * 5000
    result = read(
        event("message.received", text=text, direction="in"), workflow("message.received")
    )
    assert result["skip"] == ""
    assert result["decision_request"]["message"].startswith("Hi there ")
    assert len(result["decision_request"]["message"]) == 4000


def test_a_message_without_text_lets_the_api_pick_the_last_one():
    result = read(event("message.received", text="", direction="in"), workflow("message.received"))
    assert "message" not in result["decision_request"]


@pytest.mark.parametrize(
    ("body", "config", "why"),
    [
        (event("lead.created", source="sms"), workflow("lead.created"), "the lead wrote first"),
        (event("lead.created", source="api"), workflow("lead.created"), "the lead wrote first"),
        (event("deal.won"), workflow("lead.created"), "not a lead.created event but deal.won"),
        (event("deal.won", age=timedelta(days=4)), workflow("deal.won"), "96 hours old"),
        ({**event("deal.won"), "data": {"contact_id": None}}, workflow("deal.won"), "no contact"),
        (
            event("message.received", direction="out", text="x"),
            workflow("message.received"),
            "not an inbound message",
        ),
    ],
)
def test_events_left_alone(body, config, why):
    assert why in read(body, config)["skip"]


def test_a_lead_opened_by_hand_or_import_is_greeted():
    for source_ in ("", "walk-in", "import", "web_form"):
        result = read(event("lead.created", source=source_), workflow("lead.created"))
        assert result["skip"] == "", source_
        assert result["decision_request"]["trigger"] == "lead.created"


def test_a_redelivery_within_the_retry_horizon_is_acted_on():
    assert read(event("deal.won", age=timedelta(hours=47)), workflow("deal.won"))["skip"] == ""
