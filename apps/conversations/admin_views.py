"""The operator inbox: the conversation list, the conversation page, its actions and polling.

Registered with `admin.site.register_page` (login + staff required, CSRF-protected). Every
view is scoped: a conversation of an organization the user is not a member of is a 404,
whatever the URL; actions need a working role (admin, moderator, operator) in the
conversation's organization. Every write goes through `apps.conversations.services`; a
refused action (opted out, WhatsApp window closed, bad input) comes back as a message on
the page, never a 500.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Subquery
from django.http import (
    Http404,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.conversations import selectors, services
from apps.conversations.models import (
    ActivityKind,
    Conversation,
    ConversationActivity,
    ConversationStatus,
    Direction,
    Message,
)
from apps.core.choices import Channel
from apps.core.errors import DomainError
from apps.tenancy.models import Membership, Organization
from apps.tenancy.roles import WORKERS
from apps.tenancy.selectors import user_organization_ids, user_role_in

logger = logging.getLogger(__name__)

PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 200
POLL_OVERLAP = timedelta(seconds=5)  # a row committed just after the last poll's "now"
CHANNEL_ICONS = {  # short labels styled as icons (inbox.css), readable without emoji fonts
    Channel.WHATSAPP: "WA",
    Channel.SMS: "SMS",
    Channel.EMAIL: "@",
    Channel.MANYCHAT: "MC",
    Channel.API: "API",
}
ACTIONS = (
    "reply",
    "note",
    "assign",
    "status",
    "snooze",
    "mark_unread",
    "take_over",
    "hand_back",
    "escalate",
)


# --- access ---------------------------------------------------------------------------------


def _organizations(user) -> list[Organization]:
    organizations = Organization.objects.select_related("primary_niche").order_by("name")
    if not user.is_superuser:
        organizations = organizations.filter(pk__in=user_organization_ids(user=user))
    return list(organizations)


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _conversation_or_404(request, pk) -> Conversation:
    conversation = selectors.conversation_for_user(
        user=request.user,
        conversation_id=pk,
        organization_ids=None
        if request.user.is_superuser
        else user_organization_ids(user=request.user),
    )
    if conversation is None:
        raise Http404("No such conversation.")
    conversation.contact.organization = conversation.organization
    return conversation


def _can_work(user, organization_id) -> bool:
    return user.is_superuser or user_role_in(user=user, organization_id=organization_id) in WORKERS


def _page_url(conversation) -> str:
    return reverse("admin:inbox_conversation", args=[conversation.pk])


# --- labels and small helpers ---------------------------------------------------------------


@dataclass
class Member:
    user_id: object
    label: str
    role: str
    available: bool
    open: int
    capacity: int


def _workers(organization) -> list[Member]:
    """The organization's members who can work conversations, with their open load. One query."""
    open_count = (
        Conversation.objects.filter(
            organization=OuterRef("organization"),
            assignee=OuterRef("user"),
            status__in=(ConversationStatus.OPEN, ConversationStatus.PENDING),
        )
        .values("organization")
        .annotate(n=Count("id"))
        .values("n")
    )
    rows = (
        Membership.objects.filter(organization=organization, role__in=WORKERS, user__is_active=True)
        .select_related("user")
        .annotate(open=Subquery(open_count))
        .order_by("user__full_name", "user__email")
    )
    return [
        Member(
            user_id=m.user_id,
            label=str(m.user),
            role=m.role,
            available=m.is_available,
            open=m.open or 0,
            capacity=m.max_open_conversations,
        )
        for m in rows
    ]


def _user_label(members: dict, value: str, fallback: str = "someone") -> str:
    if not value:
        return "nobody"
    member = members.get(value)
    return member.label if member else fallback


