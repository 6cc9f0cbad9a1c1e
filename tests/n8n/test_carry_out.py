"""The "Carry out the actions" Code node (n8n/src/carry_out.js) against a recording HTTP
server standing in for the Core API: which call each action becomes (and that the API's own
input serializers accept its body), the headers, retries, waits and follow-ups."""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from apps.bookings.api import BookingCreateInput, RescheduleInput
from apps.conversations.api import EscalateInput
from apps.crm.api import (
    ContactPatchInput,
    DealStageInput,
    LeadDisqualifyInput,
    LeadPatchInput,
    LeadQualifyInput,
    TaskCreateInput,
)
from apps.decisions import actions as A
from apps.decisions.api import ACTION_EXAMPLES
from apps.providers.api import MessageSendInput
from tests.n8n.support import run_code, source
from tests.support.http import Reply

API_KEY = "sbk_test_key"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CONTACT = "0193a5b2-1111-7000-8000-000000000001"
NODES = {
    "read": "Read the event",
    "wait": "Wait until it is time",
    "booked": "Booked since?",
    "replied": "Replied since?",
}
PRELUDE = f"const NODES = {json.dumps(NODES)};\n"


def context(**overrides):
    return {
        "workflow": "test",
        "event_id": "evt-1",
        "event_type": "message.received",
        "trace_id": TRACE,
        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
        "contact_id": CONTACT,
        "conversation_id": None,
        "stop_when_booked": False,
        "stop_when_replied": False,
        "wait_scale": 1,
        **overrides,
    }


def carry_out(
    receiver, item, *, ctx=None, wait_state=None, env=None, bookings=None, conversation=None
):
    """One pass of the node; after a wait, `item` is what went into the Wait node (unless
    `wait_state` says otherwise) and `bookings` / `conversation` what the checks answered."""
    nodes = {"Read the event": [{"json": {"ctx": ctx or context()}}]}
    if wait_state is not None or "actions" not in item:
        nodes["Wait until it is time"] = [{"json": wait_state or item}]
    nodes["Booked since?"] = [{"json": bookings or {"count": 0, "results": []}}]
    nodes["Replied since?"] = [{"json": conversation or {"error": {"code": "not_found"}}}]
    [out] = run_code(
        PRELUDE + source("carry_out.js"),
        input=[{"json": item}],
        env=env
        if env is not None
        else {"SWITCHBOARD_URL": receiver.url + "/", "SWITCHBOARD_API_KEY": API_KEY},
        nodes=nodes,
    )
    return out["json"]


def decision(*actions, event_id="evt-1", conversation_id=None):
    return {
        "decision_id": "dec-1",
        "event_id": event_id,
        "conversation_id": conversation_id,
        "actions": list(actions),
    }


def action(type_, **changes):
    return {**copy.deepcopy(ACTION_EXAMPLES[type_]), **changes}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


SERIALIZERS = [
    ("POST", r"messages/", MessageSendInput),
    ("POST", r"bookings/", BookingCreateInput),
    ("POST", r"bookings/[^/]+/reschedule/", RescheduleInput),
    ("PATCH", r"contacts/[^/]+/", ContactPatchInput),
    ("PATCH", r"leads/[^/]+/", LeadPatchInput),
    ("POST", r"leads/[^/]+/qualify/", LeadQualifyInput),
    ("POST", r"leads/[^/]+/disqualify/", LeadDisqualifyInput),
    ("POST", r"deals/[^/]+/stage/", DealStageInput),
    ("POST", r"tasks/", TaskCreateInput),
    ("POST", r"conversations/[^/]+/escalate/", EscalateInput),
]


def accepted_by_the_api(method: str, path: str, body: dict) -> bool:
    relative = path.removeprefix("/api/v1/")
    for verb, pattern, serializer in SERIALIZERS:
        if verb == method and re.fullmatch(pattern, relative):
            checked = serializer(data=body)
            assert checked.is_valid(), (path, checked.errors)
            return True
    raise AssertionError(f"no API input for {method} {path}")


