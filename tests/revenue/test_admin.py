"""Revenue in the operator console: invoices (scoping, print, payments, actions), price rules,
sequences, settings, plans and subscriptions (superusers), the run log."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.bookings.models import AppointmentType
from apps.events.models import Event
from apps.revenue.models import (
    DuplicateSuggestion,
    Invoice,
    InvoiceStatus,
    JobRun,
    Plan,
    PriceRule,
    Sequence,
    SequenceStep,
)
from tests.revenue import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(organization, make_staff_client):
    return make_staff_client(organization, role="operator")


@pytest.fixture
def root(db):
    user = get_user_model().objects.create_superuser(email="root@example.com", password="x")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def invoices(organization, other_organization, contact):
    mine = f.sent_invoice(
        organization,
        contact=contact,
        lines=[
            {"description": "Unlimited membership", "unit_price": "149.00", "tax_rate": "8.25"},
            {"description": "Towel service", "quantity": "2", "unit_price": "5.00"},
        ],
        notes="Thank you!",
    )
    theirs = f.invoice(other_organization, bill_to_name="Their Customer")
    return mine, theirs


def test_invoice_changelist_is_scoped(operator, invoices):
    mine, theirs = invoices
    body = operator.get("/admin/revenue/invoice/").content.decode()
    assert mine.number in body and "Maya Chen" in body and "Their Customer" not in body
    assert operator.get(f"/admin/revenue/invoice/{theirs.pk}/change/").status_code in (302, 404)
    assert operator.get("/admin/revenue/invoice/add/").status_code == 403


def test_printable_invoice(operator, invoices, organization):
    mine, theirs = invoices
    response = operator.get(f"/admin/revenue/invoices/{mine.pk}/print/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f"Invoice {mine.number}" in body and organization.name in body
    assert "Unlimited membership" in body and "Towel service" in body
    assert "171.29" in body  # 149 + 12.29 tax + 10
    assert "invoice-print.css" in body and 'media="print"' in body
    assert "window.print()" in body
    assert operator.get(f"/admin/revenue/invoices/{theirs.pk}/print/").status_code == 404


def test_record_a_payment_from_the_console(operator, invoices, organization):
    mine, _ = invoices
    url = f"/admin/revenue/invoice/{mine.pk}/payment/"
    page = operator.get(url)
    assert page.status_code == 200 and "171.29" in page.content.decode()
    too_much = operator.post(url, {"amount": "500", "method": "card"})
    assert too_much.status_code == 200 and "more than the balance due" in too_much.content.decode()
    done = operator.post(url, {"amount": "171.29", "method": "card", "reference": "pos-1"})
    assert done.status_code == 302
    mine.refresh_from_db()
    assert mine.status == InvoiceStatus.PAID
    assert Event.objects.filter(organization=organization, type="invoice.paid").count() == 1


def test_payment_form_of_another_organizations_invoice_is_404(operator, invoices):
    _, theirs = invoices
    assert operator.get(f"/admin/revenue/invoice/{theirs.pk}/payment/").status_code == 404


def test_send_and_void_actions_go_through_the_services(operator, organization, invoices):
    draft = f.invoice(organization)
    response = operator.post(
        "/admin/revenue/invoice/",
        {"action": "send_selected", "_selected_action": [str(draft.pk)]},
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.SENT
    operator.post(
        "/admin/revenue/invoice/",
        {"action": "void_selected", "_selected_action": [str(draft.pk)]},
    )
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.VOID and draft.void_reason.startswith("voided by")
    types = set(Event.objects.filter(organization=organization).values_list("type", flat=True))
    assert {"invoice.sent", "invoice.voided"} <= types


def test_user_role_cannot_change_invoices(organization, make_staff_client, invoices):
    mine, _ = invoices
    reader = make_staff_client(organization, role="user")
    assert reader.get("/admin/revenue/invoice/").status_code == 200
    assert reader.get(f"/admin/revenue/invoice/{mine.pk}/payment/").status_code == 403


def test_price_rule_form_refuses_another_organizations_appointment_type(
    organization, other_organization, make_staff_client
):
    admin_client = make_staff_client(organization, role="admin")
    foreign = AppointmentType.objects.create(
        organization=other_organization, name="Their type", slug="theirs"
    )
    mine = AppointmentType.objects.create(organization=organization, name="Consult", slug="c")
    data = {
        "organization": str(organization.pk),
        "name": "Consult",
        "product": "",
        "keywords": "",
        "min_price": "40",
        "max_price": "60",
        "currency": "USD",
        "action": "rewrite",
        "is_active": "on",
    }
    response = admin_client.post(
        "/admin/revenue/pricerule/add/", {**data, "appointment_type": str(foreign.pk)}
    )
    assert response.status_code == 200 and not PriceRule.objects.exists()
    bad_range = admin_client.post(
        "/admin/revenue/pricerule/add/",
        {**data, "appointment_type": str(mine.pk), "min_price": "70"},
    )
    assert "The maximum must be at least the minimum." in bad_range.content.decode()
    ok = admin_client.post(
        "/admin/revenue/pricerule/add/", {**data, "appointment_type": str(mine.pk)}
    )
    assert ok.status_code == 302
    assert PriceRule.objects.get().min_price == Decimal("40")


def test_sequence_with_steps_from_the_console(organization, make_staff_client):
    client = make_staff_client(organization, role="moderator")
    response = client.post(
        "/admin/revenue/sequence/add/",
        {
            "organization": str(organization.pk),
            "name": "Welcome",
            "kind": "outreach",
            "is_active": "on",
            "exit_on_booking": "on",
            "enroll_lead_statuses": "",
            "enroll_lead_sources": "instagram",
            "enroll_tags": "",
            "exit_lead_statuses": "converted",
            "steps-TOTAL_FORMS": "1",
            "steps-INITIAL_FORMS": "0",
            "steps-0-position": "1",
            "steps-0-delay_hours": "0",
            "steps-0-channel": "email",
            "steps-0-subject": "Hi",
            "steps-0-body": "Welcome {first_name}",
            "steps-0-template_purpose": "follow_up",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    sequence = Sequence.objects.get()
    step = SequenceStep.objects.get()
    assert sequence.enroll_lead_sources == ["instagram"]
    assert step.organization_id == organization.pk == sequence.organization_id
    operator = make_staff_client(organization, role="operator")
    assert operator.get("/admin/revenue/sequence/add/").status_code == 403


def test_settings_are_for_admins(organization, make_staff_client, operator):
    from apps.revenue.services import revenue_settings_for

    revenue_settings_for(organization=organization)
    admin_client = make_staff_client(organization, role="admin")
    assert admin_client.get("/admin/revenue/revenuesettings/").status_code == 200
    assert operator.get("/admin/revenue/revenuesettings/").status_code == 403


def test_dismiss_duplicate_suggestions(organization, operator):
    a, b = f.contact(organization), f.contact(organization)
    first, second = sorted([a, b], key=lambda c: c.pk)
    suggestion = DuplicateSuggestion.objects.create(
        organization=organization, contact=first, other=second, reason="same name", score=40
    )
    operator.post(
        "/admin/revenue/duplicatesuggestion/",
        {"action": "dismiss_selected", "_selected_action": [str(suggestion.pk)]},
    )
    suggestion.refresh_from_db()
    assert suggestion.status == "dismissed"


def test_plans_and_the_run_log_are_for_superusers(operator, root, organization):
    assert operator.get("/admin/revenue/plan/").status_code == 403
    assert operator.get("/admin/revenue/jobrun/").status_code == 403
    JobRun.objects.create(job="churn_guard", started_at="2025-01-01T00:00:00Z")
    assert root.get("/admin/revenue/jobrun/").status_code == 200
    plan = Plan.objects.get(key="free")
    page = root.get(f"/admin/revenue/plan/{plan.pk}/change/")
    assert page.status_code == 200


def test_a_plan_edited_in_the_admin_applies_at_once(root, organization):
    from apps.core.errors import LimitExceeded
    from apps.revenue.limits import plan_for

    plan = Plan.objects.get(key="free")
    assert plan_for(organization).max_contacts == 1000  # cached now
    data = {
        field: getattr(plan, field)
        for field in (
            "name", "description", "price", "currency", "billing_period", "max_operators",
            "max_channels", "max_decisions_per_month", "max_outbound_messages_per_day",
            "ai_credits_per_month", "sort_order",
        )
    }  # fmt: skip
    data = {k: ("" if v is None else v) for k, v in data.items()}
    response = root.post(
        f"/admin/revenue/plan/{plan.pk}/change/", {**data, "max_contacts": "0", "is_active": "on"}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    with pytest.raises(LimitExceeded):
        f.contact(organization)


def test_change_the_plan_from_the_subscription_admin(root, organization):
    from apps.revenue.services import subscription_ensure

    subscription = subscription_ensure(organization=organization)
    response = root.post(
        f"/admin/revenue/subscription/{organization.pk}/change/",
        {
            "plan": "growth",
            "reason": "sales call",
            "status": "active",
            "current_period_start": subscription.current_period_start.isoformat(),
            "current_period_end": subscription.current_period_end.isoformat(),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    organization.refresh_from_db()
    assert organization.plan == "growth"


def test_invoices_are_never_deleted(root, invoices):
    mine, _ = invoices
    assert root.get(f"/admin/revenue/invoice/{mine.pk}/delete/").status_code == 403
    assert Invoice.objects.filter(pk=mine.pk).exists()
