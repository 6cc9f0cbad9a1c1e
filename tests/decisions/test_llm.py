"""The LLM engine against a fake OpenAI-compatible server on 127.0.0.1 (`receiver`):
what it sends, what it does with good answers, and how every failure falls back to the
rules engine (and says so) without ever answering 500."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections

from apps.decisions.actions import actions_errors
from apps.decisions.engines.llm import PROPOSAL_SCHEMA
from apps.decisions.models import Decision
from tests.decisions import factories as f
from tests.support.http import Reply

pytestmark = pytest.mark.django_db


def completion(content, *, prompt_tokens=812, completion_tokens=64) -> dict:
    if not isinstance(content, str):
        content = json.dumps(content)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def proposal(*actions, intent="book", rationale="The contact wants a class.") -> dict:
    return {"intent": intent, "rationale": rationale, "actions": list(actions)}


def send(body, purpose="booking"):
    return {"type": "send_message", "body": body, "purpose": purpose}


def offer_from_request(request) -> Reply:
    """Offer the first two free slots the request listed, like a well-behaved model."""
    context = json.loads(request.json()["messages"][1]["content"])
    slug, starts = next(iter(context["free_slots"].items()))
    return Reply(
        body=completion(
            proposal(
                {"type": "offer_slots", "appointment_type": slug, "starts": starts[:2]},
                send("I have two times for a free trial class. Which one suits you?"),
            )
        )
    )


def test_request_carries_model_prompts_and_the_action_schema(llm, fitness, ana):
    llm.respond(offer_from_request)
    f.memory(ana, greeted=True)
    plan = f.simulate(fitness, ana, message="Can I book a trial class?")
    assert len(llm.requests) == 1
    request = llm.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-123"
    assert request.headers["traceparent"].startswith("00-")
    body = request.json()
    assert body["model"] == "test-model-1"
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert f"You are Jess, the front-desk assistant of {fitness.name}" in system["content"]
    assert "Persona: Jess runs the front desk" in system["content"]
    assert "No medical advice or promised body results" in system["content"]
    context = json.loads(user["content"])
    assert context["message"] == "Can I book a trial class?"
    assert context["channel"] == "sms"
    assert context["free_slots"]["free-trial-class"]
    assert "greeting" in context["prompts"] and "system" not in context["prompts"]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "decision", "strict": True, "schema": PROPOSAL_SCHEMA},
    }
    assert plan.result.engine == "llm"
    assert plan.result.fallback_reason == ""


def test_a_good_answer_is_completed_checked_and_guarded(llm, fitness, ana):
    llm.respond(offer_from_request)
    f.memory(ana, greeted=True)
    decision = f.decide(fitness, ana, message="Can I book a trial class?")
    assert decision.engine == "llm" and decision.engine_requested == "llm"
    assert decision.action_types == ["offer_slots", "send_message"]
    assert actions_errors(decision.actions) == []
    offer = decision.actions[0]
    assert offer["appointment_type"] == "free-trial-class" and len(offer["slots"]) == 2
    assert offer["slots"][0]["resource_id"]
    assert decision.actions[1]["channel"] == "sms" and decision.actions[1]["is_reply"] is True
    assert (decision.prompt_tokens, decision.completion_tokens) == (812, 64)
    assert decision.credits_used == 3
    assert decision.rationale == "The contact wants a class."
    ana.decision_memory.refresh_from_db()
    assert len(ana.decision_memory.facts["offered_slots"]) == 2


def test_llm_replies_are_guarded_too(llm):
    org = f.organization("local_service")
    who = f.contact(org)
    llm.respond(
        Reply(body=completion(proposal(send("A visit costs $89.", "price"), intent="price")))
    )
    plan = f.simulate(org, who, message="how much for a visit?")
    assert plan.result.engine == "llm"
    assert plan.actions[0]["body"].startswith("A visit costs $89. This is an estimate;")
    assert plan.compliance["interventions"][0]["rule"] == "local-service-estimate-disclaimer"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(body=completion("{not json")), "not valid JSON"),
        (Reply(body=completion({"actions": "many"})), "breaks the schema"),
        (
            Reply(body=completion(proposal({"type": "launch_rocket", "reason": "why not"}))),
            "breaks the schema",
        ),
        (
            Reply(body=b"<html>gateway</html>", headers={"Content-Type": "text/html"}),
            "invalid JSON",
        ),
        (Reply(body={"choices": []}), "no message content"),
        (Reply(status=401, body={"error": {"message": "bad key"}}), "HTTP 401"),
    ],
    ids=["malformed-json", "schema-invalid", "unknown-action", "html", "no-choices", "http-401"],
)
def test_unusable_answers_fall_back_to_the_rules_engine(llm, fitness, ana, reply, reason):
    llm.respond(reply)
    plan = f.simulate(fitness, ana, message="hello")
    assert plan.result.engine == "rules"
    assert reason in plan.result.fallback_reason
    assert [a["type"] for a in plan.actions] == ["send_message"]
    assert plan.actions[0]["prompt_key"] == "greeting"


def test_http_500_is_retried_then_falls_back(llm, fitness, ana):
    llm.respond(Reply(status=500, body={"error": "boom"}))
    plan = f.simulate(fitness, ana, message="hello")
    assert len(llm.requests) == 2
    assert plan.result.engine == "rules"
    assert "HTTP 500 (2 attempt(s))" in plan.result.fallback_reason


def test_a_flaky_server_is_retried_once(llm, fitness, ana):
    replies = iter(
        [Reply(status=503), Reply(body=completion(proposal(send("Hi Ana!", "greeting"))))]
    )
    llm.respond(lambda request: next(replies))
    plan = f.simulate(fitness, ana, message="hello")
    assert len(llm.requests) == 2
    assert plan.result.engine == "llm"


def test_timeout_falls_back(llm, settings, fitness, ana):
    settings.LLM_TIMEOUT_SECONDS = 0.3
    llm.respond(Reply(body=completion(proposal(send("too late"))), delay=1.0))
    plan = f.simulate(fitness, ana, message="hello")
    assert plan.result.engine == "rules"
    assert "timed out after 0.3 s" in plan.result.fallback_reason


def test_unreachable_server_falls_back(llm, settings, fitness, ana):
    settings.LLM_API_BASE = "http://127.0.0.1:9/v1"
    plan = f.simulate(fitness, ana, message="hello")
    assert plan.result.engine == "rules"
    assert "connection failed" in plan.result.fallback_reason


def test_unsafe_text_falls_back_and_the_rules_answer_is_guarded(llm):
    org = f.organization("med_spa")
    who = f.contact(org)
    f.memory(who, greeted=True)
    llm.respond(
        Reply(body=completion(proposal(send("Botox is painless and we guarantee results!"))))
    )
    plan = f.simulate(org, who, message="does it hurt?")
    assert plan.result.engine == "rules"
    assert "med-spa-no-guaranteed-results" in plan.result.fallback_reason
    assert plan.result.intent == "objection"
    assert "guarantee" not in json.dumps(plan.actions)
    assert plan.compliance["passed"] is True
    assert (plan.result.prompt_tokens, plan.result.completion_tokens) == (812, 64)


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (
            {
                "type": "offer_slots",
                "appointment_type": "free-trial-class",
                "starts": ["2030-03-05T03:00:00Z"],
            },
            "not a free slot",
        ),
        (
            {
                "type": "book_appointment",
                "appointment_type": "free-trial-class",
                "start": "2031-01-01T03:00:00Z",
                "booking_id": None,
            },
            "not free",
        ),
        (
            {
                "type": "move_deal",
                "deal_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f74",
                "stage": "Member",
            },
            "not the contact's",
        ),
        (
            {"type": "offer_slots", "appointment_type": "yacht-tour", "starts": []},
            "unknown appointment type",
        ),
        (
            {"type": "schedule_follow_up", "in_hours": 99999, "purpose": "follow_up", "note": ""},
            "30 days",
        ),
    ],
    ids=["slot-not-free", "book-not-free", "foreign-deal", "unknown-type", "far-follow-up"],
)
def test_unsafe_references_fall_back(llm, fitness, ana, action, reason):
    llm.respond(Reply(body=completion(proposal(action))))
    plan = f.simulate(fitness, ana, message="hello")
    assert plan.result.engine == "rules"
    assert reason in plan.result.fallback_reason


def test_api_reports_the_fallback_and_never_500s(llm, api, organization):
    who = f.contact(organization)
    llm.respond(Reply(status=500))
    response = api.post(
        "/api/v1/decisions/",
        {"contact_id": str(who.pk), "trigger": "message.received", "message": "hi"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["engine"] == "rules" and body["engine_requested"] == "llm"
    assert body["fallback_reason"].startswith("LLM request failed: HTTP 500")
    assert body["credits_used"] == 1
    assert body["tokens"] is None


def test_the_llm_is_not_asked_when_a_person_took_over(llm, fitness, ana):
    f.conversation(ana, agent_active=False)
    plan = f.simulate(fitness, ana, message="hello?")
    assert llm.requests == []
    assert plan.result.engine == "rules"
    assert "taken over" in plan.result.fallback_reason


@pytest.mark.django_db(transaction=True)
def test_the_llm_call_happens_outside_any_transaction(llm, api, organization):
    """While the fake server answers, the API's database session is idle, not in a
    transaction, even with an Idempotency-Key (whose wrapper opens one)."""
    who = f.contact(organization)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    states = []

    def answer(request):
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute(
                    "SELECT state, xact_start FROM pg_stat_activity WHERE pid = %s", [pid]
                )
                states.append(cursor.fetchone())
        finally:
            connections["default"].close()
        return Reply(body=completion(proposal(send("Hi Ana!", "greeting"), intent="greeting")))

    llm.respond(answer)
    response = api.post(
        "/api/v1/decisions/",
        {"contact_id": str(who.pk), "trigger": "message.received", "message": "hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="llm-outside-tx",
    )
    assert response.status_code == 201, response.content
    assert response.json()["engine"] == "llm"
    assert len(states) == 1
    state, xact_start = states[0]
    assert state == "idle" and xact_start is None
    assert threading.current_thread() is threading.main_thread()
    assert Decision.objects.filter(organization=organization).count() == 1


def test_tokens_and_latency_are_recorded(llm, fitness, ana):
    llm.respond(
        Reply(
            body=completion(
                proposal(send("Hi Ana!", "greeting")), prompt_tokens=5, completion_tokens=7
            )
        )
    )
    decision = f.decide(fitness, ana, message="hi", now=f.NOW + timedelta(seconds=1))
    assert (decision.prompt_tokens, decision.completion_tokens) == (5, 7)
    assert decision.latency_ms >= 0