def test_every_action_type_becomes_its_documented_api_call(receiver):
    receiver.respond(Reply(status=201, body={"id": "new-id"}))
    lead = ACTION_EXAMPLES[A.UPDATE_LEAD]["lead_id"]
    result = carry_out(
        receiver,
        decision(
            action(A.UPDATE_CONTACT),
            action(A.UPDATE_LEAD),
            action(A.UPDATE_LEAD, answers={}, status="qualified"),
            action(A.UPDATE_LEAD, answers={}, status="disqualified", reason="Not local."),
            action(A.BOOK_APPOINTMENT),
            action(A.BOOK_APPOINTMENT, booking_id="0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f99"),
            action(A.MOVE_DEAL),
            action(A.OFFER_SLOTS),
            action(A.SEND_MESSAGE, send_at=None),
            action(A.CREATE_TASK),
            action(A.SCHEDULE_FOLLOW_UP, at=iso(datetime.now(UTC) + timedelta(days=1))),
            action(A.ESCALATE_TO_HUMAN),
            action(A.NO_ACTION),
        ),
    )
    calls = [(r.method, r.path) for r in receiver.requests]
    assert calls == [
        ("PATCH", f"/api/v1/contacts/{CONTACT}/"),
        ("PATCH", f"/api/v1/leads/{lead}/"),
        ("POST", f"/api/v1/leads/{lead}/qualify/"),
        ("POST", f"/api/v1/leads/{lead}/disqualify/"),
        ("POST", "/api/v1/bookings/"),
        ("POST", "/api/v1/bookings/0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f99/reschedule/"),
        ("POST", f"/api/v1/deals/{ACTION_EXAMPLES[A.MOVE_DEAL]['deal_id']}/stage/"),
        ("POST", "/api/v1/messages/"),
        ("POST", "/api/v1/tasks/"),
        ("POST", "/api/v1/tasks/"),
    ]
    keys = []
    for request in receiver.requests:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["traceparent"] == f"00-{TRACE}-00f067aa0ba902b7-01"
        keys.append(request.headers["idempotency-key"])
        assert accepted_by_the_api(request.method, request.path, request.json())
    assert keys == [
        "evt-1:0:0:update_contact",
        "evt-1:0:1:update_lead:answers",
        "evt-1:0:2:update_lead:qualify",
        "evt-1:0:3:update_lead:disqualify",
        "evt-1:0:4:book_appointment",
        "evt-1:0:5:book_appointment",
        "evt-1:0:6:move_deal",
        "evt-1:0:8:send_message",
        "evt-1:0:9:create_task",
        "evt-1:0:11:escalate_to_human",
    ]
    bodies = [r.json() for r in receiver.requests]
    send = action(A.SEND_MESSAGE)
    assert bodies[7] == {
        "contact_id": CONTACT,
        "text": send["body"],
        "channel": send["channel"],
        "purpose": send["purpose"],
        "template": send["template"]["name"],
        "template_variables": send["template"]["variables"],
    }
    assert (
        bodies[4]["appointment_type"] == ACTION_EXAMPLES[A.BOOK_APPOINTMENT]["appointment_type_id"]
    )
    assert (bodies[4]["contact_id"], bodies[4]["source"]) == (CONTACT, "n8n")
    assert bodies[9]["title"].startswith("Take over (normal): ")  # no conversation yet
    assert [(r["type"], r["status"]) for r in result["results"]][-6:] == [
        ("offer_slots", "skipped"),
        ("send_message", "done"),
        ("create_task", "done"),
        ("schedule_follow_up", "scheduled"),
        ("escalate_to_human", "done"),
        ("no_action", "skipped"),
    ]
    assert (result["next"], result["after_wait"]) == ("wait", "ask")


def test_rate_limits_and_server_errors_are_retried_with_the_same_key(receiver):
    replies = iter(
        [
            Reply(
                status=429, body={"error": {"code": "rate_limited"}}, headers={"Retry-After": "1"}
            ),
            Reply(status=503, body="unavailable", headers={"Retry-After": "1"}),
            Reply(status=202, body={"id": "msg-1"}, headers={"Idempotent-Replayed": "true"}),
        ]
    )
    receiver.respond(lambda request: next(replies))
    result = carry_out(receiver, decision(action(A.SEND_MESSAGE, send_at=None)))
    assert len(receiver.requests) == 3
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {"evt-1:0:0:send_message"}
    [sent] = result["results"]
    assert (sent["status"], sent["id"], sent["replayed"]) == ("done", "msg-1", True)
    assert result["next"] == "done"


