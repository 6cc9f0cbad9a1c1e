"""Console pages of revenue: the dashboards, plan usage, and the printable invoice.

Registered with `admin.site.register_page` (staff login required). Every page works on one
organization the staff member belongs to (`?organization=`; another organization's id is a
404) and reads only aggregates: the number of queries does not depend on the data size.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.revenue import charts, limits, selectors
from apps.revenue.money import format_money
from apps.tenancy.roles import MANAGERS

PERIODS = (7, 30, 90, 365)


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _organizations(request, roles=None) -> list:
    """The organizations the user may open here (all for superusers), by name."""
    from apps.tenancy.models import Organization
    from apps.tenancy.selectors import user_organization_ids

    organizations = Organization.objects.select_related("primary_niche").order_by("name")
    if request.user.is_superuser:
        return list(organizations)
    kwargs = {"roles": roles} if roles is not None else {}
    return list(organizations.filter(pk__in=user_organization_ids(user=request.user, **kwargs)))


def _pick(request, organizations: list):
    if not organizations:
        raise PermissionDenied
    wanted = request.GET.get("organization")
    if not wanted:
        return organizations[0]
    picked = next((o for o in organizations if o.pk == _uuid(wanted)), None)
    if picked is None:
        raise Http404("No such organization.")
    return picked


def _days(request) -> int:
    try:
        days = int(request.GET.get("days", 30))
    except ValueError:
        days = 30
    return days if days in PERIODS else 30


def _context(request, organization, organizations, title: str, **extra) -> dict:
    return {
        **admin.site.each_context(request),
        "title": title,
        "organization": organization,
        "organizations": organizations,
        "periods": PERIODS,
        **extra,
    }


def revenue_dashboard(request):
    """Pipeline by stage and value, revenue by month and by source, the conversion funnel."""
    organizations = _organizations(request)
    organization = _pick(request, organizations)
    days = _days(request)
    now = timezone.now()
    since = now - timedelta(days=days)
    currency = organization.currency

    stages = selectors.pipeline_by_stage(organization=organization)
    pipeline_svg = charts.bar_chart(
        [
            (
                s.name,
                s.amount,
                f"{format_money(s.amount, currency)} · {s.count} deal{'s' if s.count != 1 else ''}",
            )
            for s in stages
        ],
        label="Pipeline value by stage",
    )
    months = selectors.revenue_by_month(organization=organization, months=12, now=now)
    revenue_svg = charts.stacked_columns(
        [m.month.strftime("%b %y") for m in months],
        [
            ("Booked (won deals)", [m.booked.get(currency, 0) for m in months]),
            ("Collected (paid invoices)", [m.collected.get(currency, 0) for m in months]),
        ],
        label=f"Revenue by month ({currency})",
    )
    sources = selectors.revenue_by_source(organization=organization, since=since)
    source_svg = charts.bar_chart(
        [
            (
                s.source or "unknown",
                s.booked.get(currency, 0) + s.collected.get(currency, 0),
                f"{format_money(s.booked.get(currency, 0), currency)} booked · "
                f"{format_money(s.collected.get(currency, 0), currency)} collected",
            )
            for s in sources
        ],
        label="Revenue by source",
        color=charts.PALETTE[1],
    )
    funnel = selectors.conversion_funnel(organization=organization, since=since)
    funnel_svg = charts.funnel(funnel.steps(), label="Conversion funnel")
    other_currencies = sorted(
        {c for m in months for c in (*m.booked, *m.collected) if c != currency}
        | {c for s in stages for c in s.other}
    )
    return TemplateResponse(
        request,
        "admin/revenue/dashboard.html",
        _context(
            request,
            organization,
            organizations,
            "Revenue",
            days=days,
            currency=currency,
            stages=stages,
            months=months,
            sources=sources,
            funnel=funnel,
            pipeline_svg=pipeline_svg,
            revenue_svg=revenue_svg,
            source_svg=source_svg,
            funnel_svg=funnel_svg,
            other_currencies=other_currencies,
            page_name="revenue_dashboard",
        ),
    )


def activity_dashboard(request):
    """Decision outcomes, message volume by channel, webhook delivery success."""
    organizations = _organizations(request)
    organization = _pick(request, organizations)
    days = _days(request)
    now = timezone.now()
    since = now - timedelta(days=days)

    volume_days, channel_totals = selectors.message_volume(
        organization=organization, since=since, now=now
    )
    channels = sorted(channel_totals)
    volume_svg = charts.stacked_columns(
        [d.day.strftime("%m-%d") for d in volume_days],
        [
            (channel, [sum(d.by_channel.get(channel, {}).values()) for d in volume_days])
            for channel in channels
        ],
        label="Messages per day by channel",
    )
    delivery_days, dead = selectors.webhook_delivery_success(
        organization=organization, since=since, now=now
    )
    attempts = sum(d.attempts for d in delivery_days)
    succeeded = sum(d.succeeded for d in delivery_days)
    delivery_svg = charts.stacked_columns(
        [d.day.strftime("%m-%d") for d in delivery_days],
        [
            ("succeeded", [d.succeeded for d in delivery_days]),
            ("failed", [d.attempts - d.succeeded for d in delivery_days]),
        ],
        label="Webhook delivery attempts per day",
    )
    outcomes = selectors.decision_outcomes(organization=organization, since=since)
    outcomes_svg = charts.funnel(
        [
            ("Decisions", outcomes.decisions),
            ("Reply", outcomes.outcomes.get("reply_received", 0)),
            ("Booking", outcomes.outcomes.get("booking_made", 0)),
            ("Deal won", outcomes.outcomes.get("deal_won", 0)),
        ],
        label="Decision outcomes",
    )
    return TemplateResponse(
        request,
        "admin/revenue/activity.html",
        _context(
            request,
            organization,
            organizations,
            "Activity",
            days=days,
            channel_totals=[(c, channel_totals[c]) for c in channels],
            volume_svg=volume_svg,
            delivery_svg=delivery_svg,
            attempts=attempts,
            succeeded=succeeded,
            success_rate=f"{succeeded / attempts:.1%}" if attempts else None,
            dead=dead,
            outcomes=outcomes,
            outcomes_svg=outcomes_svg,
            page_name="revenue_activity",
        ),
    )


def usage_page(request):
    """The plan and its limits with usage bars, for the organization's admins."""
    organizations = _organizations(request, roles=MANAGERS)
    organization = _pick(request, organizations)
    plan = limits.plan_for(organization)
    rows = limits.usage_summary(organization=organization)
    return TemplateResponse(
        request,
        "admin/revenue/usage.html",
        _context(
            request,
            organization,
            organizations,
            "Plan and usage",
            plan=plan,
            rows=rows,
            page_name="revenue_usage",
        ),
    )


def invoice_print(request, pk):
    """The invoice as a printable page (browser print → PDF)."""
    from apps.revenue.models import Invoice

    organizations = _organizations(request)
    found = (
        Invoice.objects.filter(pk=pk, organization__in=organizations)
        .values_list("organization_id", flat=True)
        .first()
    )
    if found is None:
        raise Http404("No such invoice.")
    organization = next(o for o in organizations if o.pk == found)
    invoice = selectors.invoice_get(organization=organization, invoice_id=pk)
    return TemplateResponse(
        request,
        "admin/revenue/invoice_print.html",
        {
            **admin.site.each_context(request),
            "title": f"Invoice {invoice.number}",
            "invoice": invoice,
            "organization": organization,
            "lines": list(invoice.lines.all()),
            "payments": list(invoice.payments.all()),
        },
    )
