"""The revenue console pages: what they show, tenant scoping, and query counts that do not
grow with the data."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.conversations.services import message_send
from apps.crm import services as crm
from apps.events.models import Delivery, DeliveryAttempt
from apps.events.services import emit
from apps.revenue import jobs
from tests.events.factories import endpoint_for
from tests.revenue import factories as f

pytestmark = pytest.mark.django_db
REVENUE, ACTIVITY, USAGE = (
    "/admin/revenue/dashboard/",
    "/admin/revenue/activity/",
    "/admin/revenue/usage/",
)


def fill(organization, n: int, *, prefix: str = "mine"):
    """`n` of everything the dashboards aggregate: leads, deals (some won), bookings,
    messages, paid invoices, webhook attempts."""
    for i in range(n):
        contact = f.contact(organization, name=f"{prefix}-contact-{i}", phone=f"+1415555{i:04d}")
        lead = crm.lead_create(
            organization=organization, contact=contact, source=f"{prefix}-source-{i % 3}"
        )
        deal = crm.lead_convert(
            organization=organization, lead=lead, title=f"{prefix}-deal-{i}", amount=f"{100 + i}"
        ).deal
        if i % 2:
            crm.deal_move_stage(
                organization=organization, deal=deal, stage=f.won_stage(organization)
            )
        f.booking(contact)
        f.inbound(contact, f"hello {i}")
        message_send(organization=organization, contact=contact, text="hi", channel="sms")
        invoice = f.sent_invoice(organization, contact=contact)
        f.services.payment_record(organization=organization, invoice=invoice, amount="100")
    endpoint = endpoint_for(organization, "http://127.0.0.1:9/hook")
    with transaction.atomic():
        event = emit(
            organization=organization, type="task.created", subject_type="task",
            subject_id="x", data={"task_id": "00000000-0000-0000-0000-000000000000",
                                  "title": "t", "status": "open"},
        )  # fmt: skip
    delivery = Delivery.objects.create(organization=organization, event=event, endpoint=endpoint)
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(
            organization=organization, delivery=delivery, endpoint=endpoint, attempt_number=k + 1,
            created_at=timezone.now() - timedelta(hours=k), succeeded=k % 4 != 0,
        )
        for k in range(n * 2)
    )  # fmt: skip
    jobs.revenue_sync_run()


@pytest.fixture
def world(organization, other_organization, make_staff_client):
    from tests.providers.factories import twilio_channel

    twilio_channel(organization)
    twilio_channel(other_organization)
    fill(organization, 4)
    fill(other_organization, 2, prefix="theirs")
    return {
        "operator": make_staff_client(organization, role="operator"),
        "admin": make_staff_client(organization, role="admin"),
    }


def test_revenue_dashboard_shows_my_organization(world, organization):
    response = world["operator"].get(REVENUE)
    assert response.status_code == 200
    body = response.content.decode()
    for section in (
        'id="pipeline"',
        'id="revenue-by-month"',
        'id="revenue-by-source"',
        'id="funnel"',
    ):
        assert section in body
    assert body.count('role="img"') == 4  # the four charts
    assert "mine-source-0" in body and "theirs-source" not in body
    funnel = response.context["funnel"]
    assert (funnel.leads, funnel.qualified, funnel.booked, funnel.won) == (4, 4, 4, 2)
    won = next(s for s in response.context["stages"] if s.is_won)
    assert won.count == 2 and won.amount == Decimal("204.00")  # 101 + 103
    this_month = response.context["months"][-1]
    assert this_month.booked == {"USD": Decimal("204.00")}
    assert this_month.collected == {"USD": Decimal("400.00")}


def test_activity_dashboard(world, organization):
    response = world["operator"].get(ACTIVITY, {"days": 7})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="message-volume"' in body and 'id="webhook-delivery"' in body
    assert dict(response.context["channel_totals"]) == {"sms": {"in": 4, "out": 4}}
    assert (response.context["attempts"], response.context["succeeded"]) == (8, 6)
    assert response.context["success_rate"] == "75.0%"


@pytest.mark.parametrize("url", [REVENUE, ACTIVITY])
def test_another_organization_is_404_and_garbage_too(world, other_organization, url):
    assert (
        world["operator"].get(url, {"organization": str(other_organization.pk)}).status_code == 404
    )
    assert world["operator"].get(url, {"organization": "nope"}).status_code == 404


@pytest.mark.parametrize("url", [REVENUE, ACTIVITY, USAGE])
def test_staff_without_a_membership_are_refused(db, url):
    user = get_user_model().objects.create_user(email="x@example.com", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(url).status_code == 403


def test_superusers_pick_any_organization(world, other_organization):
    root = get_user_model().objects.create_superuser(email="root@example.com", password="x")
    client = Client()
    client.force_login(root)
    response = client.get(REVENUE, {"organization": str(other_organization.pk)})
    assert response.status_code == 200
    assert "theirs-source-0" in response.content.decode()


# Admin chrome (session, user, sidebar permissions, organization list) is 9 queries; the
# rest is the page's aggregates: revenue 8 (pipeline, stages, deal totals, revenue by month,
# by source, funnel x3), activity 7 (messages, attempts, dead letters, decisions, outcomes, by
# engine, attributed revenue), usage 3 (one COUNT per total; counters are in Redis).
@pytest.mark.parametrize(("url", "expected"), [(REVENUE, 17), (ACTIVITY, 16), (USAGE, 12)])
def test_query_count_does_not_grow_with_the_data(organization, make_staff_client, url, expected):
    from tests.providers.factories import twilio_channel

    twilio_channel(organization)
    client = make_staff_client(organization, role="admin")
    fill(organization, 1)
    client.get(url)  # warm the session and caches
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    fill(organization, 6, prefix="more")
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small) == expected, [q["sql"][:80] for q in large.captured_queries]


def test_usage_page_is_for_the_organizations_admins(world, organization, make_staff_client):
    from apps.revenue import limits

    f.set_limit(organization, "max_contacts", 5)
    # the sends' usage is counted after commit, which a test transaction never reaches:
    # drop the counter so it is seeded from the messages table, as after a Redis restart
    label = limits.period_bounds(organization, "day")[0]
    limits._redis().delete(limits._counter_key(organization, "outbound_messages_per_day", label))
    response = world["admin"].get(USAGE)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-limit="contacts"' in body and "4 / 5" in body
    assert 'class="rv-usage high"' in body  # 80 % used
    rows = {row.limit: row for row in response.context["rows"]}
    assert rows["outbound_messages_per_day"].usage == 4
    assert world["operator"].get(USAGE).status_code == 403


def test_pages_are_in_the_console_navigation(world):
    response = world["operator"].get(REVENUE)
    nav = [p.name for p in response.context["switchboard_pages"]]
    assert {"revenue_dashboard", "revenue_activity", "revenue_usage"} <= set(nav)
    assert "revenue_invoice_print" not in nav
