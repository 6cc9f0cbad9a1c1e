"""Compliance probes per niche: the guard blocks, rewrites and reschedules what the rules
say, and records every intervention with its rule. Offending texts come from organization
prompt overrides (what a customer could write) or from a rule added for the test."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.decisions.guard import quiet_until
from apps.niches.cache import niche_cache_invalidate
from apps.niches.models import ComplianceRule
from apps.niches.services import prompt_override_set
from tests.decisions import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_engine")]


def _types(plan) -> list[str]:
    return [a["type"] for a in plan.actions]


def _intervention(plan, rule: str) -> dict:
    found = [i for i in plan.compliance["interventions"] if i["rule"] == rule]
    assert found, plan.compliance
    return found[0]


def test_med_spa_guaranteed_results_is_blocked_and_escalated():
    org = f.organization("med_spa")
    prompt_override_set(
        organization=org,
        key="booking-offer",
        template="We guarantee you will love it. I have {slots} for a {appointment_type}.",
    )
    who = f.contact(org)
    f.memory(who, greeted=True)
    plan = f.simulate(org, who, message="can I book a consultation?")
    assert _types(plan) == ["offer_slots", "send_message", "escalate_to_human"]
    send = plan.actions[1]
    assert "guarantee" not in send["body"].lower()
    assert "realistic for you" in send["body"]
    assert send["purpose"] == "handoff"
    blocked = _intervention(plan, "med-spa-no-guaranteed-results")
    assert blocked == {
        "rule": "med-spa-no-guaranteed-results",
        "action_index": 1,
        "action_type": "send_message",
        "outcome": "blocked",
        "why": blocked["why"],
    }
    assert '"We guarantee"' in blocked["why"]
    assert plan.compliance["passed"] is False
    assert "med-spa-no-guaranteed-results" in plan.actions[2]["reason"]
    # the replaced message does not carry the slots: memory does not expect a pick
    assert not plan.memory["facts"].get("offered_slots")


def test_med_spa_results_talk_gets_the_disclaimer():
    org = f.organization("med_spa")
    prompt_override_set(
        organization=org,
        key="booking-offer",
        template="Clients love their results. I have {slots} for a {appointment_type}.",
    )
    who = f.contact(org)
    f.memory(who, greeted=True)
    plan = f.simulate(org, who, message="I'd like to book")
    body = plan.actions[1]["body"]
    assert body.endswith(
        "Individual results vary; your provider will confirm what's realistic for you at your consultation."
    )
    assert _intervention(plan, "med-spa-results-disclaimer")["outcome"] == "rewritten"
    assert plan.compliance["passed"] is True


def test_real_estate_steering_phrase_is_blocked():
    org = f.organization("real_estate")
    prompt_override_set(
        organization=org,
        key="greeting",
        template="Hi {first_name}, it's {agent_name}. This area is perfect for young "
        "professionals! Buying or selling?",
    )
    who = f.contact(org)
    plan = f.simulate(org, who, message="Hi")
    assert _types(plan) == ["send_message", "escalate_to_human"]
    assert "young professionals" not in plan.actions[0]["body"]
    assert "official" in plan.actions[0]["body"]
    assert _intervention(plan, "real-estate-no-steering")["outcome"] == "blocked"


def test_fitness_medical_promise_is_blocked_with_the_safe_answer():
    org = f.organization("fitness")
    prompt_override_set(
        organization=org,
        key="greeting",
        template="Hi {first_name}! Join {business_name} and you will lose 10 pounds this month.",
    )
    who = f.contact(org)
    plan = f.simulate(org, who, message="hello")
    assert "lose 10 pounds" not in plan.actions[0]["body"]
    assert "check with your doctor" in plan.actions[0]["body"]
    assert _intervention(plan, "fitness-no-medical-advice")["outcome"] == "blocked"


def test_consultant_income_promise_is_blocked():
    org = f.organization("consultant")
    prompt_override_set(
        organization=org,
        key="greeting",
        template="Hi {first_name}! {business_name} will double your revenue in 90 days.",
    )
    who = f.contact(org)
    plan = f.simulate(org, who, message="hello")
    assert "double your revenue" not in plan.actions[0]["body"]
    assert _intervention(plan, "consultant-no-guaranteed-outcomes")["outcome"] == "blocked"


def test_claiming_to_be_human_is_blocked_in_every_niche():
    org = f.organization("local_service")
    prompt_override_set(
        organization=org,
        key="greeting",
        template="Hi {first_name}, I'm a real person at {business_name}, what do you need?",
    )
    who = f.contact(org)
    plan = f.simulate(org, who, message="hey")
    assert "real person" not in plan.actions[0]["body"]
    assert _intervention(plan, "no-claiming-to-be-human")["outcome"] == "blocked"


def test_local_service_price_gets_the_estimate_disclaimer_once():
    org = f.organization("local_service")
    prompt_override_set(
        organization=org,
        key="booking-offer",
        template="A visit is $89. I have {slots} for a {appointment_type}. This is an estimate; "
        "the final price is confirmed once a technician has seen the job.",
    )
    who = f.contact(org)
    f.memory(who, greeted=True)
    plan = f.simulate(org, who, message="can you send someone out?")
    body = plan.actions[1]["body"]
    assert body.count("This is an estimate") == 1
    assert not plan.compliance["interventions"]


def test_rewrite_and_warn_severities(fitness, ana):
    ComplianceRule.objects.create(
        niche=fitness.primary_niche,
        key="test-rewrite-coaches",
        name="Say trainers, not coaches",
        kind="forbidden_phrase",
        severity="rewrite",
        pattern=r"\bcoaches\b",
        replacement="trainers",
    )
    ComplianceRule.objects.create(
        niche=fitness.primary_niche,
        key="test-warn-free",
        name="Free offers are reviewed",
        kind="forbidden_phrase",
        severity="warn",
        pattern=r"\bfree\b",
    )
    niche_cache_invalidate()
    f.memory(ana, greeted=True)
    plan = f.simulate(fitness, ana, message="can I book a trial?")
    body = plan.actions[1]["body"]
    assert "meet the trainers" in body and "coaches" not in body
    assert _intervention(plan, "test-rewrite-coaches")["outcome"] == "rewritten"
    assert _intervention(plan, "test-warn-free")["outcome"] == "warned"
    assert "free trial class" in body


def _zone_at_local_hour(hour: int, now: datetime) -> str:
    """An IANA zone (Etc/GMT±N) whose local time at `now` has this hour."""
    for offset in range(-12, 15):
        if (now + timedelta(hours=offset)).hour == hour:
            return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
    raise AssertionError("no zone")


def test_quiet_hours_hold_business_messages_in_the_contacts_zone(fitness):
    """The organization is in New York (10:00 there); the contact is where it is 2 AM."""
    zone = _zone_at_local_hour(2, f.NOW)
    who = f.contact(fitness, timezone=zone)
    f.lead(fitness, who)
    plan = f.simulate(fitness, who, trigger="lead.created")
    send = plan.actions[0]
    assert send["type"] == "send_message"
    assert send["send_at"] == "2030-03-05T21:00:00Z"  # 08:00 in the contact's zone
    held = _intervention(plan, "quiet-hours-sms-whatsapp")
    assert held["outcome"] == "rescheduled"
    assert zone in held["why"]


def test_quiet_hours_let_a_prompt_reply_through_but_hold_a_late_one(fitness):
    zone = _zone_at_local_hour(23, f.NOW)
    who = f.contact(fitness, timezone=zone)
    f.memory(who, greeted=True)
    f.message(who, "can I book a class?", at=f.NOW - timedelta(minutes=5))
    prompt = f.simulate(fitness, who, message="")
    assert prompt.actions[1]["send_at"] is None
    assert not prompt.compliance["interventions"]
    late = f.simulate(fitness, who, message="", now=f.NOW + timedelta(hours=2))
    assert late.actions[1]["send_at"] is not None
    assert _intervention(late, "quiet-hours-sms-whatsapp")["outcome"] == "rescheduled"


def test_quiet_until_wraps_midnight():
    tz = ZoneInfo("America/New_York")
    window = (time(21, 0), time(8, 0))
    evening = datetime(2030, 1, 1, 22, 30, tzinfo=tz)
    assert quiet_until(evening, *window) == datetime(2030, 1, 2, 8, 0, tzinfo=tz)
    morning = datetime(2030, 1, 1, 7, 0, tzinfo=tz)
    assert quiet_until(morning, *window) == datetime(2030, 1, 1, 8, 0, tzinfo=tz)
    assert quiet_until(datetime(2030, 1, 1, 12, 0, tzinfo=tz), *window) is None
    daytime_window = (time(12, 0), time(13, 0))
    assert quiet_until(datetime(2030, 1, 1, 12, 30, tzinfo=tz), *daytime_window) == datetime(
        2030, 1, 1, 13, 0, tzinfo=tz
    )


def test_opted_out_channel_blocks_even_a_reply(fitness):
    who = f.contact(fitness, email=None, consent={"sms": False})
    f.message(who, "hi, can I book?", at=f.NOW - timedelta(minutes=1))
    plan = f.simulate(fitness, who, message="")
    sends = [a for a in plan.actions if a["type"] == "send_message"]
    assert sends == []
    assert _intervention(plan, "contact-opted-out")["outcome"] == "blocked"


def test_consent_required_blocks_a_cold_text_but_not_a_reply(fitness):
    who = f.contact(fitness, email=None, consent={})
    f.lead(fitness, who)
    cold = f.simulate(fitness, who, trigger="lead.created")
    assert cold.actions[0]["type"] == "no_action"
    assert _intervention(cold, "consent-required-sms-whatsapp")["outcome"] == "blocked"
    f.message(who, "hello there", at=f.NOW - timedelta(hours=20))
    warm = f.simulate(fitness, who, trigger="lead.created")
    assert warm.actions[0]["type"] == "send_message"
    assert not [i for i in warm.compliance["interventions"] if i["rule"].startswith("consent")]


def test_whatsapp_outside_the_window_uses_the_approved_template(fitness):
    who = f.contact(fitness, consent={"whatsapp": True, "sms": False}, email=None)
    f.message(who, "hi", at=f.NOW - timedelta(days=2), channel="whatsapp")
    f.memory(
        who,
        greeted=True,
        follow_ups=[
            {
                "at": "2030-03-05T14:00:00Z",
                "purpose": "follow_up",
                "scheduled_at": "2030-03-04T00:00:00Z",
            }
        ],
    )
    plan = f.simulate(fitness, who, trigger="follow_up_due")
    send = plan.actions[0]
    assert send["channel"] == "whatsapp"
    assert send["template"] == {
        "name": "sb_follow_up",
        "language": "en_US",
        "variables": ["Ana", fitness.name],
        "purpose": "follow_up",
    }
    assert send["body"].startswith(f"Hi Ana, it's {fitness.name}.")
    assert _intervention(plan, "whatsapp-24h-window")["outcome"] == "rewritten"


def test_rules_checked_lists_the_niches_and_global_rules(fitness, ana):
    plan = f.simulate(fitness, ana, message="hello")
    checked = set(plan.compliance["rules_checked"])
    assert {
        "fitness-no-medical-advice",
        "no-claiming-to-be-human",
        "quiet-hours-sms-whatsapp",
        "consent-required-sms-whatsapp",
        "contact-opted-out",
    } <= checked
    assert "med-spa-no-guaranteed-results" not in checked


def test_default_texts_pass_every_niches_rules():
    """The engine's own fallback texts never trip a blocking rule of any niche."""
    from apps.decisions.engines.base import render
    from apps.decisions.engines.phrases import DEFAULT_TEMPLATES, SAFE_REPLIES
    from apps.decisions.guard import content_violations

    variables = {
        "first_name": "Ana",
        "business_name": "Acme",
        "agent_name": "Jess",
        "appointment_type": "Consultation",
        "slots": ["Tue 6:00 PM"],
        "booking_date": "Tuesday, March 5",
        "booking_time": "6:00 PM",
        "price_text": "",
        "question": "When would you like to start?",
    }
    for niche in ("fitness", "med_spa", "real_estate", "consultant", "local_service"):
        ctx = _FakeCtx(f.organization(niche))
        for key, template in {**DEFAULT_TEMPLATES, **SAFE_REPLIES}.items():
            text = render(template, variables)
            assert not content_violations(ctx, text, "sms"), (niche, key, text)


class _FakeCtx:
    def __init__(self, org):
        from apps.niches.selectors import niche_context

        self.niche = niche_context(organization=org)
