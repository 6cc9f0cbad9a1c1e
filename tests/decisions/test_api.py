"""`POST /api/v1/decisions/`: shape, idempotency (event_id and Idempotency-Key), tenancy,
bad input, query count, the OpenAPI components."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.decisions.actions import ACTION_SCHEMAS, ACTION_TYPES, actions_errors
from apps.decisions.api import ACTION_EXAMPLES, openapi_schema
from apps.decisions.models import ConversationMemory, CreditLedgerEntry, Decision
from apps.events.models import Event
from tests.decisions import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_engine")]
URL = "/api/v1/decisions/"


def post(client, body, **headers):
    return client.post(URL, body, format="json", **headers)


@pytest.fixture
def who(organization):
    return f.contact(organization)


def test_a_decision_for_a_contact(api, organization, who):
    f.lead(organization, who)
    response = post(
        api, {"contact_id": str(who.pk), "trigger": "lead.created", "event_id": "evt-1"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "decision_id",
        "contact_id",
        "conversation_id",
        "trigger",
        "event_id",
        "niche",
        "engine",
        "engine_requested",
        "fallback_reason",
        "intent",
        "actions",
        "rationale",
        "compliance",
        "credits_used",
        "credits_remaining",
        "latency_ms",
        "tokens",
        "trace_id",
        "created_at",
        "replayed",
        "execution",
    }
    assert body["contact_id"] == str(who.pk)
    assert body["niche"] == "fitness"
    assert (body["engine"], body["engine_requested"], body["fallback_reason"]) == (
        "rules",
        "rules",
        None,
    )
    assert [a["type"] for a in body["actions"]] == ["send_message", "schedule_follow_up"]
    assert actions_errors(body["actions"]) == []
    assert body["compliance"]["passed"] is True
    assert (body["credits_used"], body["credits_remaining"]) == (1, 499)
    assert body["replayed"] is False and body["execution"] is None
    assert body["trace_id"] == response["X-Request-ID"]
    assert response["Server-Timing"].startswith("app;dur=")
    decision = Decision.objects.get(pk=body["decision_id"])
    assert decision.inputs_digest and decision.context_summary["trigger"] == "lead.created"
    event = Event.objects.get(organization=organization, type="decision.made")
    assert event.data["decision_id"] == body["decision_id"]
    assert event.data["action_types"] == ["send_message", "schedule_follow_up"]
    assert event.trace_id == body["trace_id"]
    assert ConversationMemory.objects.get(contact=who).decision_count == 1


def test_conversation_id_alone_finds_the_contact(api, organization, who):
    conversation = f.conversation(who)
    response = post(api, {"conversation_id": str(conversation.pk), "trigger": "manual"})
    assert response.status_code == 201
    assert response.json()["contact_id"] == str(who.pk)
    assert response.json()["conversation_id"] == str(conversation.pk)


def test_same_event_id_returns_the_same_decision_once(api, organization, who):
    body = {
        "contact_id": str(who.pk),
        "trigger": "message.received",
        "message": "hi",
        "event_id": "evt-9",
    }
    first = post(api, body)
    second = post(api, {**body, "message": "something else entirely"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["decision_id"] == first.json()["decision_id"]
    assert second.json()["replayed"] is True and second.json()["credits_used"] == 0
    assert second.json()["actions"] == first.json()["actions"]
    assert Decision.objects.filter(organization=organization).count() == 1
    assert Event.objects.filter(type="decision.made").count() == 1
    assert CreditLedgerEntry.objects.filter(kind="decision").count() == 1
    assert ConversationMemory.objects.get(contact=who).decision_count == 1
    other = f.contact(organization, name="Ben")
    third = post(api, {**body, "contact_id": str(other.pk)})
    assert third.status_code == 201  # event ids are per contact


def test_idempotency_key_replays_the_response(api, organization, who):
    body = {"contact_id": str(who.pk), "trigger": "message.received", "message": "hi"}
    first = post(api, body, HTTP_IDEMPOTENCY_KEY="k-1")
    again = post(api, body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Decision.objects.count() == 1
    reused = post(api, {**body, "message": "other"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


def test_another_organizations_contact_or_conversation_is_404(api, other_organization):
    theirs = f.contact(other_organization)
    conversation = f.conversation(theirs)
    response = post(api, {"contact_id": str(theirs.pk), "trigger": "manual"})
    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"contact_id": ["not found"]}
    response = post(api, {"conversation_id": str(conversation.pk), "trigger": "manual"})
    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"conversation_id": ["not found"]}
    assert not Decision.objects.exists()


def test_contact_and_conversation_that_do_not_match_is_400(api, organization, who):
    other = f.contact(organization, name="Ben")
    conversation = f.conversation(other)
    response = post(
        api,
        {"contact_id": str(who.pk), "conversation_id": str(conversation.pk), "trigger": "manual"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "contact_conversation_mismatch"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"trigger": "manual"}, "contact_id"),
        ({"contact_id": None, "conversation_id": None, "trigger": "manual"}, "conversation_id"),
        ({"contact_id": "CONTACT", "trigger": "party.started"}, "trigger"),
        ({"contact_id": "CONTACT"}, "trigger"),
        ({"contact_id": "not-a-uuid", "trigger": "manual"}, "contact_id"),
        ({"contact_id": 12, "trigger": "manual"}, "contact_id"),
        ({"contact_id": "CONTACT", "trigger": "manual", "mesage": "typo"}, "mesage"),
        ({"contact_id": "CONTACT", "trigger": "manual", "message": "a\x00b"}, "message"),
        ({"contact_id": "CONTACT", "trigger": "manual", "message": "x" * 4001}, "message"),
        ({"contact_id": "CONTACT", "trigger": "manual", "event_id": "e" * 201}, "event_id"),
        ({"contact_id": "CONTACT", "trigger": "manual", "execute": "maybe"}, "execute"),
        ({"contact_id": "CONTACT", "trigger": "follow_up_due", "purpose": "party"}, "purpose"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, who, body, field):
    body = {k: (str(who.pk) if v == "CONTACT" else v) for k, v in body.items()}
    response = post(api, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]
    assert not Decision.objects.exists()


def test_a_body_that_is_not_an_object_is_400(api):
    response = api.post(URL, data="[1, 2]", content_type="application/json")
    assert response.status_code == 400


def test_without_an_api_key_is_401(client, who):
    response = client.post(
        URL, {"contact_id": str(who.pk), "trigger": "manual"}, content_type="application/json"
    )
    assert response.status_code == 401


def test_unknown_contact_is_404(api):
    response = post(api, {"contact_id": str(uuid.uuid4()), "trigger": "manual"})
    assert response.status_code == 404


def test_a_merged_contact_resolves_to_the_survivor(api, organization, who):
    from apps.crm.services import contact_merge

    duplicate = f.contact(organization, name="Ana L")
    contact_merge(organization=organization, survivor=who, duplicates=[duplicate])
    response = post(api, {"contact_id": str(duplicate.pk), "trigger": "manual"})
    assert response.status_code == 201
    assert response.json()["contact_id"] == str(who.pk)


def test_query_count_of_a_message_decision(api, organization, who, django_assert_max_num_queries):
    """Warm caches (niche context, the key's last_used_at), then count a typical decision:
    auth 1, subject 1, credits 1, context 1 (consents, lead, deals, bookings, messages in
    one statement), record 5 (insert, credits update + ledger, memory upsert, event) inside
    a transaction (a savepoint here: the test runs in one)."""
    f.lead(organization, who)
    f.message(who, "hello", at=f.NOW)
    post(api, {"contact_id": str(who.pk), "trigger": "message.received", "message": "hi"})
    with CaptureQueriesContext(connection) as queries:
        response = post(
            api, {"contact_id": str(who.pk), "trigger": "message.received", "message": "thanks!"}
        )
    assert response.status_code == 201
    assert len(queries) == 11, "\n".join(q["sql"][:400] for q in queries.captured_queries)


def test_query_count_when_slots_are_offered(api, organization, who):
    f.memory(who, greeted=True)
    post(api, {"contact_id": str(who.pk), "trigger": "message.received", "message": "hi"})
    with CaptureQueriesContext(connection) as queries:
        response = post(
            api,
            {"contact_id": str(who.pk), "trigger": "message.received", "message": "can I book?"},
        )
    assert response.json()["intent"] == "book"
    assert len(queries) <= 16, "\n".join(q["sql"][:400] for q in queries.captured_queries)


def test_openapi_documents_every_action_type(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    components = schema["components"]["schemas"]
    union = components["DecisionAction"]
    assert union["discriminator"]["propertyName"] == "type"
    assert set(union["discriminator"]["mapping"]) == set(ACTION_TYPES)
    for type_ in ACTION_TYPES:
        name = union["discriminator"]["mapping"][type_].rsplit("/", 1)[-1]
        component = components[name]
        assert set(component["properties"]) == set(ACTION_SCHEMAS[type_]["properties"])
        assert component["required"] == ACTION_SCHEMAS[type_]["required"]
        assert actions_errors([component["example"]]) == []
        assert component["example"] == ACTION_EXAMPLES[type_]
    output = components["DecisionOutput"]["properties"]["actions"]
    assert output["items"]["$ref"].endswith("/DecisionAction")
    operation = schema["paths"]["/api/v1/decisions/"]["post"]
    assert {"201", "200", "402", "404", "400"} <= set(operation["responses"])


def test_openapi_schema_conversion_handles_nullable_and_const():
    converted = openapi_schema(ACTION_SCHEMAS["update_lead"])
    assert converted["properties"]["type"] == {"type": "string", "enum": ["update_lead"]}
    assert converted["properties"]["status"]["nullable"] is True
    assert converted["properties"]["score"] == {"type": "integer", "nullable": True}
