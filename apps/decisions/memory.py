"""The agent's conversation memory of a contact: what the next decision needs to remember.

`memory_next(ctx, result, actions)` computes the new memory (pure; the simulator shows it
without saving); `memory_save` upserts it in the decision's transaction (one statement).

Facts kept (`ConversationMemory.facts`):
- `greeted`: the agent has written to the contact;
- `pending_question`: the lead answer the last message asked for (its reply is recorded
  there);
- `offered_slots`: the slots of the last `offer_slots` (`[{start, end, local_start,
  resource_id, appointment_type_id, appointment_type}]`), so "Tuesday at 6" books one;
  `reschedule_booking_id` when they were offered to move a booking;
- `answers`: qualification answers heard (also when the contact has no open lead);
- `objections`: objection keys raised; `unclear_streak`: messages in a row not understood;
- `follow_ups`: scheduled follow-ups `[{at, purpose, note, scheduled_at}]`;
  `follow_ups_sent`: follow-ups sent since the contact last wrote;
- `escalated`: a person was asked to take over.
"""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from apps.core.ids import uuid7
from apps.decisions import actions as A
from apps.decisions.engines.base import parse_iso, slot_label
from apps.decisions.models import ConversationMemory

MAX_TURNS = 10
# A message with one of these purposes carries the offered slots (a replaced one does not).
OFFERING_PURPOSES = ("booking", "no_show")
MAX_FOLLOW_UPS = 5
_TEXT = 300

_TABLE = ConversationMemory._meta.db_table
_UPSERT_SQL = f"""
INSERT INTO {_TABLE}
    (id, organization_id, contact_id, summary, facts, turns, decision_count, last_intent,
     last_decision_at, created_at, updated_at)
VALUES (%(id)s, %(org)s, %(contact)s, %(summary)s, %(facts)s::jsonb, %(turns)s::jsonb, 1,
        %(intent)s, %(now)s, %(now)s, %(now)s)
ON CONFLICT (contact_id) DO UPDATE SET
    summary = EXCLUDED.summary, facts = EXCLUDED.facts, turns = EXCLUDED.turns,
    decision_count = {_TABLE}.decision_count + 1, last_intent = EXCLUDED.last_intent,
    last_decision_at = EXCLUDED.last_decision_at, updated_at = EXCLUDED.updated_at
"""  # noqa: S608 - table name is our own model's


def memory_next(ctx, result, actions: list[dict]) -> dict:
    """The memory after this decision: `{summary, facts, turns, last_intent}`. Pure."""
    facts = ctx.facts
    facts.update(result.facts)
    sends = [a for a in actions if a["type"] == A.SEND_MESSAGE]
    if sends:
        facts.update(result.facts_if_sent)
        facts["greeted"] = True
    if ctx.trigger == "message.received" and ctx.message:
        facts["follow_ups_sent"] = 0
    offering = any(a["purpose"] in OFFERING_PURPOSES for a in sends)
    for action in actions:
        if action["type"] == A.OFFER_SLOTS and offering:
            facts["offered_slots"] = [
                {
                    **slot,
                    "appointment_type_id": action["appointment_type_id"],
                    "appointment_type": action["appointment_type"],
                }
                for slot in action["slots"]
            ]
            if "reschedule_booking_id" not in result.facts_if_sent:
                facts["reschedule_booking_id"] = None
        elif action["type"] == A.BOOK_APPOINTMENT:
            facts["offered_slots"] = []
            facts["reschedule_booking_id"] = None
        elif action["type"] == A.UPDATE_LEAD and action["answers"]:
            facts["answers"] = {**(facts.get("answers") or {}), **action["answers"]}
        elif action["type"] == A.SCHEDULE_FOLLOW_UP:
            follow_ups = list(facts.get("follow_ups") or [])
            follow_ups.append(
                {
                    "at": action["at"],
                    "purpose": action["purpose"],
                    "note": action["note"],
                    "scheduled_at": A.iso(ctx.now),
                }
            )
            facts["follow_ups"] = follow_ups[-MAX_FOLLOW_UPS:]
        elif action["type"] == A.ESCALATE_TO_HUMAN:
            facts["escalated"] = True
    turns = ctx.turns
    turns.append(
        {
            "at": A.iso(ctx.now),
            "trigger": ctx.trigger,
            "intent": result.intent,
            "in": ctx.message[:_TEXT] if ctx.message else "",
            "out": sends[0]["body"][:_TEXT] if sends else "",
            "actions": [a["type"] for a in actions],
        }
    )
    return {
        "summary": memory_summary(ctx, facts, result.intent),
        "facts": facts,
        "turns": turns[-MAX_TURNS:],
        "last_intent": result.intent[:32],
    }


def memory_summary(ctx, facts: dict, intent: str) -> str:
    """One paragraph a person (or the LLM) can read: who, what we know, where it stands."""
    parts = [f"{ctx.contact} ({ctx.niche.niche.name.lower()} contact)."]
    lead = ctx.lead
    if lead is not None:
        parts.append(f"Lead {lead.status}, score {lead.score}.")
    answers = {**(facts.get("answers") or {}), **((lead.answers or {}) if lead else {})}
    if answers:
        parts.append("Known: " + "; ".join(f"{k}: {v}" for k, v in answers.items()) + ".")
    if facts.get("objections"):
        parts.append("Objections raised: " + ", ".join(facts["objections"]) + ".")
    upcoming = ctx.upcoming_bookings
    if upcoming:
        booking = upcoming[0]
        parts.append(
            f"Booked: {booking.appointment_type.name} {slot_label(booking.start, ctx.local_now)}."
        )
    elif facts.get("offered_slots"):
        starts = [parse_iso(slot.get("start")) for slot in facts["offered_slots"]]
        labels = [slot_label(start, ctx.local_now) for start in starts if start]
        parts.append("Offered slots: " + ", ".join(labels) + ".")
    if facts.get("pending_question"):
        parts.append(f"Waiting for: {facts['pending_question']}.")
    if facts.get("follow_ups"):
        parts.append(f"{len(facts['follow_ups'])} follow-up(s) scheduled.")
    if facts.get("escalated"):
        parts.append("Escalated to a person.")
    if intent:
        parts.append(f"Last intent: {intent}.")
    return " ".join(parts)[:1000]


def memory_save(*, organization, contact, memory: dict, now) -> None:
    """Upsert the contact's memory (one statement; the decision's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT_SQL,
            {
                "id": uuid7(),
                "org": organization.pk,
                "contact": contact.pk,
                "summary": memory["summary"],
                "facts": json.dumps(memory["facts"], cls=DjangoJSONEncoder),
                "turns": json.dumps(memory["turns"], cls=DjangoJSONEncoder),
                "intent": memory["last_intent"],
                "now": now,
            },
        )
