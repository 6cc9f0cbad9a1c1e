"""Revenue wired into the decision engine: the pricing guard on real decisions, the
decisions-per-month limit at decision creation, revenue attributed to the decisions that
touched a deal, and decision outcomes for the dashboard."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.bookings.models import AppointmentType
from apps.crm import services as crm
from apps.decisions.models import Decision
from apps.decisions.services import decision_outcomes_link
from apps.revenue import jobs, limits, selectors, services
from apps.revenue.models import PriceRule, RevenueEntry
from tests.decisions import factories as df
from tests.revenue import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rules_engine(settings):
    settings.DECISION_ENGINE = "rules"
    settings.LLM_API_BASE = ""


@pytest.fixture
def local_service():
    org = df.organization("local_service")
    AppointmentType.objects.filter(organization=org).update(price=Decimal("49.00"))
    return org


def price_question(org):
    who = df.contact(org)
    df.memory(who, greeted=True)
    return who


def rule_for_every_type(org, low: str, high: str, action: str):
    for kind in AppointmentType.objects.filter(organization=org):
        PriceRule.objects.create(
            organization=org,
            name=kind.name,
            appointment_type=kind,
            min_price=Decimal(low),
            max_price=Decimal(high),
            currency="USD",
            action=action,
        )


def sends(decision):
    return [a for a in decision.actions if a["type"] == "send_message"]


def test_a_quote_outside_the_rule_is_rewritten_in_the_decision(local_service):
    rule_for_every_type(local_service, "79", "99", "rewrite")
    who = price_question(local_service)
    decision = df.decide(local_service, who, message="how much do you charge to come out?")
    [send] = sends(decision)
    assert "$79-$99" in send["body"] and "$49" not in send["body"]
    interventions = decision.compliance["interventions"]
    assert any(
        i["rule"] == "pricing-rules" and i["outcome"] == "rewritten" for i in interventions
    ), interventions
    assert "pricing-rules" in decision.compliance["rules_checked"]


def test_a_quote_under_a_block_rule_is_not_sent_and_a_person_takes_over(local_service):
    rule_for_every_type(local_service, "79", "99", "block")
    who = price_question(local_service)
    decision = df.decide(local_service, who, message="how much do you charge to come out?")
    assert not sends(decision)
    assert "escalate_to_human" in decision.action_types
    assert decision.compliance["passed"] is False


def test_a_quote_within_the_rule_passes(local_service):
    rule_for_every_type(local_service, "40", "60", "block")
    who = price_question(local_service)
    decision = df.decide(local_service, who, message="how much do you charge to come out?")
    [send] = sends(decision)
    assert "($49)" in send["body"]
    assert not [i for i in decision.compliance["interventions"] if i["rule"] == "pricing-rules"]


def test_decisions_per_month_limit_at_decision_creation(
    api, organization, django_capture_on_commit_callbacks
):
    f.set_limit(organization, "max_decisions_per_month", 1)
    who = df.contact(organization)
    url = "/api/v1/decisions/"
    body = {"contact_id": str(who.pk), "trigger": "lead.created"}
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(url, {**body, "event_id": "e1"}, format="json")
    assert first.status_code == 201, first.content
    with django_capture_on_commit_callbacks(execute=True):
        refused = api.post(url, {**body, "event_id": "e2"}, format="json")
    assert refused.status_code == 403, refused.content
    error = refused.json()["error"]
    assert error["code"] == "limit_exceeded"
    assert error["details"]["limit"] == "decisions_per_month"
    assert (error["details"]["value"], error["details"]["usage"]) == (1, 1)
    assert Decision.objects.count() == 1
    replay = api.post(url, {**body, "event_id": "e1"}, format="json")
    assert replay.status_code == 200  # the stored decision is not a new one


def test_decisions_usage_is_seeded_from_the_decisions_table(organization):
    who = df.contact(organization)
    for n in range(3):
        df.decide(organization, who, trigger="lead.created", event_id=f"seed-{n}")
    label = limits.period_bounds(organization, "month")[0]
    limits._redis().delete(limits._counter_key(organization, "decisions_per_month", label))
    usage = {row.limit: row.usage for row in limits.usage_summary(organization=organization)}
    assert usage["decisions_per_month"] == 3


def test_revenue_is_attributed_to_the_decisions_that_touched_the_deal(organization):
    who = df.contact(organization)
    other = df.contact(organization)
    lead = crm.lead_create(organization=organization, contact=who, source="whatsapp")
    touching = [
        df.decide(organization, who, trigger="lead.created", event_id=f"t{n}") for n in range(2)
    ]
    df.decide(organization, other, trigger="lead.created", event_id="x")  # another contact
    deal = crm.lead_convert(organization=organization, lead=lead, amount="250.00").deal
    crm.deal_move_stage(organization=organization, deal=deal, stage=f.won_stage(organization))
    jobs.revenue_sync_run()
    entry = RevenueEntry.objects.get(deal=deal)
    assert entry.decision_ids == [d.pk for d in touching]
    result = services.revenue_for_decisions(
        organization=organization, decision_ids=[d.pk for d in touching]
    )
    assert all(r["booked"] == {"USD": Decimal("250.00")} for r in result.values())


def test_decision_outcomes_report(organization, make_staff_client):
    who = df.contact(organization)
    decision = df.decide(organization, who, trigger="lead.created", event_id="o1")
    lead = crm.lead_create(organization=organization, contact=who)
    deal = crm.lead_convert(organization=organization, lead=lead, amount="99.00").deal
    crm.deal_move_stage(organization=organization, deal=deal, stage=f.won_stage(organization))
    f.inbound(who, "Thanks, see you then")
    decision_outcomes_link(since=timezone.now() - timedelta(hours=1))
    jobs.revenue_sync_run()
    report = selectors.decision_outcomes(
        organization=organization, since=timezone.now() - timedelta(days=1)
    )
    assert report.decisions == 1
    assert report.outcomes == {"reply_received": 1, "deal_won": 1}
    assert report.revenue["booked"] == {"USD": Decimal("99.00")}
    assert RevenueEntry.objects.get().decision_ids == [decision.pk]
    page = make_staff_client(organization, role="user").get("/admin/revenue/activity/")
    assert page.status_code == 200
    assert "1 decision in the period" in page.content.decode()
