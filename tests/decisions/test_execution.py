"""`execute: true`: the actions carried out through the existing services; the scheduled
part (held sends, follow-up decisions) run by the beat job; the escalation service."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.bookings.models import Booking
from apps.conversations.models import Conversation, Message
from apps.conversations.services import conversation_escalate
from apps.crm.models import ConsentStatus, ContactConsent, Deal, Task
from apps.decisions import actions as A
from apps.decisions.execution import decision_execute, scheduled_actions_run_due
from apps.decisions.models import Decision, ScheduledAction, ScheduledStatus
from apps.events.models import Event
from apps.tenancy.services import organization_provision_defaults
from tests.decisions import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_engine")]


def _results(decision) -> dict[str, dict]:
    return {r["type"]: r for r in decision.execution}


def test_api_execute_books_the_picked_slot_moves_the_deal_and_reports(api, organization):
    organization_provision_defaults(organization=organization)
    f.twilio_channel(organization)
    who = f.contact(organization)
    deal = f.deal(organization, who)
    f.memory(who, greeted=True)
    offer = api.post(
        "/api/v1/decisions/",
        {
            "contact_id": str(who.pk),
            "trigger": "message.received",
            "message": "can I book a trial?",
        },
        format="json",
    ).json()
    picked = offer["actions"][0]["slots"][0]
    response = api.post(
        "/api/v1/decisions/",
        {
            "contact_id": str(who.pk),
            "trigger": "message.received",
            "message": "the first one",
            "execute": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [a["type"] for a in body["actions"]] == ["book_appointment", "move_deal", "send_message"]
    results = {r["type"]: r for r in body["execution"]}
    assert results["book_appointment"]["status"] == "done"
    booking = Booking.objects.get(pk=results["book_appointment"]["booking_id"])
    assert booking.contact_id == who.pk and booking.source == "agent"
    assert booking.start.isoformat().replace("+00:00", "Z") == picked["start"]
    assert results["move_deal"]["status"] == "done"
    deal.refresh_from_db()
    assert deal.stage.name == "Trial booked"
    assert results["send_message"]["status"] == "done"
    sent = Message.objects.get(pk=results["send_message"]["message_id"])
    assert (sent.direction, sent.status, sent.sender_kind) == ("out", "queued", "agent")
    assert sent.text == body["actions"][2]["body"]
    stored = Decision.objects.get(pk=body["decision_id"])
    assert stored.execution == body["execution"] and stored.executed_at is not None


def test_execute_records_answers_and_qualifies_the_lead():
    org = f.organization("real_estate")
    who = f.contact(org)
    lead = f.lead(org, who, answers={"buy_or_sell": "buy", "timeline": "0-3 months"})
    f.memory(who, greeted=True, pending_question="financing")
    decision = f.decide(org, who, message="we're paying cash")
    decision_execute(decision=decision)
    assert _results(decision)["update_lead"]["status"] == "done"
    lead.refresh_from_db()
    assert lead.answers["financing"] == "cash"
    assert lead.status == "qualified" and lead.score == 70


def test_execute_opt_out_updates_consent(fitness, ana):
    decision = f.decide(fitness, ana, message="please stop texting me")
    decision_execute(decision=decision)
    consent = ContactConsent.objects.get(contact=ana, channel="sms")
    assert consent.status == ConsentStatus.OPTED_OUT
    assert Event.objects.filter(type="contact.opted_out").count() == 1


def test_execute_escalation_stops_the_agent_and_emits_once(fitness, ana):
    conversation = f.conversation(ana)
    decision = f.decide(fitness, ana, message="can I talk to a real person?")
    decision_execute(decision=decision)
    assert _results(decision)["escalate_to_human"]["status"] == "done"
    conversation.refresh_from_db()
    assert conversation.agent_active is False and conversation.escalated_at is not None
    event = Event.objects.get(type="conversation.escalated")
    assert event.data["conversation_id"] == str(conversation.pk)
    assert "real person" in event.data["reason"]
    conversation_escalate(organization=fitness, conversation=conversation, reason="again")
    assert Event.objects.filter(type="conversation.escalated").count() == 1
    # the agent now stays quiet
    quiet = f.simulate(fitness, ana, message="hello?")
    assert [a["type"] for a in quiet.actions] == ["no_action"]


def test_escalation_raises_priority_never_lowers_it(fitness, ana):
    conversation = f.conversation(ana)
    Conversation.objects.filter(pk=conversation.pk).update(priority="urgent")
    conversation_escalate(
        organization=fitness, conversation=conversation, reason="x", priority="high"
    )
    conversation.refresh_from_db()
    assert conversation.priority == "urgent"


def test_execute_escalation_without_a_conversation_creates_a_task(fitness, ana):
    decision = f.decide(fitness, ana, message="I want to speak to someone")
    decision_execute(decision=decision)
    task = Task.objects.get(pk=_results(decision)["escalate_to_human"]["task_id"])
    assert task.contact_id == ana.pk and task.source == "agent"


def test_execute_deal_won_workflow_tags_and_creates_tasks(fitness, ana):
    decision = f.decide(fitness, ana, trigger="deal.won")
    decision_execute(decision=decision)
    ana.refresh_from_db()
    assert "member" in ana.tags
    titles = set(Task.objects.filter(contact=ana).values_list("title", flat=True))
    assert "Two-week check-in call with the new member" in titles


def test_a_failing_action_does_not_undo_the_others(fitness, ana):
    """The slot was taken between the decision and its execution."""
    lead = f.lead(fitness, ana)
    f.memory(ana, greeted=True, pending_question="start_timing")
    decision = f.decide(fitness, ana, message="this week")
    slot = decision.actions[1]["slots"][0]
    book = {
        **A.book_appointment(
            appointment_type=f.default_type(fitness),
            start=f.NOW,
            tz=fitness.tz,
        ),
        "appointment_type_id": decision.actions[1]["appointment_type_id"],
        "start": slot["start"],
        "local_start": slot["local_start"],
        "resource_id": slot["resource_id"],
    }
    Decision.objects.filter(pk=decision.pk).update(actions=[*decision.actions, book, book])
    decision.refresh_from_db()
    results = decision_execute(decision=decision, now=f.NOW)
    assert [r["status"] for r in results[-2:]] == ["done", "failed"]
    assert results[-1]["error"]["code"] == "slot_taken"
    lead.refresh_from_db()
    assert lead.answers["start_timing"] == "this week"
    assert Booking.objects.filter(contact=ana).count() == 1


def test_execute_is_idempotent(fitness, ana):
    decision = f.decide(fitness, ana, trigger="deal.won")
    first = decision_execute(decision=decision)
    again = decision_execute(decision=Decision.objects.get(pk=decision.pk))
    assert again == first
    assert Task.objects.filter(contact=ana).count() == 2


def test_follow_up_is_scheduled_then_decided_by_the_beat_job(fitness, ana):
    f.lead(fitness, ana)
    decision = f.decide(fitness, ana, trigger="lead.created")
    decision_execute(decision=decision, now=f.NOW)
    follow_up = ScheduledAction.objects.get(kind="follow_up")
    assert follow_up.due_at == f.NOW + timedelta(days=1)
    assert scheduled_actions_run_due(now=f.NOW + timedelta(hours=2)) == 0
    assert scheduled_actions_run_due(now=f.NOW + timedelta(days=1, minutes=1)) == 1
    follow_up.refresh_from_db()
    assert follow_up.status == ScheduledStatus.DONE
    made = Decision.objects.get(pk=follow_up.result["decision_id"])
    assert made.trigger == "follow_up_due" and made.event_id == f"scheduled:{follow_up.pk}"
    assert made.action_types == ["send_message", "create_task"]
    assert made.execution is not None
    assert Task.objects.filter(contact=ana, title__startswith="Call the lead").exists()
    assert scheduled_actions_run_due(now=f.NOW + timedelta(days=2)) == 0


def test_a_follow_up_after_a_reply_does_nothing(fitness, ana):
    f.lead(fitness, ana)
    decision = f.decide(fitness, ana, trigger="lead.created")
    decision_execute(decision=decision, now=f.NOW)
    f.message(ana, "hi! strength please", at=f.NOW + timedelta(hours=3))
    scheduled_actions_run_due(now=f.NOW + timedelta(days=1, minutes=1))
    made = Decision.objects.get(trigger="follow_up_due")
    assert made.action_types == ["no_action"]
    assert "replied" in made.actions[0]["reason"]


def test_a_send_held_by_quiet_hours_is_sent_when_due(fitness):
    night = f.NOW.replace(hour=3)  # 22:00 in New York
    f.twilio_channel(fitness)
    who = f.contact(fitness)
    f.lead(fitness, who)
    decision = f.decide(fitness, who, trigger="lead.created", now=night)
    send_at = decision.actions[0]["send_at"]
    assert send_at == "2030-03-05T13:00:00Z"
    results = decision_execute(decision=decision, now=night)
    assert results[0]["status"] == "scheduled"
    held = ScheduledAction.objects.get(kind="send_message")
    assert scheduled_actions_run_due(now=night + timedelta(hours=1)) == 0
    assert scheduled_actions_run_due(now=held.due_at + timedelta(minutes=1)) >= 1
    held.refresh_from_db()
    assert held.status == ScheduledStatus.DONE
    message = Message.objects.get(pk=held.result["message_id"])
    assert message.text == decision.actions[0]["body"]


def test_a_held_send_far_past_its_time_is_skipped(fitness, ana):
    decision = f.decide(fitness, ana, message="hi")
    ScheduledAction.objects.create(
        organization=fitness,
        contact=ana,
        decision=decision,
        kind="send_message",
        due_at=f.NOW,
        payload=decision.actions[0],
    )
    scheduled_actions_run_due(now=f.NOW + timedelta(days=1))
    held = ScheduledAction.objects.get()
    assert held.status == ScheduledStatus.DONE and held.result["status"] == "skipped"


def test_move_deal_and_lead_services_see_the_agent_as_actor(fitness, ana):
    f.deal(fitness, ana)
    f.memory(ana, greeted=True)
    f.decide(fitness, ana, message="book me in", now=f.NOW - timedelta(minutes=5))
    decision = f.decide(fitness, ana, message="the first one", now=f.NOW)
    assert decision.action_types == ["book_appointment", "move_deal", "send_message"]
    decision_execute(decision=decision, now=f.NOW)
    deal = Deal.objects.get(contact=ana)
    assert deal.stage_changes.order_by("created_at").last().actor == "agent"


def test_a_refused_send_is_reported_not_raised(fitness, ana):
    """No channel connection: the send service refuses; the other actions still run."""
    f.lead(fitness, ana)
    decision = f.decide(fitness, ana, trigger="lead.created")
    results = decision_execute(decision=decision, now=f.NOW)
    assert results[0]["status"] == "failed"
    assert results[0]["error"]["code"] == "no_channel"
    assert results[1]["status"] == "scheduled"
    assert not Message.objects.filter(direction="out").exists()