def test_a_failed_booking_is_never_confirmed(receiver):
    def reply(request):
        if request.path == "/api/v1/bookings/":
            return Reply(status=409, body={"error": {"code": "slot_taken", "message": "Taken."}})
        return Reply(status=201, body={"id": "task-1"})

    receiver.respond(reply)
    result = carry_out(
        receiver,
        decision(
            action(A.BOOK_APPOINTMENT),
            action(A.MOVE_DEAL),
            action(A.SEND_MESSAGE, purpose="booking_confirmation", send_at=None),
            action(A.CREATE_TASK),
        ),
    )
    bookings = [r for r in receiver.requests if r.path == "/api/v1/bookings/"]
    assert "resource_id" in bookings[0].json() and "resource_id" not in bookings[1].json()
    assert bookings[1].headers["idempotency-key"] == "evt-1:0:0:book_appointment:any-resource"
    assert [r.path for r in receiver.requests][2:] == ["/api/v1/tasks/"]
    assert [(r["type"], r["status"]) for r in result["results"]] == [
        ("book_appointment", "failed"),
        ("move_deal", "skipped"),
        ("send_message", "skipped"),
        ("create_task", "done"),
    ]
    assert result["next"] == "failed"
    assert "409 slot_taken: Taken." in result["summary"]


def test_a_later_send_waits_scaled_then_goes(receiver):
    receiver.respond(Reply(status=202, body={"id": "msg-1"}))
    later = iso(datetime.now(UTC) + timedelta(seconds=1000))
    first = carry_out(
        receiver,
        decision(action(A.SEND_MESSAGE, send_at=later)),
        ctx=context(wait_scale=0.001),
    )
    assert receiver.requests == []
    assert (first["next"], first["after_wait"], len(first["pending"])) == ("wait", "send", 1)
    waits = (datetime.fromisoformat(first["wait_until"]) - datetime.now(UTC)).total_seconds()
    assert 0 < waits <= 1.1
    time.sleep(max(waits, 0) + 0.05)
    resumed = carry_out(receiver, first)
    assert [r.path for r in receiver.requests] == ["/api/v1/messages/"]
    assert [(r["type"], r["status"]) for r in resumed["results"]] == [("send_message", "done")]
    assert (resumed["next"], resumed["pending"]) == ("done", [])


def test_waits_end_once_the_contact_has_booked(receiver):
    later = iso(datetime.now(UTC) + timedelta(hours=1))
    ctx = context(stop_when_booked=True, wait_scale=0.0001)  # an hour: 0.36 s
    first = carry_out(
        receiver,
        decision(action(A.SEND_MESSAGE, send_at=later), action(A.SCHEDULE_FOLLOW_UP, at=later)),
        ctx=ctx,
    )
    assert first["next"] == "wait"
    page = {"count": 1, "next": None, "previous": None, "results": [{"id": "b1"}]}
    stopped = carry_out(receiver, first, bookings=page)
    assert (stopped["next"], stopped["stopped"]) == ("done", "the contact has booked since")
    assert receiver.requests == []
    # Not booked: the held message goes.
    time.sleep(0.4)
    receiver.respond(Reply(status=202, body={"id": "msg-1"}))
    empty = {"count": 0, "next": None, "previous": None, "results": []}
    went = carry_out(receiver, first, bookings=empty)
    assert len(receiver.requests) == 1
    assert (went["next"], went["after_wait"]) == ("wait", "ask")


def test_a_follow_up_asks_again_then_carries_out_its_actions(receiver):
    receiver.respond(Reply(status=202, body={"id": "msg-2"}))
    at = iso(datetime.now(UTC) + timedelta(days=1))
    first = carry_out(
        receiver,
        decision(action(A.SCHEDULE_FOLLOW_UP, at=at, purpose="no_show")),
        ctx=context(wait_scale=0),
    )
    assert (first["next"], first["after_wait"]) == ("wait", "ask")
    asking = carry_out(receiver, first)
    assert asking["next"] == "ask"
    assert asking["follow_up_request"] == {
        "contact_id": CONTACT,
        "trigger": "follow_up_due",
        "event_id": "evt-1:follow-up:1",
        "purpose": "no_show",
    }
    assert receiver.requests == []
    done = carry_out(
        receiver, decision(action(A.SEND_MESSAGE, send_at=None), event_id="evt-1:follow-up:1")
    )
    assert receiver.requests[0].headers["idempotency-key"] == "evt-1:1:0:send_message"
    assert (done["round"], done["next"]) == (1, "done")


def test_follow_ups_are_bounded(receiver):
    at = iso(datetime.now(UTC) + timedelta(days=1))
    result = carry_out(
        receiver, decision(action(A.SCHEDULE_FOLLOW_UP, at=at), event_id="evt-1:follow-up:5")
    )
    assert result["next"] == "done"


