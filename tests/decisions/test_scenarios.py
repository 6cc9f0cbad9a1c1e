"""The rules engine against the labeled scenario set (tests/decisions/scenarios.py): every
niche, at least ten conversations each, checked action by action after the guard."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest

from apps.bookings.models import AppointmentType
from apps.conversations.models import Conversation
from apps.decisions.actions import actions_errors
from tests.decisions import factories as f
from tests.decisions.scenarios import SCENARIOS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_engine")]


def test_every_niche_has_at_least_ten_scenarios():
    counts = Counter(s["niche"] for s in SCENARIOS)
    assert set(counts) == {"fitness", "med_spa", "real_estate", "consultant", "local_service"}
    assert min(counts.values()) >= 10
    assert len({s["id"] for s in SCENARIOS}) == len(SCENARIOS)


def _arrange(scenario):
    setup = scenario["setup"]
    now = setup.get("now", f.NOW)
    org = f.organization(scenario["niche"])
    who = f.contact(org, consent=setup.get("consent"), **setup.get("contact", {}))
    if "lead" in setup:
        f.lead(org, who, answers=setup["lead"])
    if setup.get("deal"):
        f.deal(org, who)
    if "price" in setup:
        AppointmentType.objects.filter(organization=org).update(price=Decimal(setup["price"]))
    if setup.get("booking") == "upcoming":
        f.booking(org, who, now=now)
    elif setup.get("booking") == "no_show":
        f.no_show(org, who, now=now)
    if setup.get("agent_inactive"):
        f.conversation(who, agent_active=False)
    if setup.get("offered"):
        f.memory(who, greeted=True)
        f.decide(org, who, message="I'd like to book a time", now=now - timedelta(minutes=5))
    if "memory" in setup:
        f.memory(who, **setup["memory"])
    return org, who, now


def _value(action: dict, field: str):
    return action[field]


def _assert_check(actions, check, scenario_id):
    type_, field, op, expected = check
    found = next((a for a in actions if a["type"] == type_), None)
    assert found is not None, f"{scenario_id}: no {type_} in {[a['type'] for a in actions]}"
    value = _value(found, field)
    if op == "eq":
        assert value == expected, f"{scenario_id}: {type_}.{field} = {value!r}"
    elif op == "has":
        assert str(expected).casefold() in str(value).casefold(), (
            f"{scenario_id}: {type_}.{field} {value!r} lacks {expected!r}"
        )
    else:
        assert expected.items() <= value.items(), f"{scenario_id}: {type_}.{field} = {value!r}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_scenario(scenario):
    org, who, now = _arrange(scenario)
    plan = f.simulate(org, who, trigger=scenario["trigger"], message=scenario["message"], now=now)
    actions = plan.actions
    assert [a["type"] for a in actions] == scenario["types"], (plan.result.rationale, actions)
    if scenario["intent"]:
        assert plan.result.intent == scenario["intent"]
    for check in scenario["expect"]:
        _assert_check(actions, check, scenario["id"])
    assert actions_errors(actions) == []
    assert plan.result.rationale


def test_offered_slots_are_real_free_slots_in_the_contacts_zone(fitness):
    who = f.contact(fitness, timezone="Europe/London")
    plan = f.simulate(fitness, who, message="Can I book a trial class?")
    offer = next(a for a in plan.actions if a["type"] == "offer_slots")
    kind = AppointmentType.objects.get(pk=offer["appointment_type_id"])
    assert offer["timezone"] == "Europe/London"
    assert offer["slots"][0]["local_start"].endswith("+00:00")
    from apps.bookings.slots import slots_compute
    from apps.decisions.engines.base import parse_iso

    free = {
        s.start
        for s in slots_compute(
            organization=fitness,
            appointment_type=kind,
            start=f.NOW,
            end=f.NOW + timedelta(days=7),
            now=f.NOW,
        )
    }
    assert {parse_iso(s["start"]) for s in offer["slots"]} <= free
    assert len(offer["slots"]) == 3
    # spread over different days, in order
    days = [parse_iso(s["start"]).date() for s in offer["slots"]]
    assert days == sorted(set(days))


def test_a_conversation_from_greeting_to_booking(fitness, ana):
    """Recorded decisions carry the memory from one message to the next."""
    f.lead(fitness, ana)
    first = f.decide(fitness, ana, trigger="lead.created")
    assert first.action_types == ["send_message", "schedule_follow_up"]
    second = f.decide(fitness, ana, message="getting stronger", now=f.NOW + timedelta(minutes=2))
    assert second.action_types == ["update_lead", "send_message"]
    assert second.actions[0]["answers"] == {"goal": "getting stronger"}
    third = f.decide(fitness, ana, message="this week", now=f.NOW + timedelta(minutes=4))
    assert third.action_types == ["update_lead", "offer_slots", "send_message"]
    offered = third.actions[1]["slots"]
    fourth = f.decide(fitness, ana, message="2", now=f.NOW + timedelta(minutes=6))
    assert fourth.action_types == ["book_appointment", "send_message"]
    assert fourth.actions[0]["start"] == offered[1]["start"]
    memory = ana.decision_memory
    memory.refresh_from_db()
    assert memory.decision_count == 4
    assert memory.facts["offered_slots"] == []
    assert [t["intent"] for t in memory.turns] == ["new_lead", "answer", "answer", "book"]
    assert "start_timing: this week" in memory.summary


def test_picked_slot_taken_meanwhile_offers_new_times(fitness, ana):
    f.memory(ana, greeted=True)
    offer = f.decide(fitness, ana, message="can I book?", now=f.NOW)
    first = offer.actions[0]["slots"][0]
    from apps.decisions.engines.base import parse_iso

    other = f.contact(fitness, name="Ben")
    kind = AppointmentType.objects.get(pk=offer.actions[0]["appointment_type_id"])
    from apps.bookings.services import booking_create

    booking_create(
        organization=fitness,
        contact=other,
        appointment_type=kind,
        start=parse_iso(first["start"]),
        now=f.NOW,
    )
    plan = f.simulate(fitness, ana, message="the first one", now=f.NOW + timedelta(minutes=1))
    assert [a["type"] for a in plan.actions] == ["offer_slots", "send_message"]
    assert "just taken" in plan.actions[1]["body"]
    assert first["start"] not in {s["start"] for s in plan.actions[0]["slots"]}


def test_reschedule_then_pick_moves_the_booking(db):
    org = f.organization("med_spa")
    who = f.contact(org)
    booked = f.booking(org, who)
    f.memory(who, greeted=True)
    offer = f.decide(org, who, message="can we reschedule?", now=f.NOW)
    assert offer.action_types == ["offer_slots", "send_message"]
    assert booked.start.isoformat() not in str(offer.actions[0]["slots"])
    pick = f.simulate(org, who, message="the last one", now=f.NOW + timedelta(minutes=1))
    book = pick.actions[0]
    assert book["type"] == "book_appointment"
    assert book["booking_id"] == str(booked.pk)
    assert book["start"] == offer.actions[0]["slots"][-1]["start"]


def test_merged_conversation_lookup_uses_last_inbound_channel(fitness, ana):
    f.message(ana, "hola", at=f.NOW - timedelta(minutes=1), channel="whatsapp")
    plan = f.simulate(fitness, ana, message="hi")
    assert plan.actions[0]["channel"] == "whatsapp"
    assert plan.actions[0]["template"] is None  # inside the 24-hour window
    assert Conversation.objects.filter(contact=ana).count() == 1


def test_message_received_without_text_answers_the_last_inbound_message(fitness, ana):
    f.memory(ana, greeted=True)
    f.message(ana, "can I book a class?", at=f.NOW - timedelta(minutes=1))
    plan = f.simulate(fitness, ana, message="")
    assert plan.result.intent == "book"
    assert plan.ctx.message == "can I book a class?"


def test_context_loads_in_one_query_on_a_warm_niche_cache(fitness, ana, django_assert_num_queries):
    from apps.decisions.context import decision_context_load
    from apps.niches.selectors import niche_context

    f.lead(fitness, ana, answers={"goal": "strength"})
    f.deal(fitness, ana)
    f.booking(fitness, ana)
    for minute in range(12):
        f.message(ana, f"message {minute}", at=f.NOW - timedelta(minutes=60 - minute))
    niche_context(organization=fitness)
    contact, conversation = f.subject(fitness, ana)
    with django_assert_num_queries(1):
        ctx = decision_context_load(
            organization=fitness,
            contact=contact,
            conversation=conversation,
            trigger="message.received",
            now=f.NOW,
        )
        ctx.summary()
    assert ctx.lead.answers == {"goal": "strength"}
    assert [s.name for s in ctx.deals[0].stages][:2] == ["New lead", "Trial booked"]
    assert ctx.deals[0].stage.name == "New lead"
    assert len(ctx.upcoming_bookings) == 1
    assert ctx.upcoming_bookings[0].appointment_type.slug
    assert len(ctx.recent_messages) == 10
    assert ctx.recent_messages[-1].text == "message 11"
    assert ctx.message == "message 11"
    assert ctx.consents == {"sms": "opted_in"}