def _activity_text(activity: ConversationActivity, members: dict) -> str:
    kind = activity.kind
    if kind == ActivityKind.ASSIGNED:
        text = f"Assigned to {_user_label(members, activity.to_value, 'a former member')}"
    elif kind == ActivityKind.UNASSIGNED:
        text = "Unassigned"
    elif kind in (ActivityKind.STATUS_CHANGED, ActivityKind.SNOOZED):
        text = f"Status {activity.from_value} → {activity.to_value}"
    elif kind == ActivityKind.ESCALATED:
        who = _user_label(members, activity.to_value, "a former member")
        text = "Escalated" + (f" to {who}" if activity.to_value else "")
    elif kind == ActivityKind.SLA_BREACHED:
        text = "Response time exceeded"
    elif kind == ActivityKind.PRIORITY_CHANGED:
        text = f"Priority {activity.from_value} → {activity.to_value}"
    else:
        text = activity.get_kind_display()
    return text


def _actor_label(activity: ConversationActivity) -> str:
    if activity.actor_id:
        return str(activity.actor)
    return activity.get_actor_kind_display()


def _waiting(conversation: Conversation, now: datetime, settings_row) -> dict | None:
    """How long the contact has been waiting, and whether it is over the limit."""
    if conversation.waiting_since is None:
        return None
    minutes = int((now - conversation.waiting_since).total_seconds() // 60)
    limit = (
        settings_row.first_response_minutes
        if conversation.first_response_at is None
        else settings_row.next_response_minutes
    )
    if minutes < 60:
        label = f"{max(minutes, 0)} min"
    elif minutes < 48 * 60:
        label = f"{minutes // 60} h {minutes % 60:02d}"
    else:
        label = f"{minutes // (24 * 60)} d"
    return {"label": label, "overdue": limit is not None and minutes >= limit}


# --- the list -------------------------------------------------------------------------------


class BadFilter(ValueError):
    pass


def _filters_from(request) -> tuple[selectors.InboxFilters, int, str | None]:
    query = request.GET
    tab = query.get("tab") or "all"
    if tab not in selectors.INBOX_TABS:
        raise BadFilter(f"Unknown tab {tab!r} (one of {', '.join(selectors.INBOX_TABS)}).")
    status = query.get("status", ConversationStatus.OPEN)
    if status not in ("", *ConversationStatus.values):
        raise BadFilter(
            f"Unknown status {status!r} (one of {', '.join(ConversationStatus.values)}, or empty)."
        )
    channel = query.get("channel", "")
    if channel and channel not in Channel.values:
        raise BadFilter(f"Unknown channel {channel!r} (one of {', '.join(Channel.values)}).")
    tag = query.get("tag", "").strip()
    if len(tag) > 50:
        raise BadFilter("A tag has at most 50 characters.")
    try:
        per_page = int(query.get("per_page") or PER_PAGE_DEFAULT)
    except ValueError:
        raise BadFilter("per_page must be a number.") from None
    if not 1 <= per_page <= PER_PAGE_MAX:
        raise BadFilter(f"per_page must be between 1 and {PER_PAGE_MAX}.")
    cursor = query.get("after") or None
    if cursor and selectors.inbox_cursor_decode(cursor) is None:
        raise BadFilter("The page link is not valid; start again from the first page.")
    unread = query.get("unread") in ("1", "true", "on")
    return (
        selectors.InboxFilters(tab=tab, status=status, channel=channel, tag=tag, unread=unread),
        per_page,
        cursor,
    )


def _bad_request(request, message: str):
    context = {**admin.site.each_context(request), "title": "Inbox", "error": message}
    return TemplateResponse(request, "admin/conversations/bad_request.html", context, status=400)


def inbox(request):
    """The conversation list: tabs mine / unassigned / all, filters, newest activity first."""
    organizations = _organizations(request.user)
    if not organizations:
        raise PermissionDenied
    organization = organizations[0]
    if request.GET.get("organization"):
        wanted = _uuid(request.GET["organization"])
        organization = next((o for o in organizations if o.pk == wanted), None)
        if organization is None:
            raise Http404("No such organization.")
    try:
        filters, per_page, cursor = _filters_from(request)
    except BadFilter as exc:
        return _bad_request(request, str(exc))
    page = selectors.inbox_page(
        organization=organization,
        user=request.user,
        filters=filters,
        cursor=cursor,
        per_page=per_page,
    )
    settings_row = services.inbox_settings_get(organization=organization)
    now = timezone.now()
    for row in page.rows:
        row.waiting = _waiting(row, now, settings_row)
        row.channel_icon = CHANNEL_ICONS.get(row.last_inbound_channel, "")
        row.url = _page_url(row)
    base = {
        "organization": organization.pk,
        "tab": filters.tab,
        "status": filters.status,
        "channel": filters.channel,
        "tag": filters.tag,
        "per_page": per_page,
    }
    if filters.unread:
        base["unread"] = "1"
    keep = {k: v for k, v in base.items() if v not in ("", None)}
    if filters.status == "":
        keep["status"] = ""

    def link(**changes) -> str:
        return "?" + urlencode({**keep, **changes})

    tags = sorted({tag for row in page.rows for tag in row.contact.tags})
    context = {
        **admin.site.each_context(request),
        "title": "Inbox",
        "organization": organization,
        "organizations": organizations,
        "filters": filters,
        "page": page,
        "tabs": [(t, t.title(), link(tab=t)) for t in selectors.INBOX_TABS],
        "statuses": ConversationStatus.choices,
        "channels": Channel.choices,
        "tags": tags,
        "next_url": link(after=page.next_cursor) if page.next_cursor else "",
        "first_url": link() if cursor else "",
        "per_page": per_page,
    }
    return TemplateResponse(request, "admin/conversations/inbox.html", context)


# --- the conversation page ------------------------------------------------------------------


@dataclass
class TimelineItem:
    at: datetime
    kind: str  # message, note, activity, crm
    obj: object
    html_id: str = ""


def _crm_entries(contact, *, limit: int, since: datetime | None):
    from apps.conversations.timeline import message_entries
    from apps.crm.timeline import timeline_providers

    entries = []
    for provider in timeline_providers():
        if provider is message_entries:
            continue  # the page shows the messages themselves
        entries.extend(e for e in provider(contact, limit) if since is None or e.at >= since)
    return entries


def _message_item(message: Message) -> TimelineItem:
    kind = "note" if message.is_internal_note else "message"
    return TimelineItem(at=message.created_at, kind=kind, obj=message, html_id=f"m-{message.pk}")


def _activity_item(activity: ConversationActivity, members: dict) -> TimelineItem:
    activity.text = _activity_text(activity, members)
    activity.actor_label = _actor_label(activity)
    return TimelineItem(
        at=activity.created_at, kind="activity", obj=activity, html_id=f"a-{activity.pk}"
    )


def _reply_channels(organization, conversation) -> list[dict]:
    """The channels an operator can answer on: each channel that each active connection
    carries, the conversation's last one first. Reads no credentials."""
    from apps.providers.models import ChannelConnection, ChannelStatus
    from apps.providers.specs import SPECS

    options = []
    connections = (
        ChannelConnection.objects.filter(organization=organization)
        .exclude(status=ChannelStatus.DISABLED)
        .only("id", "provider", "name", "identifier")
        .order_by("provider", "name")
    )
    for connection in connections:
        for channel in SPECS[connection.provider].channels:
            label = f"{Channel(channel).label} · {connection.name or connection.identifier}"
            options.append(
                {
                    "value": f"{channel}:{connection.pk}",
                    "channel": channel,
                    "label": label,
                    "last": channel == conversation.last_inbound_channel
                    and connection.pk == conversation.last_channel_connection_id,
                }
            )
    options.sort(key=lambda o: not o["last"])
    return options


def _canned_replies(organization, conversation) -> list[dict]:
    """Replies from the niche's prompts and objection answers, with the contact's first name,
    the business name and the agent's name filled in (other variables render empty)."""
    from apps.niches.selectors import niche_context, prompt_render

    context = niche_context(organization=organization)
    contact = conversation.contact
    variables = {
        "first_name": (contact.name or "").split(" ")[0],
        "business_name": organization.name,
        "agent_name": context.agent_pack.agent_name if context.agent_pack else "",
    }
    canned = []
    for prompt in context.prompts.values():
        if prompt.purpose == "system":
            continue
        if prompt.channel and prompt.channel != conversation.last_inbound_channel:
            continue
        canned.append(
            {
                "group": "Prompts",
                "label": f"{prompt.purpose.replace('_', ' ')}: {prompt.key}",
                "text": prompt.render(variables),
            }
        )
    for objection in context.objections:
        canned.append(
            {
                "group": "Objections",
                "label": objection.name,
                "text": prompt_render(objection.response_template, variables),
            }
        )
    return canned


def _contact_panel(organization, contact, now) -> dict:
    from apps.bookings.models import LIVE_STATUSES, Booking
    from apps.crm.models import ConsentStatus, ContactConsent, Deal, DealStatus, Lead

    leads = list(
        Lead.objects.filter(organization=organization, contact=contact).order_by("-created_at")[:3]
    )
    deals = list(
        Deal.objects.filter(organization=organization, contact=contact, status=DealStatus.OPEN)
        .select_related("stage", "pipeline")
        .order_by("-created_at")[:5]
    )
    bookings = list(
        Booking.objects.filter(
            organization=organization, contact=contact, status__in=LIVE_STATUSES, end__gte=now
        )
        .select_related("appointment_type", "resource")
        .order_by("start")[:5]
    )
    consents = {
        c.channel: c
        for c in ContactConsent.objects.filter(organization=organization, contact=contact)
    }
    opt_outs = [
        {
            "channel": label,
            "opted_out": consents.get(value) is not None
            and consents[value].status == ConsentStatus.OPTED_OUT,
            "reason": consents[value].reason if value in consents else "",
        }
        for value, label in Channel.choices
        if value != Channel.API
    ]
    return {"leads": leads, "deals": deals, "bookings": bookings, "opt_outs": opt_outs}


def conversation_page(request, pk):
    """One conversation: the timeline across channels, the contact panel, the reply box and
    the actions. Opening it marks it read for this user only."""
    conversation = _conversation_or_404(request, pk)
    organization = conversation.organization
    before = None
    if request.GET.get("before"):
        before = parse_datetime(request.GET["before"])
        if before is None or timezone.is_naive(before):
            return _bad_request(request, "The 'before' link is not a valid time.")
    now = timezone.now()
    services.conversation_mark_read(conversation=conversation, user=request.user, now=now)
    members_list = _workers(organization)
    members = {str(m.user_id): m for m in members_list}
    message_rows, has_older = selectors.conversation_timeline_messages(
        organization=organization, conversation=conversation, before=before
    )
    since = message_rows[0].created_at if has_older and message_rows else None
    items = [_message_item(m) for m in message_rows]
    activities = selectors.conversation_activities(
        organization=organization, conversation=conversation, since=since
    )
    items += [
        _activity_item(a, members) for a in activities if before is None or a.created_at < before
    ]
    items += [
        TimelineItem(at=e.at, kind="crm", obj=e)
        for e in _crm_entries(conversation.contact, limit=50, since=since)
        if before is None or e.at < before
    ]
    items.sort(key=lambda item: item.at)
    window_closes = selectors.whatsapp_window_closes_at(
        organization=organization, conversation=conversation
    )
    settings_row = services.inbox_settings_get(organization=organization)
    context = {
        **admin.site.each_context(request),
        "title": str(conversation.contact),
        "conversation": conversation,
        "organization": organization,
        "contact": conversation.contact,
        "items": items,
        "has_older": has_older,
        "older_url": f"?{urlencode({'before': message_rows[0].created_at.isoformat()})}"
        if has_older and message_rows
        else "",
        "panel": _contact_panel(organization, conversation.contact, now),
        "members": members_list,
        "channels": _reply_channels(organization, conversation),
        "window_open": window_closes is not None and window_closes > now,
        "window_closes": window_closes,
        "canned": _canned_replies(organization, conversation),
        "suggestion": selectors.ai_suggestion(organization=organization, conversation=conversation),
        "can_work": _can_work(request.user, organization.pk),
        "statuses": [
            (s, label) for s, label in ConversationStatus.choices if s != ConversationStatus.SNOOZED
        ],
        "waiting": _waiting(conversation, now, settings_row),
        "snooze_presets": _snooze_presets(organization, now),
        "now": now,
        "inbox_url": reverse("admin:inbox") + f"?organization={organization.pk}",
        "poll_url": reverse("admin:inbox_poll", args=[conversation.pk]),
        "action_url": reverse("admin:inbox_action", args=[conversation.pk]),
        "suggest_url": reverse("admin:inbox_suggest", args=[conversation.pk]),
        "channel_icons": CHANNEL_ICONS,
    }
    return TemplateResponse(request, "admin/conversations/conversation.html", context)


def _snooze_presets(organization, now) -> list[tuple[str, str]]:
    local = timezone.localtime(now, organization.tz)
    tomorrow_9 = (local + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    monday = local + timedelta(days=(7 - local.weekday()) or 7)
    monday_9 = monday.replace(hour=9, minute=0, second=0, microsecond=0)
    return [
        ((now + timedelta(hours=1)).isoformat(), "1 hour"),
        ((now + timedelta(hours=4)).isoformat(), "4 hours"),
        (tomorrow_9.isoformat(), f"Tomorrow 9:00 ({organization.timezone})"),
        (monday_9.isoformat(), f"Next Monday 9:00 ({organization.timezone})"),
    ]


# --- polling --------------------------------------------------------------------------------


def conversation_poll(request, pk):
    """JSON for the open page: messages created or changed (delivery status) and activities
    since `since`, rendered as the page renders them, plus the conversation's state. Marks
    the conversation read for this user when the page is visible and something new came in."""
    conversation = _conversation_or_404(request, pk)
    organization = conversation.organization
    now = timezone.now()
    since_raw = request.GET.get("since")
    since = parse_datetime(since_raw) if since_raw else now - timedelta(seconds=30)
    if since is None or timezone.is_naive(since):
        return JsonResponse(
            {"error": {"code": "validation_error", "message": "since: not a valid time."}},
            status=400,
        )
    messages_changed, activities = selectors.conversation_changes(
        organization=organization, conversation=conversation, since=since - POLL_OVERLAP
    )
    members = {}
    if activities:
        members = {str(m.user_id): m for m in _workers(organization)}
    new_inbound = any(
        m.direction == Direction.INBOUND and m.created_at > since - POLL_OVERLAP
        for m in messages_changed
    )
    if new_inbound and request.GET.get("visible") == "1":
        services.conversation_mark_read(conversation=conversation, user=request.user, now=now)
    with timezone.override(organization.tz):
        payload = _poll_payload(request, conversation, now, messages_changed, activities, members)
    return JsonResponse(payload)


def _poll_payload(request, conversation, now, messages_changed, activities, members) -> dict:
    return {
        "now": now.isoformat(),
        "messages": [
            {
                "id": f"m-{m.pk}",
                "status": m.status,
                "html": render_to_string(
                    "admin/conversations/_item.html",
                    {
                        "item": _message_item(m),
                        "channel_icons": CHANNEL_ICONS,
                        "contact_label": str(conversation.contact),
                    },
                    request=request,
                ),
            }
            for m in messages_changed
        ],
        "activities": [
            {
                "id": f"a-{a.pk}",
                "html": render_to_string(
                    "admin/conversations/_item.html",
                    {"item": _activity_item(a, members), "channel_icons": CHANNEL_ICONS},
                    request=request,
                ),
            }
            for a in activities
        ],
        "conversation": {
            "status": conversation.status,
            "assignee": str(conversation.assignee) if conversation.assignee_id else None,
            "agent_active": conversation.agent_active,
        },
    }


def conversation_suggest(request, pk):
    """JSON: ask the decision engine, with no side effect, what it would answer now."""
    conversation = _conversation_or_404(request, pk)
    if not _can_work(request.user, conversation.organization_id):
        raise PermissionDenied
    try:
        suggestion = selectors.ai_suggestion_simulate(
            organization=conversation.organization, conversation=conversation
        )
    except DomainError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=422)
    except Exception:
        logger.exception("AI suggestion failed for %s", conversation.pk)
        return JsonResponse(
            {"error": {"code": "unavailable", "message": "The AI could not suggest a reply."}},
            status=503,
        )
    if suggestion is None:
        return JsonResponse({"suggestion": None})
    return JsonResponse({"suggestion": suggestion.text, "rationale": suggestion.rationale})


# --- actions --------------------------------------------------------------------------------


def _parse_channel(organization, value: str):
    """`channel:connection_id` from the reply box → (channel, connection) or ValueError."""
    from apps.providers.models import ChannelConnection

    if not value:
        return None, None
    channel, _, connection_id = value.partition(":")
    if channel not in Channel.values:
        raise ValueError(f"Unknown channel {channel!r}.")
    connection = None
    if connection_id:
        connection_uuid = _uuid(connection_id)
        connection = (
            ChannelConnection.objects.filter(organization=organization, pk=connection_uuid).first()
            if connection_uuid
            else None
        )
        if connection is None:
            raise ValueError("That channel connection does not exist.")
    return channel, connection


def _parse_until(value: str, organization) -> datetime:
    moment = parse_datetime(value or "")
    if moment is None:
        raise ValueError("Choose when the conversation should wake up.")
    if timezone.is_naive(moment):  # a datetime-local input: the organization's time zone
        moment = timezone.make_aware(moment, organization.tz)
    return moment


def _run_action(request, conversation, action: str) -> str:
    """Carry out one action through its service; returns the success message."""
    organization = conversation.organization
    user = request.user
    data = request.POST
    if action == "reply":
        try:
            channel, connection = _parse_channel(organization, data.get("channel", ""))
        except ValueError as exc:
            raise DomainError(str(exc), code="invalid_channel") from None
        message = services.conversation_reply(
            organization=organization,
            conversation=conversation,
            user=user,
            text=data.get("text", ""),
            channel=channel,
            channel_connection=connection,
            subject=data.get("subject", ""),
        )
        return f"Reply queued on {message.get_channel_display()}."
    if action == "note":
        services.conversation_note_add(
            organization=organization,
            conversation=conversation,
            user=user,
            text=data.get("text", ""),
        )
        return "Note added (only your team sees it)."
    if action == "assign":
        raw = data.get("assignee", "")
        assignee = _uuid(raw) if raw else None
        if raw and assignee is None:
            raise DomainError("Choose a member to assign.", code="invalid_assignee")
        services.conversation_assign(
            organization=organization, conversation=conversation, assignee=assignee, actor=user
        )
        return "Assignment saved." if assignee else "Conversation unassigned."
    if action == "status":
        status = data.get("status", "")
        services.conversation_set_status(
            organization=organization, conversation=conversation, status=status, actor=user
        )
        return f"Status: {ConversationStatus(status).label}."
    if action == "snooze":
        try:
            until = _parse_until(data.get("until", ""), organization)
        except ValueError as exc:
            raise DomainError(str(exc), code="invalid_until") from None
        services.conversation_snooze(
            organization=organization, conversation=conversation, until=until, actor=user
        )
        local = timezone.localtime(until, organization.tz)
        return f"Snoozed until {local:%Y-%m-%d %H:%M} ({organization.timezone})."
    if action == "mark_unread":
        services.conversation_mark_unread(conversation=conversation, user=user)
        return "Marked unread."
    if action == "take_over":
        services.conversation_take_over(
            organization=organization, conversation=conversation, user=user
        )
        return "You took over: the AI agent no longer answers this conversation."
    if action == "hand_back":
        services.conversation_hand_back(
            organization=organization, conversation=conversation, user=user
        )
        return "Handed back to the AI agent."
    if action == "escalate":
        services.conversation_escalate(
            organization=organization,
            conversation=conversation,
            reason=(data.get("reason") or "").strip() or "escalated by an operator",
            source="operator",
            actor=user,
            to_supervisor=True,
        )
        return "Escalated to a supervisor."
    raise AssertionError(action)


def conversation_action(request, pk):
    """POST one action (`action` = reply, note, assign, status, snooze, mark_unread,
    take_over, hand_back, escalate); back to the page (the list after mark_unread) with a
    message saying what happened or why not."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    conversation = _conversation_or_404(request, pk)
    if not _can_work(request.user, conversation.organization_id):
        raise PermissionDenied
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        return HttpResponseBadRequest(f"Unknown action {action[:40]!r}.", content_type="text/plain")
    back = _page_url(conversation)
    try:
        done = _run_action(request, conversation, action)
    except DomainError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(back)
    messages.success(request, done)
    if action == "mark_unread":
        return HttpResponseRedirect(
            reverse("admin:inbox") + f"?organization={conversation.organization_id}"
        )
    return HttpResponseRedirect(back)