def test_missing_settings_fail_with_a_clear_reason(receiver):
    result = carry_out(receiver, decision(action(A.CREATE_TASK)), env={})
    assert result["next"] == "failed"
    assert "SWITCHBOARD_URL or SWITCHBOARD_API_KEY is not set" in result["summary"]


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_not_retried(receiver, status):
    receiver.respond(Reply(status=status, body={"error": {"code": "x", "message": "No."}}))
    result = carry_out(receiver, decision(action(A.CREATE_TASK)))
    assert len(receiver.requests) == 1
    assert result["results"][0]["code"] == "x"
    assert json.dumps(result["summary"]).count("No.") == 1


def test_escalation_hands_the_conversation_to_a_person(receiver):
    receiver.respond(Reply(status=200, body={"id": "conv-1", "agent_active": False}))
    conversation = "0193a5b2-2222-7000-8000-000000000001"
    carry_out(
        receiver,
        decision(action(A.ESCALATE_TO_HUMAN, priority="urgent"), conversation_id=conversation),
    )
    [request] = receiver.requests
    assert (request.method, request.path) == (
        "POST",
        f"/api/v1/conversations/{conversation}/escalate/",
    )
    assert request.json() == {
        "reason": ACTION_EXAMPLES[A.ESCALATE_TO_HUMAN]["reason"],
        "priority": "urgent",
    }
    assert accepted_by_the_api(request.method, request.path, request.json())


def test_the_first_message_tells_which_conversation_to_escalate(receiver):
    def reply(request):
        return Reply(status=202, body={"id": "msg-1", "conversation_id": "conv-9"})

    receiver.respond(reply)
    result = carry_out(
        receiver,
        decision(action(A.SEND_MESSAGE, send_at=None), action(A.ESCALATE_TO_HUMAN)),
    )
    assert [r.path for r in receiver.requests] == [
        "/api/v1/messages/",
        "/api/v1/conversations/conv-9/escalate/",
    ]
    assert result["ctx"]["conversation_id"] == "conv-9"


def test_waits_end_once_the_contact_has_replied(receiver):
    later = iso(datetime.now(UTC) + timedelta(days=1))
    ctx = context(stop_when_replied=True, conversation_id="conv-1", wait_scale=0)
    first = carry_out(receiver, decision(action(A.SCHEDULE_FOLLOW_UP, at=later)), ctx=ctx)
    before = iso(datetime.fromisoformat(first["since"]) - timedelta(minutes=5))
    after = iso(datetime.fromisoformat(first["since"]) + timedelta(seconds=1))
    quiet = carry_out(receiver, first, conversation={"id": "conv-1", "last_inbound_at": before})
    assert quiet["next"] == "ask"
    replied = carry_out(receiver, first, conversation={"id": "conv-1", "last_inbound_at": after})
    assert (replied["next"], replied["stopped"]) == ("done", "the contact has replied since")
    assert receiver.requests == []


def test_a_follow_up_round_keeps_what_the_workflow_learned(receiver):
    receiver.respond(Reply(status=200, body={"id": "conv-7"}))
    at = iso(datetime.now(UTC) + timedelta(days=1))
    first = carry_out(
        receiver,
        decision(action(A.SCHEDULE_FOLLOW_UP, at=at), conversation_id="conv-7"),
        ctx=context(wait_scale=0),
    )
    asking = carry_out(receiver, first)
    followed = carry_out(
        receiver,
        decision(action(A.ESCALATE_TO_HUMAN), event_id="evt-1:follow-up:1"),
        wait_state=asking,
    )
    assert followed["ctx"]["conversation_id"] == "conv-7"
    assert receiver.requests[0].path == "/api/v1/conversations/conv-7/escalate/"
    assert receiver.requests[0].headers["idempotency-key"] == "evt-1:1:0:escalate_to_human"


def test_a_decision_replayed_after_a_day_is_not_carried_out_again(receiver):
    old = {
        **decision(action(A.SEND_MESSAGE, send_at=None), action(A.CREATE_TASK)),
        "replayed": True,
        "created_at": iso(datetime.now(UTC) - timedelta(hours=30)),
    }
    result = carry_out(receiver, old)
    assert receiver.requests == []
    assert result["next"] == "done"
    assert "decided 30 hours ago" in result["stopped"]
    # Within the day the Idempotency-Keys make the repeat harmless: it is carried out.
    receiver.respond(Reply(status=201, body={"id": "x"}, headers={"Idempotent-Replayed": "true"}))
    recent = {**old, "created_at": iso(datetime.now(UTC) - timedelta(hours=2))}
    assert carry_out(receiver, recent)["next"] == "done"
    assert len(receiver.requests) == 2
