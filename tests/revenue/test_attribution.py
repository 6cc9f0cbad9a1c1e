"""Revenue recorded against deals (won deals: booked; paid invoices: collected), attributed
to source channel, campaign and decisions; reports by month and by source."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.crm import services as crm
from apps.revenue import jobs, selectors, services
from apps.revenue.models import RevenueEntry, RevenueKind
from tests.revenue import factories as f

pytestmark = pytest.mark.django_db


def win(organization, deal):
    return crm.deal_move_stage(
        organization=organization, deal=deal, stage=f.won_stage(organization)
    )


@pytest.fixture
def converted(organization):
    contact = f.contact(organization, name="Jordan Alvarez", source="sms")
    lead = crm.lead_create(
        organization=organization, contact=contact, source="instagram", campaign="spring-promo"
    )
    deal = crm.lead_convert(
        organization=organization, lead=lead, title="3-month plan", amount="399.00"
    ).deal
    return contact, lead, deal


def test_a_won_deal_is_booked_revenue_attributed_to_its_lead(organization, converted):
    contact, _, deal = converted
    win(organization, deal)
    run = jobs.revenue_sync_run()
    assert (run.processed, run.created) == (1, 1)
    entry = RevenueEntry.objects.get()
    assert entry.kind == RevenueKind.DEAL_WON and entry.deal_id == deal.pk
    assert entry.amount == Decimal("399.00") and entry.currency == "USD"
    assert (entry.source, entry.campaign) == ("instagram", "spring-promo")
    assert entry.contact_id == contact.pk and entry.decision_ids == []
    assert jobs.revenue_sync_run().created == 0  # idempotent
    assert RevenueEntry.objects.count() == 1


def test_booked_revenue_follows_the_deal(organization, converted):
    _, _, deal = converted
    win(organization, deal)
    jobs.revenue_sync_run()
    crm.deal_update(organization=organization, deal=deal, data={"amount": "450.00"})
    run = jobs.revenue_sync_run()
    assert run.details["updated"] == 1
    assert RevenueEntry.objects.get().amount == Decimal("450.00")
    crm.deal_move_stage(organization=organization, deal=deal, stage=f.stage(organization, "Lost"))
    assert jobs.revenue_sync_run().details["removed"] == 1
    assert not RevenueEntry.objects.exists()


def test_won_deals_without_an_amount_are_not_revenue(organization):
    deal = f.deal(organization, contact=f.contact(organization))
    win(organization, deal)
    assert jobs.revenue_sync_run().created == 0


def test_source_falls_back_to_the_deal_then_the_contact(organization):
    contact = f.contact(organization, source="whatsapp")
    with_source = f.deal(organization, contact=contact, amount="10", source="referral")
    without = f.deal(organization, contact=f.contact(organization, source="email"), amount="5")
    win(organization, with_source)
    win(organization, without)
    jobs.revenue_sync_run()
    sources = dict(RevenueEntry.objects.values_list("deal_id", "source"))
    assert sources == {with_source.pk: "referral", without.pk: "email"}


def test_a_paid_invoice_is_collected_revenue_attributed_to_the_contacts_lead(
    organization, converted
):
    contact, _, _ = converted
    invoice = f.sent_invoice(
        organization, contact=contact, lines=[{"description": "Plan", "unit_price": "399.00"}]
    )
    services.payment_record(organization=organization, invoice=invoice, amount="399.00")
    entry = RevenueEntry.objects.get(kind=RevenueKind.INVOICE_PAID)
    assert entry.invoice_id == invoice.pk and entry.amount == Decimal("399.00")
    assert (entry.source, entry.campaign) == ("instagram", "spring-promo")
    assert services.revenue_record_paid_invoice(organization=organization, invoice=invoice) == entry


def test_revenue_attributed_to_decisions(organization, other_organization):
    decision_a, decision_b = uuid.uuid4(), uuid.uuid4()
    now = timezone.now()
    for kind, amount, currency, decisions in (
        (RevenueKind.DEAL_WON, "100.00", "USD", [decision_a]),
        (RevenueKind.DEAL_WON, "50.00", "USD", [decision_a, decision_b]),
        (RevenueKind.INVOICE_PAID, "30.00", "EUR", [decision_b]),
        (RevenueKind.DEAL_WON, "999.00", "USD", []),
    ):
        RevenueEntry.objects.create(
            organization=organization, kind=kind, amount=Decimal(amount), currency=currency,
            recognized_at=now, decision_ids=decisions,
        )  # fmt: skip
    RevenueEntry.objects.create(
        organization=other_organization, kind=RevenueKind.DEAL_WON, amount=Decimal("7"),
        currency="USD", recognized_at=now, decision_ids=[decision_a],
    )  # fmt: skip
    unknown = uuid.uuid4()
    result = services.revenue_for_decisions(
        organization=organization, decision_ids=[decision_a, decision_b, unknown]
    )
    assert result[str(decision_a)] == {"booked": {"USD": Decimal("150.00")}, "collected": {}}
    assert result[str(decision_b)] == {
        "booked": {"USD": Decimal("50.00")},
        "collected": {"EUR": Decimal("30.00")},
    }
    assert result[str(unknown)] == {"booked": {}, "collected": {}}
    assert services.revenue_for_decisions(organization=organization, decision_ids=[]) == {}


def _entry(organization, kind, amount, at, currency="USD", source="sms"):
    return RevenueEntry.objects.create(
        organization=organization, kind=kind, amount=Decimal(amount), currency=currency,
        recognized_at=at, source=source,
    )  # fmt: skip


def test_report_by_month_uses_the_organizations_time_zone(organization):
    tz = organization.tz  # America/New_York
    now = datetime(2025, 3, 15, 12, tzinfo=tz)
    # 02:00 UTC on March 1st is still February in New York
    _entry(organization, RevenueKind.DEAL_WON, "100", datetime(2025, 3, 1, 2, tzinfo=UTC))
    _entry(organization, RevenueKind.DEAL_WON, "50", datetime(2025, 3, 2, tzinfo=tz))
    _entry(organization, RevenueKind.INVOICE_PAID, "20", datetime(2025, 3, 3, tzinfo=tz))
    _entry(organization, RevenueKind.INVOICE_PAID, "9", datetime(2025, 3, 3, tzinfo=tz), "EUR")
    _entry(organization, RevenueKind.DEAL_WON, "1", datetime(2024, 1, 1, tzinfo=tz))  # too old
    months = selectors.revenue_by_month(organization=organization, months=3, now=now)
    assert [m.month.isoformat() for m in months] == ["2025-01-01", "2025-02-01", "2025-03-01"]
    assert months[0].booked == {} and months[1].booked == {"USD": Decimal("100.00")}
    assert months[2].booked == {"USD": Decimal("50.00")}
    assert months[2].collected == {"USD": Decimal("20.00"), "EUR": Decimal("9.00")}


def test_report_by_source(organization):
    now = timezone.now()
    _entry(organization, RevenueKind.DEAL_WON, "300", now, source="instagram")
    _entry(organization, RevenueKind.DEAL_WON, "100", now, source="instagram")
    _entry(organization, RevenueKind.INVOICE_PAID, "100", now, source="instagram")
    _entry(organization, RevenueKind.DEAL_WON, "50", now, source="referral")
    _entry(organization, RevenueKind.DEAL_WON, "5000", now - timedelta(days=400), source="old")
    rows = selectors.revenue_by_source(organization=organization, since=now - timedelta(days=30))
    assert [(r.source, r.deals) for r in rows] == [("instagram", 2), ("referral", 1)]
    assert rows[0].booked == {"USD": Decimal("400.00")}
    assert rows[0].collected == {"USD": Decimal("100.00")}


def test_revenue_report_api(api, other_api, organization, converted):
    _, _, deal = converted
    win(organization, deal)
    jobs.revenue_sync_run()
    body = api.get("/api/v1/revenue/?months=2").json()
    assert body["currency"] == "USD" and len(body["by_month"]) == 2
    assert body["by_month"][-1]["booked"] == {"USD": "399.00"}
    assert body["by_source"] == [
        {"source": "instagram", "deals": 1, "booked": {"USD": "399.00"}, "collected": {}}
    ]
    assert other_api.get("/api/v1/revenue/").json()["by_source"] == []
    assert api.get("/api/v1/revenue/?months=0").status_code == 400


def test_a_backlog_larger_than_the_batch_is_worked_through(organization, monkeypatch):
    deals = []
    for n in range(5):
        deal = f.deal(organization, contact=f.contact(organization), amount=f"{10 + n}")
        deals.append(win(organization, deal))
    first = services.revenue_sync_won_deals(limit=2)
    assert first.created == 2 and first.resume_after is not None
    rest = services.revenue_sync_won_deals(after=first.resume_after, limit=10)
    assert rest.resume_after is None and RevenueEntry.objects.count() == 5
    assert rest.processed == 3  # strictly after: nothing looked at twice

    RevenueEntry.objects.all().delete()
    monkeypatch.setattr(jobs, "SYNC_BATCH", 2)  # the job resumes where the last run stopped
    created = [jobs.revenue_sync_run().created for _ in range(4)]
    assert created == [2, 2, 1, 0] and RevenueEntry.objects.count() == 5
