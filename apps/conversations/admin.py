"""The inbox in the operator console (`/admin/inbox/`), and the inbox's settings.

The inbox pages live in `admin_views`; the model admins here are for configuration
(inbox settings per organization) and look-ups (conversations, SLA breaches). Every write
goes through `apps.conversations.services`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from apps.conversations import admin_views, services
from apps.conversations.models import Conversation, InboxSettings, SlaBreach
from apps.core.errors import DomainError
from apps.tenancy.roles import MANAGERS, SUPERVISORS
from apps.tenancy.scoping import TenantAdmin

admin.site.register_page("inbox/", admin_views.inbox, name="inbox", title="Inbox")
admin.site.register_page(
    "inbox/<uuid:pk>/",
    admin_views.conversation_page,
    name="inbox_conversation",
    title="Conversation",
    in_nav=False,
)
admin.site.register_page(
    "inbox/<uuid:pk>/poll/",
    admin_views.conversation_poll,
    name="inbox_poll",
    title="Conversation updates",
    in_nav=False,
)
admin.site.register_page(
    "inbox/<uuid:pk>/act/",
    admin_views.conversation_action,
    name="inbox_action",
    title="Conversation action",
    in_nav=False,
)
admin.site.register_page(
    "inbox/<uuid:pk>/suggest/",
    admin_views.conversation_suggest,
    name="inbox_suggest",
    title="AI suggestion",
    in_nav=False,
)

SETTINGS_FIELDS = (
    "auto_assign",
    "first_response_minutes",
    "next_response_minutes",
    "reassign_on_breach",
    "escalate_to",
    "escalation_user",
)


class InboxSettingsForm(forms.ModelForm):
    class Meta:
        model = InboxSettings
        fields = ("organization", *SETTINGS_FIELDS)

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization") or getattr(self.instance, "organization", None)
        user = cleaned.get("escalation_user")
        if (
            user is not None
            and organization is not None
            and not services.is_member(organization, user.pk, SUPERVISORS)
        ):
            self.add_error("escalation_user", "Must be a moderator or admin of the organization.")
        return cleaned


@admin.register(InboxSettings)
class InboxSettingsAdmin(TenantAdmin):
    """Assignment and escalation rules per organization (admins change them)."""

    form = InboxSettingsForm

    list_display = (
        "organization",
        "auto_assign",
        "first_response_minutes",
        "next_response_minutes",
        "reassign_on_breach",
        "escalate_to",
        "escalation_user",
    )
    list_select_related = ("organization", "escalation_user")
    fields = ("organization", *SETTINGS_FIELDS)
    view_roles = SUPERVISORS
    add_roles = MANAGERS
    change_roles = MANAGERS
    delete_roles = MANAGERS

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in SETTINGS_FIELDS}
        try:
            saved = services.inbox_settings_update(organization=obj.organization, **values)
        except DomainError as exc:
            messages.error(request, exc.message)
            return
        obj.pk, obj._state.adding = saved.pk, False


@admin.register(Conversation)
class ConversationAdmin(TenantAdmin):
    """Look-up only: conversations are worked in the inbox."""

    list_display = (
        "contact",
        "status",
        "priority",
        "assignee",
        "agent_active",
        "last_message_at",
        "open_link",
    )
    list_filter = ("status", "priority", "agent_active", "last_inbound_channel")
    list_select_related = ("contact", "assignee")
    search_fields = ("=contact__email", "=contact__phone")
    ordering = ("-last_message_at",)
    readonly_fields = ("open_link",)

    @admin.display(description="Inbox")
    def open_link(self, obj):
        return format_html(
            '<a href="{}">Open in the inbox</a>', reverse("admin:inbox_conversation", args=[obj.pk])
        )

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SlaBreach)
class SlaBreachAdmin(TenantAdmin):
    """Response-time breaches and what the escalation rules did about each."""

    list_display = ("created_at", "conversation", "kind", "limit_minutes", "action", "assignee")
    list_filter = ("kind", "action")
    list_select_related = ("conversation__contact", "assignee")
    view_roles = SUPERVISORS

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
