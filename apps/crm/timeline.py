"""One timeline per contact, assembled from providers.

A provider is `provider(contact, limit) -> iterable of TimelineEntry` returning at most
`limit` of its newest entries; `contact_timeline` merges them newest first. The CRM
registers notes, tasks, leads, deals with their stage changes, and bookings; other apps add
theirs from their `AppConfig.ready()` (e.g. conversations registers messages):

    from apps.crm.timeline import register_timeline_provider
    register_timeline_provider(message_entries)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.urls import NoReverseMatch, reverse
from django.utils import timezone


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # note, task, lead, deal, stage_change, booking, message...
    title: str
    detail: str = ""
    url: str = ""  # the admin page of the record, when there is one
    actor: str = ""


TimelineProvider = Callable[[object, int], Iterable[TimelineEntry]]
_providers: list[TimelineProvider] = []


def register_timeline_provider(provider: TimelineProvider) -> TimelineProvider:
    """Add a provider (idempotent: registering the same function twice keeps one)."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def timeline_providers() -> list[TimelineProvider]:
    return list(_providers)


def admin_url(obj) -> str:
    try:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""


def contact_timeline_entries(contact, *, limit: int = 100) -> list[TimelineEntry]:
    """The newest `limit` entries across every provider, newest first."""
    streams = [list(provider(contact, limit)) for provider in _providers]
    return heapq.nlargest(limit, (e for s in streams for e in s), key=lambda e: e.at)


# --- the CRM's own providers ----------------------------------------------------------------


def _user_label(user) -> str:
    return str(user) if user is not None else ""


def _local(moment: datetime, contact) -> str:
    """A time as the organization's staff read it (its time zone, named)."""
    tz = contact.organization.tz
    return f"{timezone.localtime(moment, tz):%Y-%m-%d %H:%M} {tz.key}"


@register_timeline_provider
def note_entries(contact, limit: int):
    from apps.crm.models import Note

    notes = (
        Note.objects.filter(organization_id=contact.organization_id, contact=contact)
        .select_related("author", "deal")
        .order_by("-created_at")[:limit]
    )
    for note in notes:
        about = f" (deal: {note.deal.title})" if note.deal_id else ""
        yield TimelineEntry(
            at=note.created_at,
            kind="note",
            title=f"Note{about}",
            detail=note.body,
            url=admin_url(note),
            actor=_user_label(note.author),
        )


@register_timeline_provider
def task_entries(contact, limit: int):
    from apps.crm.models import Task, TaskStatus

    tasks = (
        Task.objects.filter(organization_id=contact.organization_id, contact=contact)
        .select_related("assignee", "completed_by")
        .order_by("-created_at")[:limit]
    )
    for task in tasks:
        due = f"due {_local(task.due_at, contact)}" if task.due_at else "no due date"
        yield TimelineEntry(
            at=task.created_at,
            kind="task",
            title=f"Task: {task.title}",
            detail=f"{task.get_status_display()} · {due}"
            + (f" · assigned to {task.assignee}" if task.assignee_id else ""),
            url=admin_url(task),
        )
        if task.status == TaskStatus.DONE and task.completed_at:
            yield TimelineEntry(
                at=task.completed_at,
                kind="task",
                title=f"Task done: {task.title}",
                url=admin_url(task),
                actor=_user_label(task.completed_by),
            )


@register_timeline_provider
def lead_entries(contact, limit: int):
    from apps.crm.models import Lead

    leads = Lead.objects.filter(organization_id=contact.organization_id, contact=contact).order_by(
        "-created_at"
    )[:limit]
    for lead in leads:
        source = f" from {lead.source}" if lead.source else ""
        yield TimelineEntry(
            at=lead.created_at,
            kind="lead",
            title=f"Lead{source}",
            detail=f"{lead.get_status_display()} · score {lead.score}",
            url=admin_url(lead),
        )
        if lead.qualified_at:
            yield TimelineEntry(
                at=lead.qualified_at,
                kind="lead",
                title="Lead qualified",
                detail=f"score {lead.score}",
                url=admin_url(lead),
            )
        if lead.converted_at:
            yield TimelineEntry(
                at=lead.converted_at, kind="lead", title="Lead converted", url=admin_url(lead)
            )


@register_timeline_provider
def deal_entries(contact, limit: int):
    from apps.crm.models import DealStageChange

    changes = (
        DealStageChange.objects.filter(
            organization_id=contact.organization_id, deal__contact=contact
        )
        .select_related("deal", "from_stage", "to_stage", "changed_by")
        .order_by("-created_at")[:limit]
    )
    for change in changes:
        deal = change.deal
        amount = f" · {deal.amount} {deal.currency}" if deal.amount is not None else ""
        if change.from_stage_id is None:
            title, kind = f"Deal opened: {deal.title}", "deal"
            detail = f"in {change.to_stage.name}{amount}"
        else:
            title, kind = f"Deal moved: {deal.title}", "stage_change"
            detail = f"{change.from_stage.name} → {change.to_stage.name}{amount}"
        yield TimelineEntry(
            at=change.created_at,
            kind=kind,
            title=title,
            detail=detail,
            url=admin_url(deal),
            actor=_user_label(change.changed_by) or change.actor,
        )


@register_timeline_provider
def booking_entries(contact, limit: int):
    from apps.bookings.models import Booking

    bookings = (
        Booking.objects.filter(organization_id=contact.organization_id, contact=contact)
        .select_related("appointment_type", "resource")
        .order_by("-created_at")[:limit]
    )
    for booking in bookings:
        yield TimelineEntry(
            at=booking.created_at,
            kind="booking",
            title=f"Booking: {booking.appointment_type.name}",
            detail=f"{booking.get_status_display()} · {_local(booking.start, contact)}"
            f" with {booking.resource.name}",
            url=admin_url(booking),
        )
